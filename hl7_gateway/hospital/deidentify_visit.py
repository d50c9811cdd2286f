"""Hospital side (HAS): turn one HIS export record into a de-identified ``Visit``.

Kept: sex, age at admission, birth year, city, clinical content. Replaced: the HIS visit id by its
AES-SIV token, the national id by the keyed pseudonym and imaging accession numbers by their
keyed replacement (both the same functions as the DICOM side, so studies still link). Dropped:
names, national id, MRN, street, postal code, phone, full birth date. Exam free text is scrubbed
of every one of those identifiers (whole-word, case-insensitive; phone and national id also with
any spacing) and each occurrence replaced by ``[REDACTED]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from hl7_gateway.models import Diagnosis, Exam, Lab, Visit
from hl7_gateway.hospital.pseudonym_shim import accession_for, pseudonym_for
from hl7_gateway.hospital.visit_crypto import encrypt_visit_id

REDACTED = "[REDACTED]"
HIS_SEX = {"M": "M", "F": "F", "U": "UN", "UN": "UN", "O": "UN"}
# patient fields whose values must never appear in free text
TEXT_IDENTIFIER_FIELDS = ("first_name", "last_name", "national_id", "mrn", "phone", "street",
                          "postal_code", "birth_date")
# field -> how many trailing digits to match with any separators (phone: drop the country code)
_DIGIT_FIELDS = {"phone": 9, "national_id": 11}


@dataclass(frozen=True)
class HasKeys:
    """Hospital-only secrets: 64-byte AES-SIV visit-id key and the pseudonym HMAC key."""
    visit_key: bytes
    pseudonym_key: bytes


def age_at(birth: date, moment: date) -> int:
    """Whole years completed on ``moment``."""
    return moment.year - birth.year - ((moment.month, moment.day) < (birth.month, birth.day))


def _birth_date_variants(iso: str) -> list[str]:
    born = date.fromisoformat(iso)
    return [iso, born.strftime("%d.%m.%Y"), born.strftime("%d/%m/%Y"), born.strftime("%d-%m-%Y")]


def _term_patterns(patient: dict) -> list[str]:
    terms: list[str] = []
    for field in TEXT_IDENTIFIER_FIELDS:
        value = str(patient.get(field) or "").strip()
        if not value:
            continue
        terms += _birth_date_variants(value) if field == "birth_date" else [value]
        if field == "street":  # also the bare street name, e.g. "Lipowa 12" without "ul."
            terms.append(re.sub(r"^(ul\.|al\.|pl\.|os\.)\s*", "", value, flags=re.I))
    patterns = [re.escape(t) for t in sorted(set(terms), key=len, reverse=True)]
    for field, tail in _DIGIT_FIELDS.items():  # "601-234-567", "601234567", "570304 12345"
        digits = re.sub(r"\D", "", str(patient.get(field) or ""))[-tail:]
        if len(digits) >= 6:
            patterns.append(r"[\s\-.]?".join(digits))
    return patterns


def scrub_text(text: str, patient: dict) -> str:
    """Replace every occurrence of the patient's direct identifiers in free text."""
    patterns = _term_patterns(patient)
    if not text or not patterns:
        return text
    regex = re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)
    return regex.sub(REDACTED, text)


def his_record_to_visit(record: dict, keys: HasKeys) -> Visit:
    """One HIS export record (see his_export) -> the de-identified Visit sent to the MDC."""
    patient = record["patient"]
    admission = datetime.fromisoformat(record["admission"])
    born = date.fromisoformat(patient["birth_date"])
    return Visit(
        visit_id=encrypt_visit_id(keys.visit_key, record["his_visit_id"]),
        patient_id=pseudonym_for(keys.pseudonym_key, patient["national_id"]),
        sex=HIS_SEX.get(patient.get("sex") or "U", "UN"),
        age=age_at(born, admission.date()),
        birth_year=born.year,
        city=patient.get("city"),
        admission=admission,
        discharge=datetime.fromisoformat(record["discharge"]) if record.get("discharge") else None,
        diagnoses=[Diagnosis(**d) for d in record.get("diagnoses", ())],
        labs=[Lab(**lab) for lab in record.get("labs", ())],
        exams=[Exam(kind=e["kind"],
                    accession=accession_for(keys.pseudonym_key, e["accession"])
                    if e.get("accession") else None,
                    text=scrub_text(e.get("text") or "", patient))
               for e in record.get("exams", ())],
    )
