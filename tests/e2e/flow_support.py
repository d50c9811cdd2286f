"""Helpers for the whole-portal browser flow (tests/e2e/test_portal_flow_browser.py).

`expected_case` works out, from the HIS export and the hospital's own keys, what the portal must
show for the demo study's patient (pseudonym, de-identified accession, a visit's ICD-10 code), so
the test asserts against values it derived, never against what the portal happens to print.
Also the job-runner clean-up; process glue is in tests/portal_support.py.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class ExpectedCase:
    pseudonym: str          # research id of the patient
    accession: str          # de-identified accession of the CT exam sent to the SCP
    visit_id: str           # encrypted id of the visit holding that exam
    icd10: str              # an ICD-10 code of that visit
    day: str                # its admission day, YYYY-MM-DD
    city: str
    visits: int             # how many visits the patient has in the export


def expected_case(records: list[dict], keys, national_id: str, accession: str) -> ExpectedCase:
    """What the MDC holds for the patient `national_id` and the exam `accession` (both PHI-side
    values from the export), de-identified with the HAS keys `keys`."""
    from hl7_gateway.hospital.deidentify_visit import his_record_to_visit
    mine = [r for r in records if r["patient"]["national_id"] == national_id]
    exam_visit = next(r for r in mine if any(e.get("accession") == accession for e in r["exams"]))
    visit = his_record_to_visit(exam_visit, keys)
    codes = [d.code for d in visit.diagnoses if d.system == "ICD10"]
    assert codes, "the exam's visit has no ICD-10 diagnosis: pick another seed"
    deid_accessions = [e.accession for e in visit.exams if e.kind == "CT" and e.accession]
    return ExpectedCase(pseudonym=visit.patient_id, accession=deid_accessions[0],
                        visit_id=visit.visit_id, icd10=codes[0],
                        day=visit.admission.date().isoformat(), city=visit.city or "",
                        visits=len(mine))


@contextmanager
def job_runner_cleanup(settings):
    """Stop the job runner afterwards if it was not running before and has nothing left to do
    (the portal starts it on the first launch; it would otherwise run on forever)."""
    from analytics_jobs.service import RUNNER_NAME, JobService
    from deploy.supervisor import Supervisor
    sup = Supervisor(settings)
    was_running = bool(sup.pid(RUNNER_NAME))
    try:
        yield
    finally:
        if not was_running and sup.pid(RUNNER_NAME):
            busy = [j for j in JobService(settings).list(50) if not j.final]
            if not busy:
                sup.stop_daemon(RUNNER_NAME)
