"""Hospital side: re-attach a patient's personal data to a visit fetched back from the MDC,
and undo the date shift (the hospital holds the key), so staff see the true dates."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hl7_gateway.hospital.his_export import read_export
from hl7_gateway.models import age_label

PERSONAL_FIELDS = ("first_name", "last_name", "national_id", "mrn", "birth_date", "sex",
                   "street", "postal_code", "city", "phone")


def patient_from_export(export: Path, national_id: str) -> dict | None:
    """The personal data of the patient with this national id in a HIS export."""
    return next((r["patient"] for r in read_export(export)
                 if r["patient"]["national_id"] == national_id), None)


def restore_dates(visit: dict, shift_days: int) -> dict:
    """The visit (JSON dict from the MDC) with admission/discharge moved back by the patient's
    date shift (``deidentify_visit.shift_days``; 0 under the retain policy)."""
    restored = dict(visit)
    for field in ("admission", "discharge"):
        if restored.get(field):
            moment = datetime.fromisoformat(restored[field]) - timedelta(days=shift_days)
            restored[field] = moment.isoformat()
    return restored


def render_visit(console: Console, his_visit_id: str, patient: dict, visit: dict) -> None:
    person = Table(title=f"visit {his_visit_id}: patient (hospital data)", show_header=False)
    for field in PERSONAL_FIELDS:
        if patient.get(field):
            person.add_row(field, str(patient[field]))
    person.add_row("research id", visit["patient_id"])
    console.print(person)
    stay = Table(title="visit (from the MDC)", show_header=False)
    for field in ("admission", "discharge", "sex", "city"):
        stay.add_row(field, str(visit.get(field) or "-"))
    stay.add_row("age", age_label(visit.get("age")) or "-")
    for dx in visit.get("diagnoses", []):
        stay.add_row(f"{dx['system']}{' (primary)' if dx['primary'] else ''}",
                     f"{dx['code']} {dx.get('display') or ''}")
    for lab in visit.get("labs", []):
        rng = f" [{lab['low']}-{lab['high']}]" if lab.get("low") is not None else ""
        stay.add_row(f"lab {lab['name']}", f"{lab['value']} {lab['unit']}{rng} "
                                            f"{lab.get('interpretation') or ''}")
    for exam in visit.get("exams", []):
        stay.add_row(f"exam {exam['kind']}", f"{exam.get('accession') or ''} {exam['text']}")
    console.print(stay)
