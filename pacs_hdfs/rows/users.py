"""The `users` table: portal users, their sessions and the sign-in throttle's counters.

| row key | family | columns |
|---|---|---|
| `u/<name>` | u | u:role, u:hash (argon2id), u:created, u:disabled (b"1"/b"0"), u:epoch |
| `s/<sha256(session token) hex>` | s | s:user, s:csrf, s:created, s:seen, s:expires, s:epoch |
| `t/<scope>/<sha256(attempt parts) hex>` | s | s:<slot>: HBase counters of failed sign-ins per time slot |

Family `s` has a 12-hour TTL (schema.py), so stale sessions and throttle slots vanish by
themselves. Only a session token's hash is stored. See portal/users.py and portal/throttle.py.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pacs_hdfs.rows.cells import Row, column

TABLE = "users"
USER_PREFIX, SESSION_PREFIX, THROTTLE_PREFIX = b"u/", b"s/", b"t/"
ROLE, HASH, CREATED, DISABLED, EPOCH = b"u:role", b"u:hash", b"u:created", b"u:disabled", b"u:epoch"
#: what listing a user reads (never the hash)
USER_COLUMNS = [ROLE, CREATED, DISABLED, EPOCH]
S_USER, S_CSRF, S_CREATED, S_SEEN, S_EXPIRES, S_EPOCH = (
    b"s:user", b"s:csrf", b"s:created", b"s:seen", b"s:expires", b"s:epoch")


# --- users -------------------------------------------------------------------------------------
def user_key(name: str) -> bytes:
    return USER_PREFIX + name.encode()


def user_name(k: bytes) -> str:
    return k[len(USER_PREFIX):].decode()


@dataclass(frozen=True)
class UserRow:
    role: str
    created: str = ""
    disabled: bool = False
    epoch: str = ""
    hash: str = ""          # empty when not read


def encode_user(*, role: str | None = None, password_hash: str | None = None,
                created: str | None = None, disabled: bool | None = None,
                epoch: bytes | None = None) -> Row:
    """The cells of the given fields only (a put of a few fields leaves the others alone)."""
    cells: Row = {}
    if role is not None:
        cells[ROLE] = role.encode()
    if password_hash is not None:
        cells[HASH] = password_hash.encode()
    if created is not None:
        cells[CREATED] = created.encode()
    if disabled is not None:
        cells[DISABLED] = b"1" if disabled else b"0"
    if epoch is not None:
        cells[EPOCH] = epoch
    return cells


def decode_user(row: Row) -> UserRow | None:
    """The user of a row; None for a row without a role (no such user)."""
    if ROLE not in row:
        return None
    return UserRow(row[ROLE].decode(), row.get(CREATED, b"").decode(),
                   row.get(DISABLED, b"0") == b"1", row.get(EPOCH, b"").decode(),
                   row.get(HASH, b"").decode())


# --- sessions ----------------------------------------------------------------------------------
def session_key(token: str) -> bytes:
    return SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest().encode()


@dataclass(frozen=True)
class SessionRow:
    user: str
    csrf: str
    created: float
    seen: float
    expires: float
    epoch: str = ""


def encode_session(s: SessionRow) -> Row:
    return {S_USER: s.user.encode(), S_CSRF: s.csrf.encode(),
            S_CREATED: str(s.created).encode(), S_SEEN: str(s.seen).encode(),
            S_EXPIRES: str(s.expires).encode(), S_EPOCH: s.epoch.encode()}


def encode_seen(seen: float) -> Row:
    return {S_SEEN: str(seen).encode()}


def decode_session(row: Row | None) -> SessionRow | None:
    """The session of a row; None for an absent row or one without a user."""
    if not row or S_USER not in row:
        return None
    return SessionRow(row[S_USER].decode(), row[S_CSRF].decode(),
                      float(row.get(S_CREATED, b"0")), float(row.get(S_SEEN, b"0")),
                      float(row[S_EXPIRES]), row.get(S_EPOCH, b"").decode())


# --- sign-in throttle --------------------------------------------------------------------------
def throttle_key(scope: str, attempt: str) -> bytes:
    """The counter row of one throttle scope and attempt identity (hashed: no user or IP in
    clear in the table)."""
    return THROTTLE_PREFIX + f"{scope}/".encode() + hashlib.sha256(
        attempt.encode("utf-8", "replace")).hexdigest().encode()


def slot_column(slot: int) -> bytes:
    return column(b"s", str(slot))
