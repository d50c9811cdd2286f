"""Portal users and sessions in the HBase `users` table (see pacs_hdfs/schema.py).

Rows: `u/<name>` (u:role, u:hash = argon2id, u:created) and `s/<sha256(token)>` (s:user,
s:csrf, s:expires). Only the hash of a session token is stored, so reading the table does not
give anyone a session. Logout deletes the row; HBase's TTL on family `s` drops stale ones.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from portal.roles import ROLES

TABLE = "users"
SESSION_SECONDS = 8 * 3600
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing the same.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class UserError(ValueError):
    """A refused user operation (bad name, role or password, duplicate user)."""


@dataclass
class User:
    name: str
    role: str
    created: str = ""


@dataclass
class Session:
    user: str
    csrf: str
    expires: float


def _ukey(name: str) -> bytes:
    return f"u/{name}".encode()


def _skey(token: str) -> bytes:
    return b"s/" + hashlib.sha256(token.encode()).hexdigest().encode()


class UserStore:
    def __init__(self, hbase):
        self.hb = hbase

    # --- users -----------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, replace: bool = False) -> User:
        if not NAME_RE.match(name):
            raise UserError("user names are 1-64 letters, digits, or _ . @ -")
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"passwords need at least {MIN_PASSWORD} characters")
        if not replace and self.get(name):
            raise UserError(f"user {name!r} exists")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.hb.put(TABLE, _ukey(name), {b"u:role": role.encode(),
                                         b"u:hash": _hasher.hash(password).encode(),
                                         b"u:created": created.encode()})
        return User(name, role, created)

    def get(self, name: str) -> User | None:
        row = self.hb.get(TABLE, _ukey(name), columns=[b"u:role", b"u:created"])
        if not row:
            return None
        return User(name, row[b"u:role"].decode(), row.get(b"u:created", b"").decode())

    def list(self) -> list[User]:
        rows = self.hb.scan(TABLE, row_prefix=b"u/", columns=[b"u:role", b"u:created"])
        return [User(k.decode()[2:], r[b"u:role"].decode(), r.get(b"u:created", b"").decode())
                for k, r in rows if b"u:role" in r]

    def set_role(self, name: str, role: str) -> User:
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if not self.get(name):
            raise UserError(f"no user {name!r}")
        self.hb.put(TABLE, _ukey(name), {b"u:role": role.encode()})
        return self.get(name)

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password is right, else None (same work either way)."""
        row = self.hb.get(TABLE, _ukey(name)) if NAME_RE.match(name or "") else {}
        stored = row.get(b"u:hash", _DUMMY_HASH.encode()).decode()
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if not row:
            return None
        return User(name, row[b"u:role"].decode(), row.get(b"u:created", b"").decode())

    # --- sessions --------------------------------------------------------------------------
    def create_session(self, name: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        sess = Session(name, secrets.token_urlsafe(32), time.time() + SESSION_SECONDS)
        self.hb.put(TABLE, _skey(token), {b"s:user": name.encode(), b"s:csrf": sess.csrf.encode(),
                                          b"s:expires": str(sess.expires).encode()})
        return token, sess

    def session(self, token: str) -> Session | None:
        if not token or len(token) > 100:
            return None
        row = self.hb.get(TABLE, _skey(token))
        if not row or b"s:user" not in row:
            return None
        sess = Session(row[b"s:user"].decode(), row[b"s:csrf"].decode(),
                       float(row[b"s:expires"]))
        if sess.expires < time.time():
            self.end_session(token)
            return None
        return sess

    def end_session(self, token: str) -> None:
        if token:
            self.hb.delete(TABLE, _skey(token))
