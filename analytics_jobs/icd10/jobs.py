"""The five ICD-10 analyses as job kinds of the job service (`pacs job submit icd10-...`).

Each job lists the visit Parquet on HDFS (default `<hdfs_root>/visits/parquet`, partitioned by
visit_month), reads the files' footers once per runner (`stay_index.py`: latest discharge, open
visits and rows per month), picks the months the period rule needs (`period_rule`: `overlap`, the
default, or `admitted`; see `period.py`), runs one analysis of `analyses.py` over only those
months on the runner's warm SparkSession, and returns the result document: parameters, the
numbers with their `definitions`, and provenance (input path, files, rows, months read, Spark
time; the runner adds host facts and runtime). A chart (PNG) is stored next to `result.json`
under `jobs/<id>/`.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from analytics_jobs.context import JobContext
from analytics_jobs.icd10 import analyses, stay_index
from analytics_jobs.icd10.charts import chart_png
from analytics_jobs.icd10.period import Period

DEFAULT_SOURCE = "visits/parquet"


def _split(value):
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class PeriodParams(BaseModel):
    date_from: dt.date = Field(description="first day of the period (inclusive)")
    date_to: dt.date = Field(description="last day of the period (inclusive)")
    source: str = Field(DEFAULT_SOURCE, description="visit Parquet root on HDFS")
    period_rule: Literal["overlap", "admitted"] = Field(
        "overlap", description="overlap: visits whose stay overlaps the period (patients treated in "
        "it, the default); admitted: visits admitted in the period")

    @model_validator(mode="after")
    def _ordered(self):
        if self.date_to < self.date_from:
            raise ValueError("date_to is before date_from")
        return self


class AgeParams(PeriodParams):
    bins: list[int] = Field([0, 18, 40, 65, 200], description="age interval edges, ascending; "
                            "ages are top-coded at 90 ('90 or more'), no inner edge above 90")

    @field_validator("bins", mode="before")
    @classmethod
    def _bins(cls, v):
        from analytics_jobs.icd10.report import check_age_bins
        return check_age_bins([int(x) for x in _split(v)])


class CodesParams(PeriodParams):
    codes: list[str] = Field(description="ICD-10 chapters, blocks, categories, codes or text")

    @field_validator("codes", mode="before")
    @classmethod
    def _codes(cls, v):
        v = _split(v)
        if not v:
            raise ValueError("at least one code")
        from analytics_jobs.icd10.hierarchy import resolve_codes
        if resolve_codes(v).is_empty:  # unknown codes fail here too, before queueing
            raise ValueError(f"no ICD-10 code matches {', '.join(v)}")
        return v


class CasesParams(CodesParams):
    subperiods: int = Field(12, ge=1, le=1000, description="number of equal sub-periods")


def _parquet_files(ctx: JobContext, root: str) -> list:
    """FileInfo of every ``visit_month=*/*.parquet`` under ``root`` (one listing per month)."""
    files = []
    for entry in ctx.hdfs.list_status(root):
        if entry.is_dir and stay_index.month_of(entry.path + "/"):
            files += [f for f in ctx.hdfs.list_status(entry.path)
                      if not f.is_dir and f.path.endswith(".parquet")]
    return files


def _visits(ctx: JobContext, p: PeriodParams):
    """The visit DataFrame, the partitions this period needs under the rule, and provenance."""
    root = ctx.hdfs.abs(p.source)
    files = _parquet_files(ctx, root)
    if not files:
        raise FileNotFoundError(f"no visit Parquet files under {root}")
    period = Period.of(p.date_from, p.date_to)
    all_months = sorted({stay_index.month_of(f.path) for f in files})
    # every footer once per runner (cached by path, length, mtime): the stay index of the months
    # before the period, and the row count of the input without a Spark job
    index = stay_index.hdfs_index(ctx.hdfs, files)
    months = stay_index.months_to_read(all_months, index, period, p.period_rule)
    df = analyses.read_visits(ctx.spark, ctx.hdfs.url(root), months)
    return df, months, {"input": ctx.hdfs.url(root), "input_files": len(files),
                        "rows_in_input": sum(s.rows for s in index.values()),
                        "period_rule": p.period_rule, "months_read": months}


def _run(name: str, call):
    def run(ctx: JobContext, p: PeriodParams) -> dict:
        ctx.progress(0.05, "reading visits")
        df, months, provenance = _visits(ctx, p)
        ctx.progress(0.2, f"computing {name}")
        t0 = time.monotonic()
        numbers = call(df, p, {"rule": p.period_rule, "months": months})
        spark_s = time.monotonic() - t0
        provenance["spark_seconds"] = round(spark_s, 3)
        ctx.progress(0.9, "chart")
        ctx.write_artifact("chart.png", chart_png(numbers))
        return {"numbers": numbers, "provenance": provenance}
    return run


JOB_KINDS = {
    "icd10-age": (AgeParams, _run("age_groups", lambda df, p, kw: analyses.age_groups(
        df, p.date_from, p.date_to, p.bins, **kw))),
    "icd10-sex": (PeriodParams, _run("sex_distribution", lambda df, p, kw: analyses.sex_distribution(
        df, p.date_from, p.date_to, **kw))),
    "icd10-cases": (CasesParams, _run("cases_over_time", lambda df, p, kw: analyses.cases_over_time(
        df, p.codes, p.date_from, p.date_to, p.subperiods, **kw))),
    "icd10-abnormal-labs": (CodesParams, _run("abnormal_labs", lambda df, p, kw: analyses.abnormal_labs(
        df, p.codes, p.date_from, p.date_to, **kw))),
    "icd10-visit-duration": (CodesParams, _run("visit_duration",
                                               lambda df, p, kw: analyses.visit_duration(
                                                   df, p.codes, p.date_from, p.date_to, **kw))),
}
