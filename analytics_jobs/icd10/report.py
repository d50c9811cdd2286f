"""Result dicts of the five ICD-10 analyses, built from engine-neutral aggregates.

Spark (:mod:`.analyses`) and DuckDB (:mod:`.duckdb_sql`) each compute only small integer
aggregates; the functions here turn them into the same JSON-ready dict, so the two engines can be
compared with ``==``. Means are computed here from exact integer sums, never inside an engine,
so they are bit-identical across engines.

Every dict carries ``definitions``: what exactly was counted, in words.
"""
from __future__ import annotations

from typing import Iterable

from .hierarchy import CodeSelection
from .period import DEFAULT_RULE, PERIOD_RULES, Period, check_rule

MICROS_PER_HOUR = 3_600_000_000
AGE_TOP = 90   # hl7_gateway.models.AGE_TOP: an age of 90 means "90 or more"
# deid.pseudonyms.MAX_SHIFT_DAYS (the data center may not import deid; a unit test keeps the
# two equal): the largest per-patient date shift of the default date policy.
MAX_SHIFT_DAYS = 3650
SEXES = ("F", "M", "UN")   # HL7 AdministrativeGender; anything else or null counts as UN

CODE_RULE = ("A visit matches the disease when any of its ICD-10 codes (column icd10: primary and "
             "secondary diagnoses) is in the selection; chapters, blocks and categories include all sub-codes.")
FIRST_VISIT_RULE = ("Each patient is counted once, with the age/sex recorded on their first visit in the "
                    "period (earliest admission; two visits of one patient admitted in the same microsecond, "
                    "i.e. a duplicate record, resolve to either). Visits without patient_id are ignored.")

DATE_RULE = (
    "Admission and discharge are the dates the hospital sent. Under the default date policy 'shift' "
    "(pacs.toml deid_date_policy) every date of a patient, in visits and in DICOM studies alike, is "
    "moved earlier by one secret per-patient offset of 1 to %d days (deid.pseudonyms.MAX_SHIFT_DAYS), "
    "so period boundaries apply to shifted dates: a visit counted in [date_from, date_to] was truly "
    "admitted between date_from + 1 day and date_to + %d days, and calendar sub-periods, months and "
    "seasons are not true calendar periods (each patient's visits move together, different "
    "patients by different offsets). Durations, intervals between one patient's visits and ages "
    "are exact. Under 'retain' the dates are true." % (MAX_SHIFT_DAYS, MAX_SHIFT_DAYS))

DEFINITIONS = {
    "age_groups": {
        "unit": "patients",
        "patient": FIRST_VISIT_RULE,
        "age": ("Whole years at admission (column age) of that first visit, top-coded: 90 means "
                "'90 or more' (an exact age above 89 identifies), so the group holding 90 holds everyone "
                "aged 90 or more and is labelled '<from>+'; inner bin edges above 90 are refused."),
        "groups": "Half-open intervals [bins[i], bins[i+1]); ages outside all bins or null count as unknown_age.",
        "missing_discharge": "Irrelevant: visits without discharge are counted.",
    },
    "sex_distribution": {
        "unit": "patients",
        "patient": FIRST_VISIT_RULE,
        "sex": "HL7 AdministrativeGender of that first visit: F, M, UN; null or any other value is counted as UN.",
        "missing_discharge": "Irrelevant: visits without discharge are counted.",
    },
    "cases_over_time": {
        "unit": "cases = visits (distinct visit rows) with a matching diagnosis; patients also given",
        "why": ("A hospital episode is the natural unit of workload and incidence; a patient admitted "
                "twice is two cases. 'patients' gives distinct patients with a matching visit in each "
                "sub-period (a patient may appear in several sub-periods)."),
        "codes": CODE_RULE,
        "subperiods": ("[start, end) split into N equal half-open sub-periods in microseconds; sub-period "
                       "k holds the instants t with floor((t - start) * N / (end - start)) = k. Rule "
                       "'admitted': a visit counts in the sub-period holding its admission. Rule 'overlap': "
                       "in every sub-period its stay [admission, discharge) overlaps (an open visit up to "
                       "the last; a zero-length or invalid stay at its admission), so the sub-periods' cases "
                       "may add up to more than 'cases', the distinct visits of the period."),
        "missing_discharge": "Irrelevant: visits without discharge are counted.",
    },
    "abnormal_labs": {
        "unit": "lab results (elements of labs) of matching visits",
        "codes": CODE_RULE,
        "abnormal": "interpretation not null and not 'N' (H, L, HH, LL, A, ...).",
        "uninterpreted": "interpretation null: neither normal nor abnormal.",
        "abnormal_fraction": "abnormal / (lab_results - uninterpreted); null when nothing was interpreted.",
        "missing_discharge": "Irrelevant: labs of visits without discharge are counted.",
    },
    "visit_duration": {
        "unit": "visits with a matching diagnosis",
        "codes": CODE_RULE,
        "duration": "discharge - admission, exact to the microsecond; mean_days = mean_hours / 24.",
        "missing_discharge": ("Visits without discharge (still admitted) are excluded from the means and "
                              "reported as open_visits; discharge before admission is excluded as invalid_visits."),
    },
}


