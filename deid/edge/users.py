"""Users of the edge review page: a local JSON file next to the vault, argon2id hashes.

`$PACS_HOME/hospital/edge_users.json` (0600): `{"users": {name: {"hash": ..., "created": ...}}}`.
The edge is a hospital machine that must work without the data center, so its reviewers are
not the portal's users (which live in the MDC's HBase). `pacs edge user add NAME` creates one.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from deid.edge import durable

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
#: verified against when the user does not exist, so both cases take the same time
_DUMMY = _hasher.hash("not-a-real-password")


class UserError(ValueError):
    """Bad name or password, or a duplicate user."""


class EdgeUsers:
    def __init__(self, path: Path, hasher: PasswordHasher | None = None):
        self.path = Path(path)
        self.hasher = hasher or _hasher

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text()).get("users", {})
        except FileNotFoundError:
            return {}

    def names(self) -> list[str]:
        return sorted(self._load())

    def add(self, name: str, password: str, replace: bool = False) -> None:
        if not NAME_RE.match(name):
            raise UserError("user names are 1-64 of A-Z a-z 0-9 _ . @ -")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"passwords have at least {MIN_PASSWORD} characters")
        users = self._load()
        if name in users and not replace:
            raise UserError(f"user {name} exists")
        users[name] = {"hash": self.hasher.hash(password), "created": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        durable.write_json(self.path, {"users": users})

    def verify(self, name: str, password: str) -> bool:
        entry = self._load().get(name)
        try:
            return self.hasher.verify(entry["hash"] if entry else _DUMMY, password) and bool(entry)
        except (VerificationError, InvalidHashError):
            return False
