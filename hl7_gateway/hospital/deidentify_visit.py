"""Hospital side (HAS): turn one HIS export record into a de-identified ``Visit``.

Kept: sex, age at admission (top-coded: 90 means "90 or more"), city, clinical content.
Replaced: the HIS visit id by its AES-SIV token, the national id by the keyed pseudonym and
imaging accession numbers by their keyed replacement (both the same functions as the DICOM side,
so studies still link). Dropped: names, national id, MRN, street, postal code, phone, birth date
and birth year.

Dates follow the one date policy of DICOM and visits (``Settings.deid_date_policy``): with a
date-shift key (policy "shift", the default) admission and discharge move by exactly the offset
the DICOM side applies to this patient's studies, ``deid.pseudonyms.date_shift_days(vault
date_shift key, national id, issuer "")`` (the HIS national id is the DICOM PatientID), so a
study and its visit keep their true distance and linking them reveals nothing; without one
(policy "retain") dates are sent as they are. Exam free text passes the PHI screen
(``phi_screen.PhiScreen``: the patient's own identifiers plus general patterns and names),
redacted or refused according to ``Settings.hl7_phi_policy``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from deid.pseudonyms import date_shift_days
from hl7_gateway.hospital.phi_screen import PhiScreen
from hl7_gateway.hospital.pseudonym_shim import accession_for, pseudonym_for
from hl7_gateway.hospital.visit_crypto import encrypt_visit_id
from hl7_gateway.models import Diagnosis, Exam, Lab, Visit, top_coded_age

HIS_SEX = {"M": "M", "F": "F", "U": "UN", "UN": "UN", "O": "UN"}
_REDACT = PhiScreen("redact")


@dataclass(frozen=True, repr=False)
class HasKeys:
    """Hospital-only secrets: 64-byte AES-SIV visit-id key, the pseudonym HMAC key and, under
    the date policy "shift", the date-shift HMAC key (None = policy "retain": dates unchanged)."""
    visit_key: bytes
    pseudonym_key: bytes
    date_shift_key: bytes | None = None

    def __repr__(self) -> str:  # never print key material
        return f"HasKeys(<secret>, shift={'yes' if self.date_shift_key else 'no'})"


def age_at(birth: date, moment: date) -> int:
    """Whole years completed on ``moment``."""
    return moment.year - birth.year - ((moment.month, moment.day) < (birth.month, birth.day))


def shift_days(keys: HasKeys, national_id: str) -> int:
    """This patient's date offset in days (0 when dates are retained); the DICOM side's."""
    if keys.date_shift_key is None:
        return 0
    return date_shift_days(keys.date_shift_key, national_id, "")


def his_record_to_visit(record: dict, keys: HasKeys, screen: PhiScreen = _REDACT) -> Visit:
    """One HIS export record (see his_export) -> the de-identified Visit sent to the MDC.

    Raises ``phi_screen.PhiRefused`` when ``screen`` has the refuse policy and an exam text
    holds PHI.
    """
    patient = record["patient"]
    admission = datetime.fromisoformat(record["admission"])
    discharge = datetime.fromisoformat(record["discharge"]) if record.get("discharge") else None
    born = date.fromisoformat(patient["birth_date"])
    offset = timedelta(days=shift_days(keys, patient["national_id"]))
    exams = []
    for number, e in enumerate(record.get("exams", ()), 1):
        text = screen.apply(e.get("text") or "", patient, f"exam {number} text").text
        exams.append(Exam(kind=e["kind"],
                          accession=accession_for(keys.pseudonym_key, e["accession"])
                          if e.get("accession") else None,
                          text=text))
    return Visit(
        visit_id=encrypt_visit_id(keys.visit_key, record["his_visit_id"]),
        patient_id=pseudonym_for(keys.pseudonym_key, patient["national_id"]),
        sex=HIS_SEX.get(patient.get("sex") or "U", "UN"),
        age=top_coded_age(age_at(born, admission.date())),
        city=patient.get("city"),
        admission=admission + offset,
        discharge=discharge + offset if discharge else None,
        diagnoses=[Diagnosis(**d) for d in record.get("diagnoses", ())],
        labs=[Lab(**lab) for lab in record.get("labs", ())],
        exams=exams,
    )
