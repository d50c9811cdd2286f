"""The `subject` table: one row per research subject (pseudonymous patient).

Key: the pseudonymous patient id. Written by DICOM ingest and by the HL7 gateway:

| column | holds |
|---|---|
| a:<keyword> | PATIENT-level DICOM attributes (`ATTRIBUTES`, see `attributes`) |
| a:hospital | the hospital whose patient it is (HL7 gateway; see hl7_gateway/ownership.py) |
| s:<study uid> | b"1": one of its studies |
| v:<visit id> | the visit's admission (ISO): one of its visits |
"""
from __future__ import annotations

from pacs_hdfs.rows import attributes
from pacs_hdfs.rows.cells import Row, column, qualifiers
from pacs_hdfs.schema import row_key

TABLE = "subject"
STUDIES, VISITS = b"s", b"v"
HOSPITAL = b"a:hospital"
ATTRIBUTES = ("PatientID", "PatientName", "PatientSex", "PatientBirthDate", "PatientAge")


def key(patient_id: str) -> bytes:
    return row_key(patient_id)


def study_column(study_uid: str) -> bytes:
    return column(STUDIES, study_uid)


def visit_column(visit_id: str) -> bytes:
    return column(VISITS, visit_id)


def encode_dicom(attrs: dict[str, str]) -> Row:
    """The columns one DICOM object adds: patient attributes and its study."""
    cols = attributes.encode(attrs, ATTRIBUTES)
    cols[study_column(attrs["StudyInstanceUID"])] = b"1"
    return cols


def encode_visit(visit_id: str, admission: str, hospital: str | None = None) -> Row:
    """The columns one visit adds: the visit (admission ISO) and, when known, the owner."""
    cols = {visit_column(visit_id): admission.encode()}
    if hospital is not None:
        cols[HOSPITAL] = hospital.encode()
    return cols


def studies(row: Row) -> list[bytes]:
    """The study UIDs (as bytes, the study row keys) listed in a subject row."""
    return list(qualifiers(row, STUDIES))


def visits(row: Row) -> list[bytes]:
    """The visit ids (as bytes, the visit row keys) listed in a subject row."""
    return list(qualifiers(row, VISITS))


def attribute_columns(row: Row) -> list[bytes]:
    """The DICOM patient attribute columns present in a row (dropped with its last study)."""
    return [c for c in map(attributes.col, ATTRIBUTES) if c in row]
