"""Pure mapping of an accepted visit to its HBase rows (visit, subject, search index).

``visit`` row (key = encrypted visit id), family ``v``: ``json`` (the whole Visit), flat columns
the portal lists without parsing JSON (patient_id, sex, age (90 = "90 or more"), city, admission,
discharge, visit_month, icd10, primary, accessions), ``archive`` (path offset length sha256 of the
archived XML), ``received``, ``index`` (the search keys it owns, so a re-send that changes the
diagnoses can drop its stale index rows) and ``hospital`` (the hospital that sent it, the only
one that may overwrite or read it: `ownership`).
``subject`` row (key = pseudonym): ``v:<visit id>`` = admission (ISO), ``a:hospital`` = the
hospital whose patient it is.
``search`` rows: ``icd10 \\0 <category> \\0 <pseudonym> \\0 <visit id>`` and
``accession \\0 <accession> \\0 <pseudonym> \\0 <visit id>``, columns ``i:code``,
``i:admission``, ``i:sex``, ``i:age``. No column holds anything the Visit does not hold, but
the sending hospital's id.
``search`` feed rows: ``feed \\0 <written, ms since epoch, 13 digits> \\0 <visit id>``, column
``i:doc`` = the visit's case-search document (JSON); the portal's case index tails them in order.
"""
from __future__ import annotations

import json

from hl7_gateway.models import Visit
from hl7_gateway.ownership import SUBJECT_OWNER, VISIT_OWNER
from pacs_hdfs.containers import Location
from pacs_hdfs.schema import row_key

Row = dict[bytes, bytes]


def icd10_category(code: str) -> str:
    """WHO ICD-10 category (three characters): 'C50.9' -> 'C50'."""
    return code.split(".")[0][:3].upper()


def search_rows(visit: Visit) -> dict[bytes, Row]:
    """Index rows of one visit, by row key."""
    common = {b"i:admission": visit.admission.isoformat().encode(), b"i:sex": visit.sex.encode(),
              b"i:age": str(visit.age).encode()}
    rows: dict[bytes, Row] = {}
    for dx in visit.diagnoses:
        if dx.system == "ICD10":
            key = row_key("icd10", icd10_category(dx.code), visit.patient_id, visit.visit_id)
            codes = rows.get(key, {}).get(b"i:code", b"")
            rows[key] = {**common, b"i:code": b",".join(filter(None, (codes, dx.code.encode())))}
    for exam in visit.exams:
        if exam.accession:
            key = row_key("accession", exam.accession, visit.patient_id, visit.visit_id)
            rows[key] = {**common, b"i:code": exam.kind.encode()}
    return rows


FEED = "feed"


def feed_key(written_ms: int, visit_id: str) -> bytes:
    return row_key(FEED, f"{written_ms:013d}", visit_id)


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
    return feed_key(written_ms, visit.visit_id), {b"i:doc": doc.encode()}


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
        "archive": f"{archive.path} {archive.offset} {archive.length} {archive.sha256}",
        "received": received,
        "index": json.dumps([k.decode() for k in index_keys]),
    }
    row = {f"v:{k}".encode(): v.encode() for k, v in flat.items()}
    row[b"v:json"] = visit.model_dump_json().encode()
    if hospital is not None:
        row[VISIT_OWNER] = hospital.encode()
    return row


def subject_column(visit: Visit, hospital: str | None = None) -> tuple[bytes, Row]:
    cols = {f"v:{visit.visit_id}".encode(): visit.admission.isoformat().encode()}
    if hospital is not None:
        cols[SUBJECT_OWNER] = hospital.encode()
    return visit.patient_id.encode(), cols


def stale_index_keys(old_visit_row: Row, new_keys: list[bytes]) -> list[bytes]:
    """Index rows an earlier version of the visit wrote that the new version no longer has."""
    old = json.loads(old_visit_row.get(b"v:index", b"[]"))
    keep = set(new_keys)
    return [k.encode() for k in old if k.encode() not in keep]
