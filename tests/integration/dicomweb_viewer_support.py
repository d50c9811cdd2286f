"""Glue for the DICOMweb-for-viewers tests (tests/integration/test_portal_dicomweb_viewers.py,
tests/e2e/test_ohif_viewer.py): a case holding one exam written to HBase the way the HL7
gateway writes visits."""
from __future__ import annotations

import secrets
import uuid
from contextlib import contextmanager
from datetime import datetime


PSEUDONYM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@contextmanager
def case_with_exam(hbase, accession: str, kind: str = "CT"):
    """A new pseudonymous case with one visit whose exam has `accession` (subject and visit rows
    as `hl7_gateway.store_rows` builds them; no search rows, so searches do not see it). Yields
    the pseudonym; the rows are deleted afterwards."""
    from hl7_gateway import store_rows
    from hl7_gateway.hospital.samples import sample_visit, visit_token
    from hl7_gateway.models import Exam
    from pacs_hdfs.containers import Location
    pseudonym = "RS" + "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(16))
    visit = sample_visit(visit_id=visit_token(f"viewer-{uuid.uuid4()}"), patient_id=pseudonym,
                         admission=datetime(2024, 5, 2, 9, 0),
                         discharge=datetime(2024, 5, 3, 9, 0),
                         exams=[Exam(kind=kind, accession=accession, text="Test exam.")])
    key, cols = store_rows.subject_column(visit)
    hbase.put("subject", key, cols)
    hbase.put("visit", visit.visit_id.encode(), store_rows.visit_row(
        visit, Location("hl7/archive/test/w-0.pack", 0, 1, "0" * 64),
        "2024-05-03T10:00:00.000", []))
    try:
        yield pseudonym
    finally:
        hbase.delete("visit", visit.visit_id.encode())
        hbase.delete("subject", key)
