"""Pure mapping of an accepted visit to its HBase rows (visit, subject, search index, feed).

The rows' layout (keys, columns, encodings) is owned by the codecs in `pacs_hdfs/rows/`
(`visit`, `subject`, `search`); this module decides what of a `Visit` goes into them. No column
holds anything the Visit does not hold, but the sending hospital's id.
"""
from __future__ import annotations

import json

from hl7_gateway.models import Visit
from pacs_hdfs.containers import Location
from pacs_hdfs.rows import search as search_table
from pacs_hdfs.rows import subject as subject_table
from pacs_hdfs.rows import visit as visit_table
from pacs_hdfs.rows.cells import Row

FEED = search_table.FEED
feed_key = search_table.feed_key


def icd10_category(code: str) -> str:
    """WHO ICD-10 category (three characters): 'C50.9' -> 'C50'."""
    return code.split(".")[0][:3].upper()


def search_rows(visit: Visit) -> dict[bytes, Row]:
    """Index rows of one visit, by row key: one per ICD-10 category (its codes comma-joined)
    and one per exam accession (the exam kind)."""
    def entry(code: str) -> Row:
        return search_table.encode_index(search_table.IndexEntry(
            code, visit.admission.isoformat(), visit.sex, str(visit.age)))
    codes: dict[bytes, list[str]] = {}
    for dx in visit.diagnoses:
        if dx.system == "ICD10":
            key = search_table.icd10_key(icd10_category(dx.code), visit.patient_id,
                                         visit.visit_id)
            codes.setdefault(key, []).append(dx.code)
    rows = {key: entry(",".join(filter(None, found))) for key, found in codes.items()}
    for exam in visit.exams:
        if exam.accession:
            key = search_table.accession_key(exam.accession, visit.patient_id, visit.visit_id)
            rows[key] = entry(exam.kind)
    return rows


def search_document(visit: Visit) -> dict:
    """What the portal's case search needs of a visit, in short keys (one feed row per visit)."""
    return {
        "v": visit.visit_id, "p": visit.patient_id, "s": visit.sex, "a": visit.age,
        "d": visit.admission.date().isoformat(), "c": visit.city or "",
        "x10": [d.code for d in visit.diagnoses if d.system == "ICD10"],
        "x9": [[d.code, d.display or ""] for d in visit.diagnoses if d.system == "ICD9CM"],
        "t": "\n".join(e.text for e in visit.exams if e.text),
        "k": sorted({e.kind for e in visit.exams}),
    }


def feed_row(visit: Visit, written_ms: int) -> tuple[bytes, Row]:
    doc = json.dumps(search_document(visit), ensure_ascii=False, separators=(",", ":"))
    return search_table.feed_key(written_ms, visit.visit_id), search_table.encode_feed(doc)


def visit_row(visit: Visit, archive: Location, received: str, index_keys: list[bytes],
              hospital: str | None = None) -> Row:
    primary = next((d.code for d in visit.diagnoses if d.primary), "")
    flat = {
        "patient_id": visit.patient_id, "sex": visit.sex, "age": str(visit.age),
        "city": visit.city or "", "admission": visit.admission.isoformat(),
        "discharge": visit.discharge.isoformat() if visit.discharge else "",
        "visit_month": visit.admission.strftime("%Y-%m"),
        "icd10": ",".join(d.code for d in visit.diagnoses if d.system == "ICD10"),
        "primary": primary,
        "accessions": ",".join(e.accession for e in visit.exams if e.accession),
    }
    return visit_table.encode(flat, visit.model_dump_json(), archive, received, index_keys,
                              hospital)


def subject_column(visit: Visit, hospital: str | None = None) -> tuple[bytes, Row]:
    return (subject_table.key(visit.patient_id),
            subject_table.encode_visit(visit.visit_id, visit.admission.isoformat(), hospital))


def stale_index_keys(old_visit_row: Row, new_keys: list[bytes]) -> list[bytes]:
    """Index rows an earlier version of the visit wrote that the new version no longer has."""
    keep = set(new_keys)
    return [k for k in visit_table.index_keys(old_visit_row) if k not in keep]
