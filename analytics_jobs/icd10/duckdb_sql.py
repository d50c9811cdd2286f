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
from .period import Period
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


def period_where(period: Period) -> str:
    """Visits admitted in the period (visit_month first so DuckDB prunes partitions)."""
    first, last = period.months
    return (f"visit_month BETWEEN '{first}' AND '{last}' "
            f"AND admission >= {_ts(period.start)} AND admission < {_ts(period.end)}")


def _selection(codes: Codes) -> CodeSelection:
    return codes if isinstance(codes, CodeSelection) else resolve_codes(list(codes))


def _first_visits_sql(source: str, period: Period) -> str:
    """One row per patient with the age and sex of the first visit in the period."""
    return f"""
        SELECT patient_id,
               arg_min_null(age, admission) AS age,
               arg_min_null(sex, admission) AS sex
        FROM {source}
        WHERE {period_where(period)} AND patient_id IS NOT NULL
        GROUP BY patient_id"""


def age_groups_sql(source: str, date_from: DateLike, date_to: DateLike, bins=DEFAULT_BINS) -> str:
    period, bins = Period.of(date_from, date_to), report.check_age_bins(list(bins))
    cases = " ".join(f"WHEN age >= {lo} AND age < {hi} THEN {i}"
                     for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:])))
    return f"""
        SELECT CASE {cases} ELSE NULL END AS bin, count(*) AS patients
        FROM ({_first_visits_sql(source, period)})
        GROUP BY bin"""


def sex_distribution_sql(source: str, date_from: DateLike, date_to: DateLike) -> str:
    period = Period.of(date_from, date_to)
    return f"""
        SELECT CASE WHEN sex IN ('F', 'M') THEN sex ELSE 'UN' END AS sex, count(*) AS patients
        FROM ({_first_visits_sql(source, period)})
        GROUP BY 1"""


def _matching_where(codes: CodeSelection, period: Period) -> str:
    return f"{period_where(period)} AND {codes.duckdb_list_predicate('icd10')}"


def cases_over_time_sql(source: str, codes: Codes, date_from: DateLike, date_to: DateLike,
                        n_subperiods: int) -> str:
    period, selection = Period.of(date_from, date_to), _selection(codes)
    offset = f"date_diff('microsecond', {_ts(period.start)}, admission)"
    return f"""
        SELECT ({offset} * {int(n_subperiods)}) // {period.total_micros} AS k,
               count(*) AS cases, count(DISTINCT patient_id) AS patients
        FROM {source}
        WHERE {_matching_where(selection, period)}
        GROUP BY k"""


def abnormal_labs_sql(source: str, codes: Codes, date_from: DateLike, date_to: DateLike) -> str:
    period, selection = Period.of(date_from, date_to), _selection(codes)
    return f"""
        WITH per_visit AS (
            SELECT coalesce(len(labs), 0) AS labs,
                   coalesce(len(list_filter(labs, lambda l: l.interpretation IS NOT NULL
                                                      AND l.interpretation <> 'N')), 0) AS abnormal,
                   coalesce(len(list_filter(labs, lambda l: l.interpretation IS NULL)), 0) AS uninterpreted
            FROM {source}
            WHERE {_matching_where(selection, period)})
        SELECT count(*) AS visits, sum(labs) AS labs, sum(abnormal) AS abnormal,
               sum(uninterpreted) AS uninterpreted, count(*) FILTER (WHERE abnormal > 0) AS with_abnormal
        FROM per_visit"""


def visit_duration_sql(source: str, codes: Codes, date_from: DateLike, date_to: DateLike) -> str:
    period, selection = Period.of(date_from, date_to), _selection(codes)
    return f"""
        WITH d AS (
            SELECT date_diff('microsecond', admission, discharge) AS us
            FROM {source}
            WHERE {_matching_where(selection, period)})
        SELECT count(*) AS visits,
               count(*) FILTER (WHERE us IS NULL) AS open,
               count(*) FILTER (WHERE us < 0) AS invalid,
               coalesce(sum(us::HUGEINT) FILTER (WHERE us >= 0), 0) AS total
        FROM d"""


def duckdb_age_groups(con: duckdb.DuckDBPyConnection, source: str, date_from: DateLike,
                      date_to: DateLike, bins=DEFAULT_BINS) -> dict:
    rows = con.sql(age_groups_sql(source, date_from, date_to, bins)).fetchall()
    return report.age_groups_result(Period.of(date_from, date_to), list(bins), rows)


def duckdb_sex_distribution(con: duckdb.DuckDBPyConnection, source: str, date_from: DateLike,
                            date_to: DateLike) -> dict:
    rows = con.sql(sex_distribution_sql(source, date_from, date_to)).fetchall()
    return report.sex_distribution_result(Period.of(date_from, date_to), rows)


def duckdb_cases_over_time(con: duckdb.DuckDBPyConnection, source: str, codes: Codes,
                           date_from: DateLike, date_to: DateLike, n_subperiods: int) -> dict:
    selection = _selection(codes)
    rows = con.sql(cases_over_time_sql(source, selection, date_from, date_to, n_subperiods)).fetchall()
    return report.cases_over_time_result(Period.of(date_from, date_to), selection, n_subperiods, rows)


def duckdb_abnormal_labs(con: duckdb.DuckDBPyConnection, source: str, codes: Codes,
                         date_from: DateLike, date_to: DateLike) -> dict:
    selection = _selection(codes)
    row = con.sql(abnormal_labs_sql(source, selection, date_from, date_to)).fetchone()
    return report.abnormal_labs_result(Period.of(date_from, date_to), selection, *row)


def duckdb_visit_duration(con: duckdb.DuckDBPyConnection, source: str, codes: Codes,
                          date_from: DateLike, date_to: DateLike) -> dict:
    selection = _selection(codes)
    row = con.sql(visit_duration_sql(source, selection, date_from, date_to)).fetchone()
    return report.visit_duration_result(Period.of(date_from, date_to), selection, *row)


# name -> runner, mirroring ``analyses.ANALYSES``: ``DUCKDB_ANALYSES[kind](con, source, **params)``
DUCKDB_ANALYSES = {
    "age_groups": duckdb_age_groups,
    "sex_distribution": duckdb_sex_distribution,
    "cases_over_time": duckdb_cases_over_time,
    "abnormal_labs": duckdb_abnormal_labs,
    "visit_duration": duckdb_visit_duration,
}
