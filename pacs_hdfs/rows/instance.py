"""The `instance` table: one row per stored DICOM object.

Key: study_uid \\0 series_uid \\0 sop_uid. Family `l` (location and state), family `a` (the
de-identified attributes of every Q/R level, `ATTRIBUTES`; see `attributes`).

| column | holds |
|---|---|
| l:path, l:offset, l:length, l:sha256 | where the object's bytes are (`containers.Location`) |
| l:ts | its transfer syntax UID |
| l:quarantine | present while held for review: the reason |
| l:edge | the hospital edge that sent it (absent for local stores) |
| l:counted | b"1" once the object is in its series/study counters |
"""
from __future__ import annotations

from dataclasses import dataclass

from pacs_hdfs.containers import Location
from pacs_hdfs.rows import attributes, series, study
from pacs_hdfs.rows.cells import Row
from pacs_hdfs.schema import SEP, row_key

TABLE = "instance"
PATH, OFFSET, LENGTH, SHA256 = b"l:path", b"l:offset", b"l:length", b"l:sha256"
TS, QUARANTINE, EDGE, COUNTED = b"l:ts", b"l:quarantine", b"l:edge", b"l:counted"
LOCATION = (PATH, OFFSET, LENGTH, SHA256)

#: IMAGE-level keywords; the row holds these and every parent level's (`ALL_ATTRIBUTES`)
ATTRIBUTES = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "InstanceNumber", "Rows", "Columns", "ContentDate", "ContentTime")
ALL_ATTRIBUTES = tuple(dict.fromkeys(ATTRIBUTES + series.ATTRIBUTES + study.ATTRIBUTES))


def key(study_uid: str, series_uid: str, sop_uid: str) -> bytes:
    return row_key(study_uid, series_uid, sop_uid)


def prefix(study_uid: str, series_uid: str | None = None) -> bytes:
    """Scan prefix of the instances of a series, or of a whole study without `series_uid`."""
    return (row_key(study_uid, series_uid) if series_uid else row_key(study_uid)) + SEP.encode()


def parse_key(k: bytes) -> tuple[str, str, str] | None:
    """(study, series, sop) of an instance row key; None if it is not one."""
    parts = k.split(SEP.encode())
    if len(parts) != 3:
        return None
    return parts[0].decode(), parts[1].decode(), parts[2].decode()


def sop_of(k: bytes) -> str | None:
    """The SOP Instance UID of an instance row key (None if it is not one)."""
    parsed = parse_key(k)
    return parsed[2] if parsed else None


def series_key_of(k: bytes) -> bytes:
    """The `series` row key of an instance row key."""
    return k.rsplit(SEP.encode(), 1)[0]


def study_key_of(k: bytes) -> bytes:
    """The `study` row key of an instance (or series) row key."""
    return k.split(SEP.encode(), 1)[0]


@dataclass(frozen=True)
class Instance:
    """What an instance row holds besides its attributes."""
    location: Location
    transfer_syntax: str = ""
    quarantine: str | None = None
    edge: str | None = None


def encode_location(loc: Location) -> Row:
    return {PATH: loc.path.encode(), OFFSET: str(loc.offset).encode(),
            LENGTH: str(loc.length).encode(), SHA256: loc.sha256.encode()}


def encode(inst: Instance, attrs: dict[str, str]) -> Row:
    """The row of a newly stored object (`attrs` = keyword -> text of every level)."""
    row = {**encode_location(inst.location), **attributes.encode(attrs, ALL_ATTRIBUTES),
           TS: inst.transfer_syntax.encode()}
    if inst.quarantine:
        row[QUARANTINE] = inst.quarantine.encode()
    if inst.edge:
        row[EDGE] = inst.edge.encode()
    return row


def location(row: Row) -> Location | None:
    """Where the object's bytes are; None for a row without a location."""
    if PATH not in row:
        return None
    return Location(row[PATH].decode(), int(row[OFFSET]), int(row[LENGTH]), row[SHA256].decode())


def decode(row: Row) -> Instance | None:
    """The row's location and state (None without a location); attributes: `attributes.decode`."""
    loc = location(row)
    if loc is None:
        return None
    q = row.get(QUARANTINE)
    e = row.get(EDGE)
    return Instance(loc, row.get(TS, b"").decode(), q.decode() if q is not None else None,
                    e.decode() if e is not None else None)


def is_quarantined(row: Row) -> bool:
    return QUARANTINE in row


def is_counted(row: Row) -> bool:
    return COUNTED in row


def counted_mark() -> Row:
    """The cell marking an instance counted in its series/study counters."""
    return {COUNTED: b"1"}


def transfer_syntax(row: Row) -> str:
    return row.get(TS, b"").decode()


def edge(row: Row) -> str:
    """The sending edge, '' when absent."""
    return row.get(EDGE, b"").decode()


def length(row: Row) -> int:
    """The stored object's length, 0 without a location."""
    return int(row.get(LENGTH, b"0"))
