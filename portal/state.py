"""What the portal holds for its lifetime: settings, the HBase store, users, throttle, jobs, and
the server secret that signs login CSRF tokens."""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pacs_hdfs import audit
from pacs_hdfs.hardening import open_private, private_dir
from portal.throttle import LoginThrottle
from portal.users import UserStore

SECRET_BYTES = 32


class Lazy:
    """Builds its target on first use, so the portal starts (and serves /login) while HBase is
    still coming up; the HBase pool connects when it is built."""

    def __init__(self, build):
        self._build, self._target, self._lock = build, None, threading.Lock()

    def __getattr__(self, name):
        if self._target is None:
            with self._lock:
                if self._target is None:
                    self._target = self._build()
        return getattr(self._target, name)


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
    search: object = None              # portal.search.service.SharedSearch (or feed.LiveIndex)
    hdfs: object = None                # WebHDFS client, built on first use (default)
    secret: bytes = field(default=b"", repr=False)

    def __post_init__(self):
        self.users = UserStore.from_settings(self.store, self.settings)
        self.throttle = LoginThrottle.from_settings(self.store, self.settings)
        if not self.secret:
            self.secret = load_secret(secret_path(self.settings))
        if self.hdfs is None:
            from pacs_hdfs import clients
            self.hdfs = Lazy(lambda: clients.hdfs(self.settings))

    def lifecycle(self):
        """The study lifecycle on the portal's own store (so tests' in-memory store is used)."""
        from pacs_hdfs.dicom.lifecycle import Lifecycle
        return Lifecycle(self.settings, hbase=self.store, hdfs=self.hdfs)

    def audit(self, user: str, action: str, target: str = "", **details) -> None:
        audit.record(self.settings, user, action, target, store=self.store, **details)
