"""The `quarantine` table: objects held back for burned-in PHI review.

Key: sop_uid. Family `q`: `q:reason` (why it is held), `q:state` (b"held"), `q:key` (the
instance row key), `q:time` (epoch seconds when it was held).
"""
from __future__ import annotations

from dataclasses import dataclass

from pacs_hdfs.rows.cells import Row
from pacs_hdfs.schema import row_key

TABLE = "quarantine"
REASON, STATE, KEY, TIME = b"q:reason", b"q:state", b"q:key", b"q:time"
HELD = "held"


def key(sop_uid: str) -> bytes:
    return row_key(sop_uid)


@dataclass(frozen=True)
class Held:
    reason: str
    instance_key: bytes
    time: int               # epoch seconds
    state: str = HELD


def encode(h: Held) -> Row:
    return {REASON: h.reason.encode(), STATE: h.state.encode(), KEY: h.instance_key,
            TIME: str(int(h.time)).encode()}


def decode(row: Row) -> Held | None:
    if REASON not in row:
        return None
    return Held(row[REASON].decode(), row.get(KEY, b""), int(row.get(TIME, b"0")),
                row.get(STATE, HELD.encode()).decode())
