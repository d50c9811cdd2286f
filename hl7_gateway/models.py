"""Pydantic models of a de-identified visit and of the gateway's acknowledgement.

A ``Visit`` is what crosses the hospital/MDC boundary: no names, addresses, phone numbers,
hospital identifiers or birth dates, only the encrypted visit id, the patient pseudonym, sex, age
and city. Dates are as the hospital's date policy left them (shifted per patient by default, see
``docs/DEIDENTIFICATION.md``). Validation here is semantic (ranges, formats,
ordering); the parser adds XML structure and the gateway's PHI and identifier-format rules.

Age is top-coded: ``AGE_TOP`` (90) means "90 years or more" (HIPAA Safe Harbor: an exact age
above 89 identifies), shown as "90+" (``age_label``). Birth year is not carried at all.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hl7_gateway.codes import DIAGNOSIS_CODE_PATTERNS, EXAM_KINDS, INTERPRETATION_CODES

_DIAGNOSIS_RES = {system: re.compile(p) for system, p in DIAGNOSIS_CODE_PATTERNS.items()}
#: Ages of 90 or more are stored as this value, meaning "90 or more".
AGE_TOP = 90
#: Fields of visits stored before birth years were dropped; ignored when such a row is read.
_LEGACY_FIELDS = ("birth_year",)


def top_coded_age(age: int) -> int:
    """Whole years, with every age of 90 or more as 90 ("90 or more")."""
    return min(age, AGE_TOP)


def age_label(age: int | None) -> str:
    """How an age is shown: "90+" for the top code, else the number ("" when unknown)."""
    if age is None:
        return ""
    return f"{AGE_TOP}+" if age >= AGE_TOP else str(age)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Diagnosis(_Frozen):
    system: Literal["ICD10", "ICD9CM"]
    code: str
    display: str | None = None
    primary: bool = False

    @model_validator(mode="after")
    def _code_matches_system(self) -> "Diagnosis":
        if not _DIAGNOSIS_RES[self.system].match(self.code):
            raise ValueError(f"{self.code!r} is not a valid {self.system} code")
        return self


class Lab(_Frozen):
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    value: float
    unit: str = Field(min_length=1)
    low: float | None = None
    high: float | None = None
    interpretation: str | None = None

    @field_validator("interpretation")
    @classmethod
    def _known_interpretation(cls, v: str | None) -> str | None:
        if v is not None and v not in INTERPRETATION_CODES:
            raise ValueError(f"unknown ObservationInterpretation code {v!r}")
        return v

    @model_validator(mode="after")
    def _range_ordered(self) -> "Lab":
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"reference range low {self.low} > high {self.high}")
        return self


class Exam(_Frozen):
    kind: str
    accession: str | None = Field(default=None, max_length=16)  # DICOM SH
    text: str = ""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in EXAM_KINDS:
            raise ValueError(f"unknown exam kind {v!r}")
        return v


class Visit(_Frozen):
    visit_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    patient_id: str = Field(min_length=1)
    sex: Literal["M", "F", "UN"]
    age: int = Field(ge=0, le=AGE_TOP, description='whole years at admission; 90 = "90 or more"')
    city: str | None = None
    admission: datetime
    discharge: datetime | None = None
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    labs: list[Lab] = Field(default_factory=list)
    exams: list[Exam] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _top_code(cls, data):
        """Top-code the age (a hospital-side caller passes the true age) and ignore the birth
        year that rows stored before it was dropped still carry. The gateway does not rely on
        this: its PHI rules refuse a message with an age above 90 or any birthTime."""
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in _LEGACY_FIELDS}
            if isinstance(data.get("age"), int) and data["age"] > AGE_TOP:
                data["age"] = AGE_TOP
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Visit":
        if self.discharge is not None and self.discharge < self.admission:
            raise ValueError("discharge is before admission")
        if sum(d.primary for d in self.diagnoses) > 1:
            raise ValueError("more than one primary diagnosis")
        return self


# --- acknowledgement ----------------------------------------------------------------------------

AckCode = Literal["AA", "AE", "AR"]


class AckDetail(_Frozen):
    """One error: a stable machine code, a human sentence and where in the message it is."""
    code: str
    text: str
    location: str | None = None


class MessageAck(_Frozen):
    """Status of one transmitted message (one visit), or of the whole request when AR."""
    message_id: str | None
    type_code: AckCode
    details: list[AckDetail] = Field(default_factory=list)


class Acknowledgement(_Frozen):
    ack_id: str
    messages: list[MessageAck]

    @property
    def type_code(self) -> AckCode:
        """Overall status: AR beats AE beats AA."""
        codes = {m.type_code for m in self.messages}
        return next((c for c in ("AR", "AE") if c in codes), "AA")
