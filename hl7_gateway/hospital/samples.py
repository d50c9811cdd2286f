"""Ready-made de-identified visits for tests, demos and benchmarks (synthetic, no real PHI)."""
from __future__ import annotations

import hashlib
from datetime import datetime

from hl7_gateway.hospital.deidentify_visit import HasKeys, his_record_to_visit
from hl7_gateway.hospital.his_export import generate_records
from hl7_gateway.hospital.visit_crypto import encrypt_visit_id
from hl7_gateway.models import Diagnosis, Exam, Lab, Visit


def demo_keys(label: str = "demo", shift: bool = True) -> HasKeys:
    """Deterministic NON-SECRET keys derived from a label; for tests and demos only.
    ``shift``: include a date-shift key (date policy "shift")."""
    visit_key = hashlib.sha512(f"visit:{label}".encode()).digest()
    return HasKeys(visit_key=visit_key, pseudonym_key=hashlib.sha256(label.encode()).digest(),
                   date_shift_key=hashlib.sha256(f"shift:{label}".encode()).digest()
                   if shift else None)


def visit_token(label: str) -> str:
    """A well-formed encrypted visit id (AES-SIV under the demo key) for any label."""
    return encrypt_visit_id(demo_keys().visit_key, label)


def sample_visit(**overrides) -> Visit:
    """One complete visit exercising every element of the interaction."""
    fields = dict(
        visit_id=visit_token("sample-visit"), patient_id="RSABCDEFGHIJKLMNOP", sex="F", age=67,
        city="Wrocław", admission=datetime(2024, 3, 1, 8, 15),
        discharge=datetime(2024, 3, 5, 12, 0, 30),
        diagnoses=[Diagnosis(system="ICD10", code="I10",
                             display="Essential (primary) hypertension", primary=True),
                   Diagnosis(system="ICD9CM", code="250.00", display="Diabetes mellitus")],
        labs=[Lab(code="718-7", name="Hemoglobin", value=11.2, unit="g/dL", low=12.0,
                  high=17.5, interpretation="L"),
              Lab(code="1988-5", name="CRP", value=3.25, unit="mg/L")],
        exams=[Exam(kind="CT", accession="ACQ2V7X4K6M3P5TZ",
                    text="CT head: no acute findings."),
               Exam(kind="MORPHOLOGY", text="Mild anaemia.")],
    )
    fields.update(overrides)
    return Visit(**fields)


def sample_visits(count: int, seed: int = 0, keys: HasKeys | None = None) -> list[Visit]:
    """``count`` realistic visits: synthetic HIS records run through the HAS de-identification."""
    keys = keys or demo_keys()
    records = generate_records(patients=max(1, count // 3), visits=count, seed=seed)
    return [his_record_to_visit(record, keys) for record in records]
