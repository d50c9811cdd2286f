"""Portal users and sessions in the HBase `users` table (see pacs_hdfs/schema.py).

Rows (layout: `pacs_hdfs.rows.users`): `u/<name>` (role, argon2id hash, created, disabled,
epoch) and `s/<sha256(token)>` (user, csrf, created, seen, expires, epoch). Only the hash of a
session token is stored, so reading the table does not give anyone a session. Logout deletes
the row; HBase's TTL on family `s` drops stale ones.

Revocation: a session is valid only while its `s:epoch` equals its user's `u:epoch`. Disabling
a user, changing the password (also `add --replace`) and deleting the user give the user a new
epoch (or no row), so every live session of that user stops working at its next request, in
every portal process, without finding the session rows. Sessions also end after
`idle_s` without a request and `max_s` after sign-in, whatever happens.

Password hashing: argon2id with argon2-cffi's defaults (64 MiB, 3 passes, 4 lanes). The memory
is what makes an attacker's guesses expensive, and also what a flood of sign-ins could turn
against the portal, so at most `HashGate.slots` hashes run at once; a request that waits longer
than `wait_s` for a slot gets `Busy` (the routes answer 503). Unknown and disabled users are
checked against a dummy hash of the same parameters, so all three cost the same time.
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pacs_hdfs.rows import users as user_rows
from portal.roles import ROLES

TABLE = user_rows.TABLE
SESSION_SECONDS = 8 * 3600                  # defaults; the portal takes them from settings
IDLE_SECONDS = 30 * 60
TOUCH_SECONDS = 60                          # `s:seen` is written at most this often
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
_dummy: dict[tuple, str] = {}
_dummy_lock = threading.Lock()


def _dummy_hash() -> str:
    """A hash with the current hasher's parameters, to verify unknown users against (made
    once, under a lock: a first burst of unknown users must not hash it in every thread)."""
    params = (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism)
    with _dummy_lock:
        if params not in _dummy:
            _dummy[params] = _hasher.hash(secrets.token_urlsafe(16))
        return _dummy[params]


class UserError(ValueError):
    """A refused user operation (bad name, role or password, duplicate or unknown user)."""


class Busy(Exception):
    """Every password-hashing slot stayed taken for the whole wait."""


class HashGate:
    """At most `slots` password hashes at once in this process (argon2 takes 64 MiB each)."""

    def __init__(self, slots: int = 2, wait_s: float = 5.0):
        self.slots, self.wait_s = slots, wait_s
        self._sem = threading.BoundedSemaphore(slots)

    @contextmanager
    def slot(self):
        if not self._sem.acquire(timeout=self.wait_s):
            raise Busy()
        try:
            yield
        finally:
            self._sem.release()


@dataclass
class User:
    name: str
    role: str
    created: str = ""
    disabled: bool = False
    epoch: str = ""

    def public(self) -> dict:
        """What `pacs user list --json` and the admin page show."""
        return {"name": self.name, "role": self.role, "created": self.created,
                "disabled": self.disabled}


@dataclass
class Session:
    user: str
    csrf: str
    expires: float              # absolute end
    seen: float = 0.0           # last request (to within TOUCH_SECONDS)
    epoch: str = ""


_ukey, _skey = user_rows.user_key, user_rows.session_key


def _user(name: str, row: dict) -> User | None:
    """The user of a `u/<name>` row (None: no such user)."""
    u = user_rows.decode_user(row)
    return User(name, u.role, u.created, u.disabled, u.epoch) if u else None


def _new_epoch() -> bytes:
    return secrets.token_hex(8).encode()


class UserStore:
    def __init__(self, hbase, gate: HashGate | None = None, idle_s: float = IDLE_SECONDS,
                 max_s: float = SESSION_SECONDS):
        self.hb = hbase
        self.gate = gate or HashGate()
        self.idle_s, self.max_s = idle_s, max_s

    @classmethod
    def from_settings(cls, hbase, settings) -> "UserStore":
        return cls(hbase, HashGate(settings.portal_hash_concurrency,
                                   settings.portal_hash_wait_seconds),
                   settings.portal_session_idle_seconds, settings.portal_session_max_seconds)

    # --- users -----------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, replace: bool = False) -> User:
        """A new user, or with `replace` a new password and role for an existing one (which
        ends that user's live sessions; a disabled user stays disabled)."""
        if not NAME_RE.match(name):
            raise UserError("user names are 1-64 letters, digits, or _ . @ -")
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        self._check_password(password)
        if not replace and self.get(name):
            raise UserError(f"user {name!r} exists")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.hb.put(TABLE, _ukey(name), user_rows.encode_user(
            role=role, password_hash=self._hash(password), created=created, epoch=_new_epoch()))
        return self.get(name)

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise UserError(f"passwords need at least {MIN_PASSWORD} characters")

    def _hash(self, password: str) -> str:
        with self.gate.slot():
            return _hasher.hash(password)

    def get(self, name: str) -> User | None:
        if not NAME_RE.match(name or ""):
            return None
        return _user(name, self.hb.get(TABLE, _ukey(name), columns=user_rows.USER_COLUMNS))

    def _existing(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        return user

    def list(self) -> list[User]:
        rows = self.hb.scan(TABLE, row_prefix=user_rows.USER_PREFIX,
                            columns=user_rows.USER_COLUMNS)
        return [u for k, r in rows if (u := _user(user_rows.user_name(k), r))]

    def set_role(self, name: str, role: str) -> User:
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        self._existing(name)
        self.hb.put(TABLE, _ukey(name), user_rows.encode_user(role=role))
        return self.get(name)

    def set_password(self, name: str, password: str) -> User:
        """A new password; the user's live sessions end."""
        self._check_password(password)
        self._existing(name)
        self.hb.put(TABLE, _ukey(name), user_rows.encode_user(
            password_hash=self._hash(password), epoch=_new_epoch()))
        return self.get(name)

    def set_disabled(self, name: str, disabled: bool) -> User:
        """Disable (its live sessions end, it cannot sign in) or enable a user."""
        self._existing(name)
        self.hb.put(TABLE, _ukey(name), user_rows.encode_user(
            disabled=disabled, epoch=_new_epoch() if disabled else None))
        return self.get(name)

    def revoke_sessions(self, name: str) -> None:
        """End every live session of the user (in every portal process)."""
        self._existing(name)
        self.hb.put(TABLE, _ukey(name), user_rows.encode_user(epoch=_new_epoch()))

    def delete(self, name: str) -> None:
        """Remove the user; its sessions stop working at once (their user row is gone, and a
        later user of the same name gets a new epoch)."""
        self._existing(name)
        self.hb.delete(TABLE, _ukey(name))

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password is right and the user is enabled, else None; the same
        work either way. Raises `Busy` when no hashing slot is free in time."""
        row = self.hb.get(TABLE, _ukey(name)) if NAME_RE.match(name or "") else {}
        found = user_rows.decode_user(row)
        usable = found is not None and not found.disabled
        with self.gate.slot():
            stored = found.hash if usable and found.hash else _dummy_hash()
            try:
                _hasher.verify(stored, password)
            except (VerificationError, InvalidHashError):
                return None
        return _user(name, row) if usable else None

    # --- sessions --------------------------------------------------------------------------
    def create_session(self, user: User) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = time.time()
        sess = Session(user.name, secrets.token_urlsafe(32), now + self.max_s, now, user.epoch)
        self.hb.put(TABLE, _skey(token), user_rows.encode_session(user_rows.SessionRow(
            user.name, sess.csrf, now, now, sess.expires, user.epoch)))
        return token, sess

    def session(self, token: str) -> Session | None:
        """The live session of `token` (None if unknown, idle too long or past its end);
        notes the request time."""
        if not token or len(token) > 100:
            return None
        found = user_rows.decode_session(self.hb.get(TABLE, _skey(token)))
        if found is None:
            return None
        sess = Session(found.user, found.csrf, found.expires, found.seen, found.epoch)
        now = time.time()
        if sess.expires < now or now - sess.seen > self.idle_s:
            self.end_session(token)
            return None
        if now - sess.seen > TOUCH_SECONDS:
            self.hb.put(TABLE, _skey(token), user_rows.encode_seen(now))
            sess.seen = now
        return sess

    def principal(self, token: str) -> tuple[User, Session] | None:
        """The user and session of `token` while both are valid: the session is live, the
        user exists, is enabled and has not had its sessions revoked since."""
        sess = self.session(token)
        user = self.get(sess.user) if sess else None
        if user is None or user.disabled or user.epoch != sess.epoch:
            return None
        return user, sess

    def end_session(self, token: str) -> None:
        if token:
            self.hb.delete(TABLE, _skey(token))
