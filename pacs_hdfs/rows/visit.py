"""The `visit` table: one HL7 visit per row, written by the HL7 gateway.

Key: the encrypted visit id. Family `v`:

| column | holds |
|---|---|
| v:json | the whole Visit (hl7_gateway.models.Visit, as JSON) |
| v:patient_id, v:sex, v:age, v:city, v:admission, v:discharge, v:visit_month, v:icd10, v:primary, v:accessions | flat copies the portal lists without parsing JSON (`FLAT`) |
| v:archive | "path offset length sha256" of the archived HL7 XML |
| v:received | when the gateway accepted it (ISO) |
| v:index | JSON list of the `search` row keys it owns (a re-send drops stale ones) |
| v:hospital | the hospital that sent it, the only one that may overwrite or read it |
"""
from __future__ import annotations

import json

from pacs_hdfs.containers import Location
from pacs_hdfs.rows.cells import Row, column

TABLE = "visit"
FAMILY = b"v"
JSON, ARCHIVE, RECEIVED, INDEX, HOSPITAL = (b"v:json", b"v:archive", b"v:received", b"v:index",
                                            b"v:hospital")
#: the flat columns, in the order they are written
FLAT = ("patient_id", "sex", "age", "city", "admission", "discharge", "visit_month", "icd10",
        "primary", "accessions")


def key(visit_id: str) -> bytes:
    return visit_id.encode()


def encode(flat: dict[str, str], visit_json: str, archive: Location, received: str,
           index_keys: list[bytes], hospital: str | None = None) -> Row:
    """A visit's row: `flat` = the FLAT columns' text, `visit_json` = the Visit as JSON."""
    cells = {**{k: flat[k] for k in FLAT},
             "archive": f"{archive.path} {archive.offset} {archive.length} {archive.sha256}",
             "received": received,
             "index": json.dumps([k.decode() for k in index_keys])}
    row = {column(FAMILY, k): v.encode() for k, v in cells.items()}
    row[JSON] = visit_json.encode()
    if hospital is not None:
        row[HOSPITAL] = hospital.encode()
    return row


def index_keys(row: Row) -> list[bytes]:
    """The search row keys the stored visit owns ([] when unknown)."""
    return [k.encode() for k in json.loads(row.get(INDEX, b"[]"))]


def visit_json(row: Row) -> bytes | None:
    """The stored Visit as JSON bytes, None if absent."""
    return row.get(JSON)


def flat(row: Row) -> dict[str, str]:
    """The flat columns present in a row."""
    return {k: row[c].decode() for k in FLAT if (c := column(FAMILY, k)) in row}