for _definition in DEFINITIONS.values():
    _definition["dates"] = DATE_RULE


def _base(name: str, period: Period, rule: str, codes: CodeSelection | None = None) -> dict:
    definitions = {**DEFINITIONS[name], "period": PERIOD_RULES[check_rule(rule)]}
    out = {"analysis": name, "period": {**period.as_dict(), "rule": rule}, "definitions": definitions}
    if codes is not None:
        out["codes"] = {"specs": list(codes.specs), "ranges": [list(r) for r in codes.ranges],
                        "prefixes": list(codes.prefixes)}
    return out


def age_group_labels(bins: list[int]) -> list[str]:
    """``[0, 18, 40]`` -> ``['0-17', '18-39']`` (whole-year ages); the group holding the top code
    90 ("90 or more") is open-ended: ``[65, 200]`` -> ``['65+']``."""
    return [f"{lo}+" if lo <= AGE_TOP < hi else f"{lo}-{hi - 1}"
            for lo, hi in zip(bins[:-1], bins[1:])]


def check_age_bins(bins: list[int]) -> list[int]:
    """Ascending distinct edges, at least two, no inner edge above 90: ages are stored top-coded
    at 90 ("90 or more"), so a group cannot start or end between 90 and the oldest patient."""
    if len(bins) < 2 or bins != sorted(set(bins)):
        raise ValueError(f"bins must be at least two ascending, distinct edges: {bins}")
    if any(edge > AGE_TOP for edge in bins[1:-1]):
        raise ValueError(f"inner age bin edges above {AGE_TOP} cannot be resolved: ages are "
                         f"stored top-coded, {AGE_TOP} meaning '{AGE_TOP} or more'")
    return bins


def age_groups_result(period: Period, bins: list[int], counts: Iterable[tuple[int | None, int]],
                      rule: str = DEFAULT_RULE) -> dict:
    """``counts``: (bin index or None for unknown age, patients)."""
    by_bin = {b: int(n) for b, n in counts}
    groups = [{"label": label, "from": lo, "to_exclusive": hi, "patients": by_bin.get(i, 0)}
              for i, (label, lo, hi) in enumerate(zip(age_group_labels(bins), bins[:-1], bins[1:]))]
    unknown = by_bin.get(None, 0)
    return {**_base("age_groups", period, rule), "bins": list(bins), "groups": groups,
            "unknown_age": unknown, "patients": sum(by_bin.values())}


def sex_distribution_result(period: Period, counts: Iterable[tuple[str, int]],
                            rule: str = DEFAULT_RULE) -> dict:
    """``counts``: (sex code, already one of SEXES, patients)."""
    by_sex = {s: 0 for s in SEXES}
    for sex, n in counts:
        by_sex[sex] = by_sex.get(sex, 0) + int(n)
    return {**_base("sex_distribution", period, rule), "patients": sum(by_sex.values()),
            "counts": dict(sorted(by_sex.items()))}


def cases_over_time_result(period: Period, codes: CodeSelection, n: int,
                           rows: Iterable[tuple[int, int, int]], rule: str = DEFAULT_RULE,
                           total_cases: int | None = None) -> dict:
    """``rows``: (sub-period index, cases, distinct patients); ``total_cases``: distinct visits of
    the period (default: the sum over sub-periods, exact when each visit counts in one)."""
    by_k = {int(k): (int(c), int(p)) for k, c, p in rows}
    subperiods = [{"index": k, "start": lo.isoformat(), "end_exclusive": hi.isoformat(),
                   "cases": by_k.get(k, (0, 0))[0], "patients": by_k.get(k, (0, 0))[1]}
                  for k, (lo, hi) in enumerate(period.subperiod_bounds(n))]
    return {**_base("cases_over_time", period, rule, codes), "n_subperiods": n, "subperiods": subperiods,
            "cases": int(total_cases) if total_cases is not None else sum(s["cases"] for s in subperiods)}


def abnormal_labs_result(period: Period, codes: CodeSelection, visits: int, lab_results: int,
                         abnormal: int, uninterpreted: int, visits_with_abnormal: int,
                         rule: str = DEFAULT_RULE) -> dict:
    interpreted = int(lab_results or 0) - int(uninterpreted or 0)
    return {**_base("abnormal_labs", period, rule, codes), "visits": int(visits),
            "lab_results": int(lab_results or 0), "abnormal": int(abnormal or 0),
            "uninterpreted": int(uninterpreted or 0),
            "visits_with_abnormal": int(visits_with_abnormal or 0),
            "abnormal_fraction": (int(abnormal or 0) / interpreted) if interpreted else None}


def visit_duration_result(period: Period, codes: CodeSelection, visits: int, open_visits: int,
                          invalid_visits: int, total_micros: int | None, rule: str = DEFAULT_RULE) -> dict:
    measured = int(visits) - int(open_visits) - int(invalid_visits)
    mean_hours = int(total_micros) / measured / MICROS_PER_HOUR if measured else None
    return {**_base("visit_duration", period, rule, codes), "visits": int(visits),
            "visits_measured": measured, "open_visits": int(open_visits),
            "invalid_visits": int(invalid_visits), "mean_hours": mean_hours,
            "mean_days": mean_hours / 24 if mean_hours is not None else None}
