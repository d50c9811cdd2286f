"""Pydantic models of a de-identified visit and of the gateway's acknowledgement.

A ``Visit`` is what crosses the hospital/MDC boundary: no names, addresses, phone numbers or
hospital identifiers, only the encrypted visit id, the patient pseudonym, sex, age, birth year and
city. Validation here is semantic (ranges, formats, ordering); the parser adds XML structure.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hl7_gateway.codes import DIAGNOSIS_CODE_PATTERNS, EXAM_KINDS, INTERPRETATION_CODES

_DIAGNOSIS_RES = {system: re.compile(p) for system, p in DIAGNOSIS_CODE_PATTERNS.items()}


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
    age: int = Field(ge=0, le=130)
    birth_year: int | None = Field(default=None, ge=1850, le=2200)
    city: str | None = None
    admission: datetime
    discharge: datetime | None = None
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    labs: list[Lab] = Field(default_factory=list)
    exams: list[Exam] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "Visit":
        if self.discharge is not None and self.discharge < self.admission:
            raise ValueError("discharge is before admission")
        if self.birth_year is not None:
            years = self.admission.year - self.birth_year
            if self.age not in (years - 1, years):
                raise ValueError(f"age {self.age} does not match birth year {self.birth_year}")
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
