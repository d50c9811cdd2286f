"""Hospital side: plan what ``pacs has sync`` sends, driven by the link table.

The transport (HTTPS POST of each body, parse_ack of the answer) is the caller's job; this module
only decides what goes into which batch, so an interrupted sync resumes without losing or
duplicating visits:

1. ``record_export`` de-identifies every export record and records its link (new ones pending);
   a record whose exam text the PHI screen refuses (policy "refuse") is recorded as rejected
   with the categories found and is not sent; once it passes (text fixed, policy changed) it
   goes back to pending;
2. ``next_batches`` yields batches of the still-unacknowledged visits (pending + sent-but-unacked);
3. the caller marks a batch sent *before* POSTing it and applies the ack after.

Because visit-id encryption is deterministic, re-running over the same export rebuilds identical
visits, and the MDC stores them keyed on the encrypted id (resends overwrite, never duplicate).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator

from hl7_gateway.builder import build_batch
from hl7_gateway.hospital.deidentify_visit import HasKeys, his_record_to_visit
from hl7_gateway.hospital.link_table import LinkTable
from hl7_gateway.hospital.phi_screen import PhiRefused, PhiScreen
from hl7_gateway.hospital.pseudonym_shim import pseudonym_for
from hl7_gateway.hospital.visit_crypto import encrypt_visit_id
from hl7_gateway.models import Visit


@dataclass(frozen=True)
class PlannedBatch:
    batch_id: str
    visits: list[Visit]
    body: bytes

    @property
    def visit_ids(self) -> list[str]:
        return [v.visit_id for v in self.visits]


def record_export(records: Iterable[dict], keys: HasKeys, table: LinkTable,
                  screen: PhiScreen | None = None) -> dict[str, Visit]:
    """De-identify records and record their links; returns encrypted visit id -> Visit.

    Records the PHI screen refuses are recorded and held (state rejected, error naming the
    categories); records that pass are released if an earlier run held them.
    """
    screen = screen or PhiScreen("redact")
    visits: dict[str, Visit] = {}
    links, held = [], []
    for record in records:
        his_id, national_id = record["his_visit_id"], record["patient"]["national_id"]
        try:
            visit = his_record_to_visit(record, keys, screen)
        except PhiRefused as refused:
            held.append(((his_id, encrypt_visit_id(keys.visit_key, his_id), national_id,
                          pseudonym_for(keys.pseudonym_key, national_id)), str(refused)))
            continue
        visits[visit.visit_id] = visit
        links.append((his_id, visit.visit_id, national_id, visit.patient_id))
    table.record(links + [link for link, _ in held])
    table.hold([(link[0], error) for link, error in held])
    table.release_held([link[0] for link in links])
    return visits


def next_batches(table: LinkTable, visits: dict[str, Visit],
                 batch_size: int = 100) -> Iterator[PlannedBatch]:
    """Batches of unacknowledged visits that this export can rebuild, by admission time.

    Ordering by admission keeps each batch within one or two ``visit_month`` partitions, so the
    gateway writes one or two Parquet files per batch instead of one per month touched.
    """
    todo = sorted((visits[row.encrypted_visit_id] for row in table.unacknowledged()
                   if row.encrypted_visit_id in visits),
                  key=lambda v: (v.admission, v.visit_id))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        batch_id = uuid.uuid4().hex
        yield PlannedBatch(batch_id, chunk, build_batch(chunk, batch_id=batch_id))
