"""The five ICD-10 analyses as pure PySpark DataFrame functions: ``(visits_df, params) -> dict``.

``visits_df`` is the visit Parquet read as is (``spark.read.parquet(root)``, schema
``pacs_hdfs.visit_schema``; :func:`read_visits` does that). What is counted is written in
:mod:`.report` (``DEFINITIONS``, also returned in every result) and :mod:`.period`.

Why they are fast:
- each function selects only the columns it needs (nested ones too: ``labs.interpretation``),
  so Parquet reads a few column chunks;
- the period filter is on the partition column ``visit_month`` (whole directories pruned: the
  period's months, and under the ``overlap`` rule only those earlier months that
  :mod:`.stay_index` says may hold a visit still in hospital at the start, passed in as
  ``months``) and ranges on ``admission``/``discharge`` (pushed into the Parquet reader: row
  groups skipped by min/max);
- disease filters are ``exists(icd10, c -> substring(c,1,3) BETWEEN lo AND hi OR ...)``:
  a handful of comparisons per code, no Python UDF, no explode;
- distinct-patient counts are one ``groupBy(patient)`` (hash aggregate on fixed-width buffers:
  ``min_by(int, admission)``, no window, no countDistinct) followed by a tiny aggregate.
Each function runs one query and collects at most a few dozen rows; :data:`ANALYSES` maps names
to functions for the job service.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from .hierarchy import CodeSelection, resolve_codes
from .period import DEFAULT_RULE, Period, check_rule
from . import report

DEFAULT_BINS = (0, 18, 40, 65, 200)
DateLike = dt.date | str
Codes = CodeSelection | list[str] | tuple[str, ...]


# pacs_hdfs.visit_schema.VISIT_SCHEMA as Spark reads it (timestamp[us] without zone -> TIMESTAMP_NTZ);
# a unit test keeps the two equal
VISIT_DDL = (
    "visit_id STRING, patient_id STRING, sex STRING, age SMALLINT, city STRING, "
    "admission TIMESTAMP_NTZ, discharge TIMESTAMP_NTZ, "
    "diagnoses ARRAY<STRUCT<system: STRING, code: STRING, display: STRING, primary: BOOLEAN>>, "
    "icd10 ARRAY<STRING>, "
    "labs ARRAY<STRUCT<code: STRING, name: STRING, value: DOUBLE, unit: STRING, low: DOUBLE, "
    "high: DOUBLE, interpretation: STRING>>, "
    "exams ARRAY<STRUCT<kind: STRING, accession: STRING, text: STRING>>, visit_month STRING")


def read_visits(spark: SparkSession, root: str, months: list[str] | None = None) -> DataFrame:
    """The visit dataset under ``root`` (``root/visit_month=YYYY-MM/*.parquet``).

    ``months``: read only these partitions' directories, with the schema given rather than
    inferred, so Spark neither lists the other months nor opens a footer to plan (the job knows
    both already). ``visit_month`` is still a column, filled from the directory names."""
    if not months:
        return spark.read.option("basePath", root).parquet(root)
    root = root.rstrip("/")
    return (spark.read.schema(VISIT_DDL).option("basePath", root)
            .parquet(*[f"{root}/visit_month={m}" for m in months]))


def _ntz(value: dt.datetime) -> Column:
    """A TIMESTAMP_NTZ literal (admission/discharge are naive local time)."""
    return F.expr(f"TIMESTAMP_NTZ '{value.isoformat(sep=' ')}'")


def in_period(df: DataFrame, period: Period, rule: str = DEFAULT_RULE,
              months: list[str] | None = None) -> DataFrame:
    """Visits in the period under ``rule`` (:mod:`.period`): a partition filter on visit_month
    plus row filters the Parquet reader can push down.

    ``months``: the partitions worth reading (:func:`.stay_index.months_to_read`); None reads every
    month that can hold such a visit by its admission alone (all months up to the period's last
    under ``overlap``). The result is the same either way; ``months`` only prunes."""
    first_month, last_month = period.months
    admission, discharge = F.col("admission"), F.col("discharge")
    if check_rule(rule) == "admitted":
        partitions = F.col("visit_month").between(first_month, last_month)
        rows = (admission >= _ntz(period.start)) & (admission < _ntz(period.end))
    else:
        partitions = F.col("visit_month") <= last_month
        rows = (admission < _ntz(period.end)) & (
            (admission >= _ntz(period.start)) | (discharge > _ntz(period.start)) | discharge.isNull())
    if months is not None:
        partitions = F.col("visit_month").isin(list(months)) if months else F.lit(False)
    return df.where(partitions & rows)


def _selection(codes: Codes) -> CodeSelection:
    return codes if isinstance(codes, CodeSelection) else resolve_codes(list(codes))


def _period_columns(rule: str) -> set[str]:
    return {"admission", "visit_month"} | ({"discharge"} if rule == "overlap" else set())


def _matching(df: DataFrame, codes: CodeSelection, period: Period, rule: str,
              months: list[str] | None, *columns: str) -> DataFrame:
    """Visits in the period with a selected diagnosis, pruned to ``columns``."""
    needed = sorted({*columns, "icd10", *_period_columns(rule)})
    return in_period(df.select(*needed), period, rule, months).where(codes.spark_list_filter("icd10"))


def _on_first_visit(df: DataFrame, period: Period, rule: str, months: list[str] | None,
                    column: str, value: Column) -> DataFrame:
    """One row per patient: ``value`` (a fixed-width int computed from ``column``) taken on their
    first visit in the period.

    ``min_by(int, timestamp)`` keeps a fixed-width aggregation buffer, so Spark runs a hash
    aggregate with map-side combining (a struct or string buffer would fall back to a sort aggregate,
    about twice as slow).
    """
    visits = in_period(df.select("patient_id", column, *_period_columns(rule)), period, rule, months)
    return (visits.where(F.col("patient_id").isNotNull())
            .groupBy("patient_id")
            .agg(F.min_by(value, F.col("admission")).alias("first")))


def _age_bin(age: Column, bins: list[int]) -> Column:
    """Index of the half-open bin holding ``age``; null when outside all bins or unknown."""
    index = F.lit(None).cast("int")
    for i in reversed(range(len(bins) - 1)):
        index = F.when((age >= bins[i]) & (age < bins[i + 1]), F.lit(i)).otherwise(index)
    return index


def age_groups(df: DataFrame, date_from: DateLike, date_to: DateLike,
               bins: list[int] | tuple[int, ...] = DEFAULT_BINS, *, rule: str = DEFAULT_RULE,
               months: list[str] | None = None) -> dict:
    """(a) Patients treated in the period by age group (age at their first visit in the period)."""
    period, bins = Period.of(date_from, date_to), report.check_age_bins(list(bins))
    rows = (_on_first_visit(df, period, rule, months, "age", _age_bin(F.col("age"), bins))
            .groupBy("first").count().collect())
    return report.age_groups_result(period, bins, [(r["first"], r["count"]) for r in rows], rule)


def sex_distribution(df: DataFrame, date_from: DateLike, date_to: DateLike, *,
                     rule: str = DEFAULT_RULE, months: list[str] | None = None) -> dict:
    """(b) Patients treated in the period by sex (sex on their first visit in the period)."""
    period = Period.of(date_from, date_to)
    code = F.lit(report.SEXES.index("UN"))
    for i, sex in enumerate(report.SEXES):
        code = F.when(F.col("sex") == sex, F.lit(i)).otherwise(code)
    rows = _on_first_visit(df, period, rule, months, "sex", code).groupBy("first").count().collect()
    return report.sex_distribution_result(
        period, [(report.SEXES[r["first"]], r["count"]) for r in rows], rule)


def cases_over_time(df: DataFrame, codes: Codes, date_from: DateLike, date_to: DateLike,
                    n_subperiods: int, *, rule: str = DEFAULT_RULE,
                    months: list[str] | None = None) -> dict:
    """(c) Cases (visits) of the disease in the period, per each of N equal sub-periods.

    Under ``overlap`` a visit counts in every sub-period its stay overlaps, so sub-period counts
    may add up to more than the period's ``cases`` (distinct visits)."""
    period, selection = Period.of(date_from, date_to), _selection(codes)
    period.subperiod_bounds(n_subperiods)  # validates n
    n, total = int(n_subperiods), period.total_micros
    start = _ntz(period.start)
    at_admission = F.timestamp_diff("MICROSECOND", start, F.col("admission"))
    first = F.expr(f"(greatest(a, 0) * {n}) div {total}")
    visits = _matching(df, selection, period, rule, months, "patient_id")
    if check_rule(rule) == "admitted":
        spans = visits.select("patient_id", at_admission.alias("a")).select(
            "patient_id", first.alias("k"), F.lit(True).alias("starts"))
    else:
        at_discharge = F.timestamp_diff("MICROSECOND", start, F.col("discharge"))
        last = F.expr(f"(CASE WHEN d IS NULL THEN {total - 1} "
                      f"ELSE least(greatest(d - 1, a), {total - 1}) END * {n}) div {total}")
        spans = (visits.select("patient_id", at_admission.alias("a"), at_discharge.alias("d"))
                 .select("patient_id", first.alias("k0"), last.alias("k1"))
                 .select("patient_id", "k0", F.explode(F.sequence("k0", "k1")).alias("k"))
                 .select("patient_id", "k", (F.col("k") == F.col("k0")).alias("starts")))
    rows = (spans.groupBy("k", "patient_id")
            .agg(F.count(F.lit(1)).alias("n"), F.count(F.when(F.col("starts"), F.lit(1))).alias("s"))
            .groupBy("k").agg(F.sum("n").alias("cases"), F.count("patient_id").alias("patients"),
                              F.sum("s").alias("starting"))
            .collect())
    return report.cases_over_time_result(period, selection, n_subperiods,
                                         [(r["k"], r["cases"], r["patients"]) for r in rows],
                                         rule, total_cases=sum(int(r["starting"]) for r in rows))


def abnormal_labs(df: DataFrame, codes: Codes, date_from: DateLike, date_to: DateLike, *,
                  rule: str = DEFAULT_RULE, months: list[str] | None = None) -> dict:
    """(d) Abnormal lab results (interpretation not null and != 'N') in visits with the disease."""
    period, selection = Period.of(date_from, date_to), _selection(codes)
    interpretations = F.col("labs.interpretation")  # array<string>: only this leaf is read

    def count_where(predicate) -> Column:
        return F.when(interpretations.isNull(), F.lit(0)).otherwise(
            F.size(F.filter(interpretations, predicate)))

    per_visit = _matching(df, selection, period, rule, months, "labs").select(
        F.when(interpretations.isNull(), F.lit(0)).otherwise(F.size(interpretations)).alias("labs"),
        count_where(lambda i: i.isNotNull() & (i != "N")).alias("abnormal"),
        count_where(lambda i: i.isNull()).alias("uninterpreted"))
    row = per_visit.agg(
        F.count(F.lit(1)).alias("visits"),
        F.sum("labs").cast("long").alias("labs"),
        F.sum("abnormal").cast("long").alias("abnormal"),
        F.sum("uninterpreted").cast("long").alias("uninterpreted"),
        F.count(F.when(F.col("abnormal") > 0, F.lit(1))).alias("with_abnormal")).collect()[0]
    return report.abnormal_labs_result(period, selection, row["visits"], row["labs"], row["abnormal"],
                                       row["uninterpreted"], row["with_abnormal"], rule)


def visit_duration(df: DataFrame, codes: Codes, date_from: DateLike, date_to: DateLike, *,
                   rule: str = DEFAULT_RULE, months: list[str] | None = None) -> dict:
    """(e) Mean visit duration (hours, days) of visits with the disease; open visits excluded."""
    period, selection = Period.of(date_from, date_to), _selection(codes)
    micros = F.timestamp_diff("MICROSECOND", F.col("admission"), F.col("discharge"))
    row = (_matching(df, selection, period, rule, months, "discharge")
           .select(micros.alias("us"))
           .agg(F.count(F.lit(1)).alias("visits"),
                F.count(F.when(F.col("us").isNull(), F.lit(1))).alias("open"),
                F.count(F.when(F.col("us") < 0, F.lit(1))).alias("invalid"),
                F.sum(F.when(F.col("us") >= 0, F.col("us").cast("decimal(38,0)"))).alias("total"))
           .collect()[0])
    return report.visit_duration_result(period, selection, row["visits"], row["open"], row["invalid"],
                                        row["total"] if row["total"] is not None else 0, rule)


# name -> function, for the job service: ``ANALYSES[kind](visits_df, **params)``
ANALYSES = {
    "age_groups": age_groups,
    "sex_distribution": sex_distribution,
    "cases_over_time": cases_over_time,
    "abnormal_labs": abnormal_labs,
    "visit_duration": visit_duration,
}
