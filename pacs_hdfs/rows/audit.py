"""The `audit` table: the append-only audit trail (see pacs_hdfs/audit.py).

Key: reverse timestamp (µs, 16 digits, so the newest rows come first) \\0 random hex. Family
`e`: `e:user`, `e:action`, `e:target`, `e:ts` (ISO UTC) and `e:details` (JSON).
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from pacs_hdfs.rows.cells import Row
from pacs_hdfs.schema import SEP

TABLE = "audit"
USER, ACTION, TARGET, TS, DETAILS = b"e:user", b"e:action", b"e:target", b"e:ts", b"e:details"
MAX_US = 10**16 - 1


@dataclass
class Event:
    ts: str
    user: str
    action: str
    target: str
    details: dict = field(default_factory=dict)


def reverse_time(us: int) -> str:
    """The key's time part: later times sort first."""
    return f"{MAX_US - us:016d}"


def key(us: int) -> bytes:
    """A new row key for an event at `us` µs since the epoch."""
    return (reverse_time(us) + SEP + secrets.token_hex(6)).encode()


def encode(ev: Event) -> Row:
    return {USER: ev.user.encode(), ACTION: ev.action.encode(), TARGET: ev.target.encode(),
            TS: ev.ts.encode(), DETAILS: json.dumps(ev.details, default=str).encode()}


def decode(row: Row) -> Event:
    return Event(row[TS].decode(), row[USER].decode(), row[ACTION].decode(),
                 row.get(TARGET, b"").decode(), json.loads(row.get(DETAILS, b"{}")))
