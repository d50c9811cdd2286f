"""The five ICD-10 analyses as DuckDB SQL: an independent implementation for cross-checks and
benchmarks. Same definitions as the Spark functions (:mod:`.report`, :mod:`.period`); the SQL
builders return plain strings, the ``duckdb_*`` runners execute them and shape the same dicts.

``source`` is anything usable after FROM; :func:`parquet_source` reads the hive-partitioned
visit directory with ``visit_month`` kept as VARCHAR so the period filter prunes files.
"""
from __future__ import annotations

import datetime as dt

import duckdb

from .hierarchy import CodeSelection, resolve_codes
from .period import DEFAULT_RULE, Period, check_rule
from . import report

DEFAULT_BINS = (0, 18, 40, 65, 200)
DateLike = dt.date | str
Codes = CodeSelection | list[str] | tuple[str, ...]


def parquet_source(root: str) -> str:
    """FROM-clause reading ``root/visit_month=YYYY-MM/*.parquet``."""
    path = f"{str(root).rstrip('/')}/*/*.parquet".replace("'", "''")
    return (f"read_parquet('{path}', hive_partitioning = true, "
            f"hive_types = {{'visit_month': VARCHAR}})")


def _ts(value: dt.datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def period_where(period: Period, rule: str = DEFAULT_RULE) -> str:
    """Visits in the period under ``rule`` (visit_month first so DuckDB prunes partitions).
    Written from the rule's words in :mod:`.period`, without the Spark job's stay index: every
    month up to the period's last is considered under ``overlap``."""
    first, last = period.months
    start, end = _ts(period.start), _ts(period.end)
    if check_rule(rule) == "admitted":
        return (f"visit_month BETWEEN '{first}' AND '{last}' "
                f"AND admission >= {start} AND admission < {end}")
    return (f"visit_month <= '{last}' AND admission < {end} "
            f"AND (admission >= {start} OR discharge > {start} OR discharge IS NULL)")


def _selection(codes: Codes) -> CodeSelection:
    return codes if isinstance(codes, CodeSelection) else resolve_codes(list(codes))


def _first_visits_sql(source: str, period: Period, rule: str) -> str:
    """One row per patient with the age and sex of the first visit in the period."""
    return f"""
        SELECT patient_id,
               arg_min_null(age, admission) AS age,
               arg_min_null(sex, admission) AS sex
        FROM {source}
        WHERE {period_where(period, rule)} AND patient_id IS NOT NULL
        GROUP BY patient_id"""


def age_groups_sql(source: str, date_from: DateLike, date_to: DateLike, bins=DEFAULT_BINS,
                   rule: str = DEFAULT_RULE) -> str:
    period, bins = Period.of(date_from, date_to), report.check_age_bins(list(bins))
    cases = " ".join(f"WHEN age >= {lo} AND age < {hi} THEN {i}"
                     for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:])))
    return f"""
        SELECT CASE {cases} ELSE NULL END AS bin, count(*) AS patients
        FROM ({_first_visits_sql(source, period, rule)})
        GROUP BY bin"""


def sex_distribution_sql(source: str, date_from: DateLike, date_to: DateLike,
                         rule: str = DEFAULT_RULE) -> str:
    period = Period.of(date_from, date_to)
    return f"""
        SELECT CASE WHEN sex IN ('F', 'M') THEN sex ELSE 'UN' END AS sex, count(*) AS patients
        FROM ({_first_visits_sql(source, period, rule)})
        GROUP BY 1"""


def _matching_where(codes: CodeSelection, period: Period, rule: str) -> str:
    return f"{period_where(period, rule)} AND {codes.duckdb_list_predicate('icd10')}"


def cases_over_time_sql(source: str, codes: Codes, date_from: DateLike, date_to: DateLike,
                        n_subperiods: int, rule: str = DEFAULT_RULE) -> str:
    """Rows (k, cases, patients, starting): ``starting`` counts visits whose first sub-period is k,
    so its sum is the period's distinct visits."""
    period, selection = Period.of(date_from, date_to), _selection(codes)
    n, total = int(n_subperiods), period.total_micros
    offset = f"date_diff('microsecond', {_ts(period.start)}, admission)"
    if check_rule(rule) == "admitted":
        return f"""
            SELECT ({offset} * {n}) // {total} AS k,
                   count(*) AS cases, count(DISTINCT patient_id) AS patients, count(*) AS starting
            FROM {source}
            WHERE {_matching_where(selection, period, rule)}
            GROUP BY k"""
    # a stay [admission, discharge) spans the sub-periods of its first and last instant in the period
    until = f"date_diff('microsecond', {_ts(period.start)}, discharge)"
    return f"""
        WITH spans AS (
            SELECT patient_id,
                   (greatest({offset}, 0) * {n}) // {total} AS k0,
                   ((CASE WHEN discharge IS NULL THEN {total - 1}
                          ELSE least(greatest({until} - 1, {offset}), {total - 1}) END) * {n}) // {total} AS k1
            FROM {source}
            WHERE {_matching_where(selection, period, rule)}),
        per_k AS (SELECT patient_id, k0, unnest(generate_series(k0, k1)) AS k FROM spans)
        SELECT k, count(*) AS cases, count(DISTINCT patient_id) AS patients,
               count(*) FILTER (WHERE k = k0) AS starting
        FROM per_k
        GROUP BY k"""


