"""The `search` table: the visit search index, the case-search feed and study-accession rows.

| row key | written by | columns |
|---|---|---|
| icd10 \\0 <ICD-10 category> \\0 <pseudonym> \\0 <visit id> | HL7 gateway | i:code (the visit's codes in the category, comma-joined), i:admission (ISO), i:sex, i:age |
| accession \\0 <accession> \\0 <pseudonym> \\0 <visit id> | HL7 gateway | i:code (the exam kind), i:admission, i:sex, i:age |
| feed \\0 <written, ms since epoch, 13 digits> \\0 <visit id> | HL7 gateway | i:doc: the visit's case-search document (JSON), tailed by the portal's case index |
| study-accession \\0 <accession> \\0 <study uid> | DICOM ingest | i:s = b"1": the viewer resolves an accession to its studies |
"""
from __future__ import annotations

from dataclasses import dataclass

from pacs_hdfs.rows.cells import Row
from pacs_hdfs.schema import SEP, row_key

TABLE = "search"
CODE, ADMISSION, SEX, AGE = b"i:code", b"i:admission", b"i:sex", b"i:age"
DOC = b"i:doc"
STUDY_MARK = b"i:s"

ICD10, ACCESSION, FEED, STUDY_ACCESSION = "icd10", "accession", "feed", "study-accession"


# --- visit index rows (icd10 / accession) ------------------------------------------------------
def icd10_key(category: str, patient_id: str, visit_id: str) -> bytes:
    return row_key(ICD10, category, patient_id, visit_id)


def accession_key(accession: str, patient_id: str, visit_id: str) -> bytes:
    return row_key(ACCESSION, accession, patient_id, visit_id)


def kind_prefix(kind: str, value: str) -> bytes:
    """Scan prefix of one index value: kind_prefix('icd10', 'C50') = b'icd10\\0C50\\0'."""
    return row_key(kind, value) + SEP.encode()


@dataclass(frozen=True)
class IndexEntry:
    """The cells of one visit index row."""
    code: str
    admission: str      # ISO
    sex: str
    age: str            # integer as text; 90 = "90 or more"


def encode_index(entry: IndexEntry) -> Row:
    return {ADMISSION: entry.admission.encode(), SEX: entry.sex.encode(),
            AGE: entry.age.encode(), CODE: entry.code.encode()}


def decode_index(row: Row) -> IndexEntry:
    return IndexEntry(row.get(CODE, b"").decode(), row.get(ADMISSION, b"").decode(),
                      row.get(SEX, b"").decode(), row.get(AGE, b"").decode())


# --- feed rows ---------------------------------------------------------------------------------
def feed_key(written_ms: int, visit_id: str) -> bytes:
    return row_key(FEED, f"{written_ms:013d}", visit_id)


def encode_feed(doc_json: str) -> Row:
    return {DOC: doc_json.encode()}


def decode_feed(row: Row) -> bytes | None:
    """The feed row's JSON document (bytes), None if absent."""
    return row.get(DOC)


# --- study-accession rows ----------------------------------------------------------------------
def study_accession_key(accession: str, study_uid: str = "") -> bytes:
    """The row of a study's accession; with study_uid="" the scan prefix of all its studies."""
    return row_key(STUDY_ACCESSION, accession, study_uid)


def study_of(k: bytes) -> str:
    """The study UID of a study-accession row key."""
    return k.rsplit(SEP.encode(), 1)[-1].decode()


def encode_study_accession() -> Row:
    return {STUDY_MARK: b"1"}
