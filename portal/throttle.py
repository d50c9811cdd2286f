"""Login throttling shared by every portal process: failed sign-ins counted with HBase's atomic
counters, per user and address, per user and per address, in a sliding window.

Why counters and "reserve first": a check followed later by a "count this failure" lets every
concurrent attempt pass the check before any of them is counted (40 simultaneous wrong
passwords all reached the hash). Here an attempt is counted *before* its password is checked:
the increment returns each concurrent attempt its own number, so of N simultaneous attempts
only those within the limit go on to the hash; the others are refused (429) at once and give
their reservation back. A failure keeps its reservation (it is a counted failure); a success
gives it back and clears the failures of its (user, address) pair.

Storage: one row per scope key in the `users` table, family `s` (12 h TTL, so the rows of names
tried once disappear by themselves): row ``t/<scope>/<sha256 of the key>``, one counter column
per time slot (``s:<slot number>``, a tenth of the window). The count of a key is the sum of
the slots inside the window. The portal process keeps nothing per user or address, so no
number of distinct names tried grows its memory.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from pacs_hdfs.rows import users as user_rows
from pacs_hdfs.rows.cells import decode_counter

TABLE = user_rows.TABLE
SLOTS = 10
#: newer slots an attempt also counts: one that read the clock just before a slot boundary but
#: reaches HBase after attempts of the next slot (or another portal host's clock runs ahead)
#: must see their reservations, or both sides of the boundary fill the limit once more
AHEAD = 2
#: scope name, the parts of the attempt its key is made of, the settings field of its limit
RULES = (
    ("user+ip", ("user", "ip"), "portal_login_max_user_ip"),
    ("user", ("user",), "portal_login_max_user"),
    ("ip", ("ip",), "portal_login_max_ip"),
)


class Throttled(Exception):
    """Too many failures in a scope: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int, scope: str):
        super().__init__(f"too many failed sign-ins ({scope})")
        self.retry_after, self.scope = retry_after, scope


def _row(scope: str, parts: dict[str, str], names: tuple[str, ...]) -> bytes:
    return user_rows.throttle_key(scope, "\0".join(parts[n] for n in names))


_col = user_rows.slot_column


def _count(cell: bytes | None) -> int:
    return decode_counter(cell) or 0


@dataclass
class Attempt:
    """One reserved sign-in attempt; settle it with `failed`, `succeeded` or `release`."""
    throttle: "LoginThrottle"
    cells: list[tuple[bytes, bytes]]            # (row, slot column) incremented for it
    pair_row: bytes
    settled: bool = field(default=False)

    def failed(self) -> None:
        """A wrong password: the reservation stays, as a counted failure."""
        self.settled = True

    def release(self) -> None:
        """The password was never checked (no hash slot): give the reservation back."""
        if not self.settled:
            self.settled = True
            self.throttle._give_back(self.cells)

    def succeeded(self) -> None:
        """Signed in: give the reservation back and clear the pair's failures."""
        self.release()
        self.throttle._clear(self.pair_row)


class LoginThrottle:
    """At most `limits[scope]` failures per key of each scope in `window_s` seconds."""

    def __init__(self, store, limits: dict[str, int], window_s: float = 300.0, clock=time.time):
        self.store, self.limits, self.window_s, self.clock = store, limits, window_s, clock
        self.slot_s = window_s / SLOTS

    @classmethod
    def from_settings(cls, store, settings) -> "LoginThrottle":
        return cls(store, {scope: getattr(settings, field_name)
                           for scope, _, field_name in RULES},
                   settings.portal_login_window_seconds)

    def attempt(self, user: str, ip: str) -> Attempt:
        """Reserve an attempt for (user, ip), or raise `Throttled` (nothing stays counted)."""
        parts = {"user": (user or "").lower()[:256], "ip": ip}
        now = self.clock()
        slot = int(now // self.slot_s)
        rows = {scope: _row(scope, parts, names) for scope, names, _ in RULES}
        mine = {scope: self.store.counter_inc(TABLE, row, _col(slot), 1)
                for scope, row in rows.items()}
        cells = [(row, _col(slot)) for row in rows.values()]
        found = self.store.get_many(TABLE, list(rows.values()))
        waits = []
        for scope, row in rows.items():
            older = {s: _count(found.get(row, {}).get(_col(s)))
                     for s in range(slot - SLOTS + 1, slot + 1 + AHEAD) if s != slot}
            if mine[scope] + sum(older.values()) > self.limits[scope]:
                waits.append((self._retry_after(older, mine[scope] - 1, slot, now,
                                                self.limits[scope]), scope))
        if waits:
            self._give_back(cells)
            wait, scope = max(waits)
            raise Throttled(wait, scope)
        return Attempt(self, cells, rows["user+ip"])

    def _retry_after(self, older: dict[int, int], current: int, slot: int, now: float,
                     limit: int) -> int:
        """Seconds until the failures others have counted drop below the limit, as the oldest
        slots leave the window."""
        total = current + sum(older.values())
        for s in sorted(older):
            total -= older[s]
            if total < limit:
                return max(1, math.ceil((s + SLOTS) * self.slot_s - now))
        return max(1, math.ceil((slot + SLOTS) * self.slot_s - now))

    def _give_back(self, cells) -> None:
        for row, col in cells:
            self.store.counter_inc(TABLE, row, col, -1)

    def _clear(self, row: bytes) -> None:
        for col, cell in self.store.get(TABLE, row).items():
            if (n := _count(cell)) > 0:
                self.store.counter_inc(TABLE, row, col, -n)

    def failures(self, user: str, ip: str) -> dict[str, int]:
        """Failures now counted per scope for (user, ip) (for tests and the admin)."""
        parts = {"user": (user or "").lower()[:256], "ip": ip}
        slot = int(self.clock() // self.slot_s)
        out = {}
        for scope, names, _ in RULES:
            row = self.store.get(TABLE, _row(scope, parts, names))
            out[scope] = sum(_count(row.get(_col(s))) for s in range(slot - SLOTS + 1, slot + 1))
        return out
