"""`Params` of the `export` job: which cases (case pseudonyms, and the search criteria that
chose them when the export came from a search) and which parts.

The job works from pseudonyms only. Criteria are resolved where the case index lives: the
portal's "Export this search" (portal/routes/export.py) resolves them with the live index at
submit time and sends both; the job runner holds no case index, so criteria alone are refused
with a message saying where to go instead. Criteria are the `/api/search` form
(portal.search.query.CaseQuery); paging and sort fields are dropped because an export takes
every matching case. Stored criteria are normalised (defaults left out) so the manifest records
exactly what selected the cohort.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Patient pseudonyms are 'RS' + base32 today (deid.pseudonyms); accept any short A-Z0-9 token
# so the MDC side does not import hospital-side code and older prefixes still pass.
PSEUDONYM = re.compile(r"^[A-Z0-9]{4,64}$")
SEARCH_ONLY_FIELDS = frozenset({"page", "per_page", "sort", "order"})
MAX_PSEUDONYMS = 100_000
CRITERIA_ONLY = ("search criteria alone cannot be resolved by the job runner (the case index "
                 "lives in the portal): use \"Export this search\" on the portal's search page, "
                 "which sends the criteria with the cases they match, or give pseudonyms")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: dict[str, Any] | None = Field(
        None, description="search criteria as for /api/search (icd10, sex, age_min, ...)")
    pseudonyms: list[str] | None = Field(
        None, description="case (patient) pseudonyms, commas between them")
    dicom: bool = Field(True, description="include the de-identified DICOM files")
    visits: bool = Field(True, description="include the cases' visits as CSV and Parquet")
    nifti: bool = Field(True, description="include NIfTI volumes of CT/MR series (dcm2niix)")
    max_cases: int = Field(10_000, ge=1, le=1_000_000,
                           description="refuse cohorts larger than this")

    @field_validator("criteria", mode="before")
    @classmethod
    def _criteria_text(cls, v):
        """`pacs job submit export --criteria '{"icd10": "C50"}'` gives JSON text."""
        if isinstance(v, str):
            try:
                return json.loads(v) if v.strip() else None
            except ValueError as e:
                raise ValueError(f"criteria is not a JSON object: {e}") from None
        return v

    @field_validator("pseudonyms", mode="before")
    @classmethod
    def _pseudonyms_text(cls, v):
        """`--pseudonyms RS...,RS...` (commas or white space) from the CLI."""
        if isinstance(v, str):
            return re.split(r"[\s,;]+", v)
        return v

    @field_validator("criteria")
    @classmethod
    def _criteria(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return None
        from portal.search.query import CaseQuery   # numpy + ICD tables: only when used
        q = CaseQuery(**{k: val for k, val in v.items() if k not in SEARCH_ONLY_FIELDS})
        if q.is_empty:
            raise ValueError("criteria select every case; give at least one criterion")
        return q.model_dump(mode="json", exclude_defaults=True, exclude=set(SEARCH_ONLY_FIELDS))

    @field_validator("pseudonyms")
    @classmethod
    def _pseudonyms(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        cleaned = list(dict.fromkeys(p.strip().upper() for p in v if p.strip()))
        if not cleaned:
            raise ValueError("pseudonyms is empty")
        if len(cleaned) > MAX_PSEUDONYMS:
            raise ValueError(f"more than {MAX_PSEUDONYMS} pseudonyms")
        bad = [p for p in cleaned if not PSEUDONYM.match(p)]
        if bad:
            raise ValueError(f"{len(bad)} malformed pseudonym(s), first: {bad[0][:70]!r}")
        return cleaned

    @model_validator(mode="after")
    def _one_selection(self) -> "Params":
        if self.pseudonyms is None:
            raise ValueError(CRITERIA_ONLY if self.criteria is not None else
                             "give the case pseudonyms (and, from a search, its criteria)")
        if not (self.dicom or self.visits or self.nifti):
            raise ValueError("nothing to export: dicom, visits and nifti are all off")
        if self.pseudonyms is not None and len(self.pseudonyms) > self.max_cases:
            raise ValueError(f"{len(self.pseudonyms)} pseudonyms exceed max_cases={self.max_cases}")
        return self

    def case_query(self):
        """The criteria as a CaseQuery (None for a pseudonym list)."""
        if self.criteria is None:
            return None
        from portal.search.query import CaseQuery
        return CaseQuery(**self.criteria)

    def selection(self) -> dict[str, Any]:
        """What selected the cohort, as recorded in the manifest: the criteria (when the
        export came from a search) and the case pseudonyms they matched at submit time."""
        out: dict[str, Any] = {}
        if self.criteria is not None:
            out["criteria"] = self.criteria
            out["resolved"] = "by the portal's case index when the export was submitted"
        out["pseudonyms"] = self.pseudonyms
        return out
