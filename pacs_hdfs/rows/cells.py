"""Cell encodings shared by the row codecs: column names, text cells, HBase counters.

HBase stores a counter (`counter_inc`) as an 8-byte big-endian signed integer; every other cell
is UTF-8 text. A column name is `<family>:<qualifier>`.
"""
from __future__ import annotations

Row = dict[bytes, bytes]


def column(family: bytes, qualifier: str | bytes) -> bytes:
    """`family:qualifier` as a column name."""
    return family + b":" + (qualifier.encode() if isinstance(qualifier, str) else qualifier)


def qualifiers(row: Row, family: bytes) -> dict[bytes, bytes]:
    """qualifier -> value of the row's cells in `family` (for families whose qualifiers are
    data: a subject's studies and visits, say)."""
    prefix = family + b":"
    return {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}


def text(row: Row, col: bytes, default: str = "") -> str:
    """The cell as text, `default` when absent."""
    raw = row.get(col)
    return raw.decode() if raw is not None else default


def encode_counter(value: int) -> bytes:
    """An HBase counter cell (8 bytes, big-endian, signed)."""
    return int(value).to_bytes(8, "big", signed=True)


def decode_counter(raw: bytes | None) -> int | None:
    """A counter cell's value: an absent cell counts 0; None for a cell of another size (not a
    counter: `pacs fsck` reports it)."""
    if raw is None:
        return 0
    return int.from_bytes(raw, "big", signed=True) if len(raw) == 8 else None


def counter(row: Row, col: bytes) -> int:
    """A counter column's value, 0 when absent (or not a counter)."""
    return decode_counter(row.get(col)) or 0
