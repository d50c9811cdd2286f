"""What the portal holds for its lifetime: settings, the HBase store, users, throttle, jobs, and
the server secret that signs login CSRF tokens."""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from pacs_hdfs import audit
from pacs_hdfs.hardening import open_private, private_dir
from portal.throttle import LoginThrottle
from portal.users import UserStore

SECRET_BYTES = 32


def secret_path(settings) -> Path:
    return Path(settings.portal_secret_file or settings.path("portal", "secret.key"))


def load_secret(path: Path) -> bytes:
    """The portal's signing key from `path`, created (0600, in a 0700 folder) with a fresh
    random key if missing. Portal processes sharing the file share the key."""
    private_dir(path.parent)
    try:
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        for _ in range(50):                 # another process may be writing it right now
            text = path.read_text(encoding="ascii").strip()
            if text:
                return bytes.fromhex(text)
            time.sleep(0.1)
        raise RuntimeError(f"{path} is empty: delete it to make a new portal secret") from None
    key = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


@dataclass
class PortalState:
    settings: object
    store: object                      # HBaseStore (or tests.memory_store.MemoryStore in tests)
    jobs: object                       # analytics_jobs.service.JobService (or a test double)
    secure_cookies: bool = False       # True when served over HTTPS
    search: object = None              # portal.search.feed.LiveIndex, set by create_app
    secret: bytes = field(default=b"", repr=False)

    def __post_init__(self):
        self.users = UserStore.from_settings(self.store, self.settings)
        self.throttle = LoginThrottle.from_settings(self.store, self.settings)
        if not self.secret:
            self.secret = load_secret(secret_path(self.settings))

    def audit(self, user: str, action: str, target: str = "", **details) -> None:
        audit.record(self.settings, user, action, target, store=self.store, **details)
