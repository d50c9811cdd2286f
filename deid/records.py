"""Result of de-identifying one object, and the hospital-side re-identification record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pydicom import Dataset


@dataclass
class ReidRecord:
    """What the hospital needs to re-identify an object; never leaves the hospital side."""

    patient_pseudonym: str
    patient_name: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    date_shift_days: int = 0
    original_study_uid: str = ""
    deid_study_uid: str = ""
    accession_number: str = ""
    uid_map: dict[str, str] = field(default_factory=dict)  # de-identified UID -> original

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ReidRecord":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def patient_attributes(self) -> dict:
        """The original patient attributes, keyed like the vault's patient map."""
        return {
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "date_shift_days": self.date_shift_days,
        }

    def __repr__(self) -> str:  # keep PHI out of logs and tracebacks
        return f"ReidRecord(patient_pseudonym={self.patient_pseudonym!r}, <PHI hidden>)"


@dataclass
class DeidResult:
    """A de-identified dataset plus what the ingest path needs to route and remember it."""

    dataset: Dataset
    patient_pseudonym: str
    original_study_uid: str
    deid_study_uid: str
    quarantine_reason: str | None
    reid_record: ReidRecord

    def __repr__(self) -> str:
        return (f"DeidResult(patient_pseudonym={self.patient_pseudonym!r}, "
                f"deid_study_uid={self.deid_study_uid!r}, "
                f"quarantine_reason={self.quarantine_reason!r})")
