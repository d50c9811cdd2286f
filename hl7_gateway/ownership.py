"""Which hospital owns a visit row and a subject row: a hospital writes and reads only its own.

Every row the gateway writes for a hospital records it: the ``visit`` row in ``v:hospital``, the
``subject`` row (key = patient pseudonym) in ``a:hospital``. Before a commit, `Owners.claim`
decides per visit, in the order of `OWNED`:

| row | owner | a visit of hospital H is refused when |
|---|---|---|
| visit (encrypted visit id) | ``v:hospital``; a row without it (stored before owners were recorded) belongs to ``gateway_unowned_rows_hospital`` | the owner is not H: AE ``VISIT_OF_ANOTHER_HOSPITAL`` |
| subject (pseudonym) | ``a:hospital``; a row without it but with visits (``v:`` columns) belongs to ``gateway_unowned_rows_hospital``; a row with neither (only DICOM studies) is free | the owner is not H: AE ``SUBJECT_OF_ANOTHER_HOSPITAL`` |

A refused visit is not written anywhere (no archive, Parquet or HBase row). Why subject rows
are owned rather than keyed by hospital + pseudonym: the key is the pseudonym that DICOM ingest
and the portal's case view use too, so one patient's studies and visits meet in one row.
Pseudonyms are keyed hashes with each hospital's own vault key, so two hospitals meet on one only
when they share that key or one copies the other's pseudonyms; either way the second one is
refused rather than mixed in silently. Hospitals that deliberately share a vault (one pseudonym
per patient across sites) are one hospital id for the gateway.

Claims of rows that do not exist yet are remembered in this process (bounded) from the moment
they are decided, so two requests racing for the same new row cannot both win; owners never
change, so a remembered owner stays true. Two gateway *processes* racing for the same brand-new
row are not serialised (HBase Thrift 1 has no check-and-put here); that needs one hospital to
know another's encrypted visit id or pseudonym before its first write lands.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from hl7_gateway.models import AckDetail, Visit
from pacs_hdfs.rows import subject as subject_rows
from pacs_hdfs.rows import visit as visit_rows


@dataclass(frozen=True)
class OwnedRows:
    """One kind of row a visit writes that a hospital owns."""
    table: str
    key: Callable[[Visit], bytes]
    owner: bytes            # column naming the owning hospital
    legacy: bytes           # column prefix of rows written before owners were recorded
    read: tuple[bytes, ...]  # what to read to decide (owner column + a legacy marker)
    code: str               # AE detail code when another hospital owns the row
    text: str


VISIT_OWNER, SUBJECT_OWNER = visit_rows.HOSPITAL, subject_rows.HOSPITAL
OWNED = (
    OwnedRows(visit_rows.TABLE, lambda v: visit_rows.key(v.visit_id), VISIT_OWNER,
              visit_rows.FAMILY + b":", (VISIT_OWNER, visit_rows.RECEIVED),
              "VISIT_OF_ANOTHER_HOSPITAL",
              "this visit id is stored for another hospital; not stored"),
    OwnedRows(subject_rows.TABLE, lambda v: subject_rows.key(v.patient_id), SUBJECT_OWNER,
              subject_rows.VISITS + b":", (SUBJECT_OWNER, subject_rows.VISITS),
              "SUBJECT_OF_ANOTHER_HOSPITAL",
              "this patient pseudonym is stored for another hospital; not stored"),
)
VISIT_ROWS = OWNED[0]
REMEMBERED = 200_000  # claims kept in memory (table, key, hospital: ~150 bytes each)


def row_owner(kind: OwnedRows, row: dict[bytes, bytes], unowned: str) -> str | None:
    """The hospital owning ``row`` (None: free to claim). ``unowned`` owns rows stored before
    owners were recorded; "" means nobody may take them over."""
    if kind.owner in row:
        return row[kind.owner].decode()
    if any(column.startswith(kind.legacy) for column in row):
        return unowned
    return None


class Owners:
    """Ownership decisions of one gateway process (thread-safe)."""

    def __init__(self, unowned: str, remembered: int = REMEMBERED):
        self.unowned = unowned
        self._known: OrderedDict[tuple[str, bytes], str] = OrderedDict()
        self._limit = remembered
        self._lock = threading.Lock()

    def _remember(self, where: tuple[str, bytes], hospital: str) -> None:
        self._known[where] = hospital
        self._known.move_to_end(where)
        while len(self._known) > self._limit:
            self._known.popitem(last=False)

    def claim(self, hbase, visits: list[Visit], hospital: str) -> dict[str, AckDetail]:
        """The visits ``hospital`` may not write (visit id -> AE detail); the rows of the others
        are claimed for it. Reads HBase (raises StorageError when it cannot)."""
        rows = {kind.table: hbase.get_many(kind.table, sorted({kind.key(v) for v in visits}),
                                           columns=list(kind.read)) for kind in OWNED}
        refused: dict[str, AckDetail] = {}
        with self._lock:
            for visit in visits:
                for kind in OWNED:
                    where = (kind.table, kind.key(visit))
                    owner = self._known.get(where)
                    if owner is None:
                        owner = row_owner(kind, rows[kind.table].get(where[1], {}),
                                          self.unowned)
                    if owner is not None and owner != hospital:
                        refused[visit.visit_id] = AckDetail(code=kind.code, text=kind.text)
                        break
                else:
                    for kind in OWNED:
                        self._remember((kind.table, kind.key(visit)), hospital)
        return refused

    def readable(self, row: dict[bytes, bytes], hospital: str | None) -> bool:
        """Whether ``hospital`` may read this visit row (None: an in-process caller, any)."""
        return hospital is None or row_owner(VISIT_ROWS, row, self.unowned) == hospital