def abnormal_labs_sql(source: str, codes: Codes, date_from: DateLike, date_to: DateLike,
                      rule: str = DEFAULT_RULE) -> str:
    period, selection = Period.of(date_from, date_to), _selection(codes)
    return f"""
        WITH per_visit AS (
            SELECT coalesce(len(labs), 0) AS labs,
                   coalesce(len(list_filter(labs, lambda l: l.interpretation IS NOT NULL
                                                      AND l.interpretation <> 'N')), 0) AS abnormal,
                   coalesce(len(list_filter(labs, lambda l: l.interpretation IS NULL)), 0) AS uninterpreted
            FROM {source}
            WHERE {_matching_where(selection, period, rule)})
        SELECT count(*) AS visits, sum(labs) AS labs, sum(abnormal) AS abnormal,
               sum(uninterpreted) AS uninterpreted, count(*) FILTER (WHERE abnormal > 0) AS with_abnormal
        FROM per_visit"""


def visit_duration_sql(source: str, codes: Codes, date_from: DateLike, date_to: DateLike,
                       rule: str = DEFAULT_RULE) -> str:
    period, selection = Period.of(date_from, date_to), _selection(codes)
    return f"""
        WITH d AS (
            SELECT date_diff('microsecond', admission, discharge) AS us
            FROM {source}
            WHERE {_matching_where(selection, period, rule)})
        SELECT count(*) AS visits,
               count(*) FILTER (WHERE us IS NULL) AS open,
               count(*) FILTER (WHERE us < 0) AS invalid,
               coalesce(sum(us::HUGEINT) FILTER (WHERE us >= 0), 0) AS total
        FROM d"""


def duckdb_age_groups(con: duckdb.DuckDBPyConnection, source: str, date_from: DateLike,
                      date_to: DateLike, bins=DEFAULT_BINS, *, rule: str = DEFAULT_RULE) -> dict:
    rows = con.sql(age_groups_sql(source, date_from, date_to, bins, rule)).fetchall()
    return report.age_groups_result(Period.of(date_from, date_to), list(bins), rows, rule)


def duckdb_sex_distribution(con: duckdb.DuckDBPyConnection, source: str, date_from: DateLike,
                            date_to: DateLike, *, rule: str = DEFAULT_RULE) -> dict:
    rows = con.sql(sex_distribution_sql(source, date_from, date_to, rule)).fetchall()
    return report.sex_distribution_result(Period.of(date_from, date_to), rows, rule)


def duckdb_cases_over_time(con: duckdb.DuckDBPyConnection, source: str, codes: Codes,
                           date_from: DateLike, date_to: DateLike, n_subperiods: int, *,
                           rule: str = DEFAULT_RULE) -> dict:
    selection = _selection(codes)
    rows = con.sql(cases_over_time_sql(source, selection, date_from, date_to, n_subperiods,
                                       rule)).fetchall()
    return report.cases_over_time_result(Period.of(date_from, date_to), selection, n_subperiods,
                                         [r[:3] for r in rows], rule,
                                         total_cases=sum(int(r[3]) for r in rows))


def duckdb_abnormal_labs(con: duckdb.DuckDBPyConnection, source: str, codes: Codes,
                         date_from: DateLike, date_to: DateLike, *, rule: str = DEFAULT_RULE) -> dict:
    selection = _selection(codes)
    row = con.sql(abnormal_labs_sql(source, selection, date_from, date_to, rule)).fetchone()
    return report.abnormal_labs_result(Period.of(date_from, date_to), selection, *row, rule)


def duckdb_visit_duration(con: duckdb.DuckDBPyConnection, source: str, codes: Codes,
                          date_from: DateLike, date_to: DateLike, *, rule: str = DEFAULT_RULE) -> dict:
    selection = _selection(codes)
    row = con.sql(visit_duration_sql(source, selection, date_from, date_to, rule)).fetchone()
    return report.visit_duration_result(Period.of(date_from, date_to), selection, *row, rule)


# name -> runner, mirroring ``analyses.ANALYSES``: ``DUCKDB_ANALYSES[kind](con, source, **params)``
DUCKDB_ANALYSES = {
    "age_groups": duckdb_age_groups,
    "sex_distribution": duckdb_sex_distribution,
    "cases_over_time": duckdb_cases_over_time,
    "abnormal_labs": duckdb_abnormal_labs,
    "visit_duration": duckdb_visit_duration,
}
