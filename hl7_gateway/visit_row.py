"""Convert a parsed ``Visit`` into one row of ``pacs_hdfs.visit_schema.VISIT_SCHEMA``."""
from __future__ import annotations

from hl7_gateway.models import Visit


def visit_to_row(visit: Visit) -> dict:
    """One dict with exactly the VISIT_SCHEMA field names, ready for ``pa.Table.from_pylist``."""
    return {
        "visit_id": visit.visit_id,
        "patient_id": visit.patient_id,
        "sex": visit.sex,
        "age": visit.age,
        "city": visit.city,
        "admission": visit.admission,
        "discharge": visit.discharge,
        "diagnoses": [d.model_dump() for d in visit.diagnoses],
        "icd10": [d.code for d in visit.diagnoses if d.system == "ICD10"],
        "labs": [lab.model_dump() for lab in visit.labs],
        "exams": [e.model_dump() for e in visit.exams],
        "visit_month": visit.admission.strftime("%Y-%m"),
    }
