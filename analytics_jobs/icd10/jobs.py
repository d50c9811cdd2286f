"""The five ICD-10 analyses as job kinds of the job service (`pacs job submit icd10-...`).

Each job reads the visit Parquet on HDFS (default `<hdfs_root>/visits/parquet`, partitioned by
visit_month), runs one analysis of `analyses.py` on the runner's warm SparkSession, and returns the
result document: parameters, the numbers with their `definitions`, and provenance (input path,
snapshot of the input files, row counts, Spark configuration — the runner adds host facts and
runtime). A chart (PNG) is stored next to `result.json` under `jobs/<id>/`.
"""
from __future__ import annotations

import datetime as dt
import time

from pydantic import BaseModel, Field, field_validator, model_validator

from analytics_jobs.context import JobContext
from analytics_jobs.icd10 import analyses
from analytics_jobs.icd10.charts import chart_png

DEFAULT_SOURCE = "visits/parquet"


def _split(value):
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class PeriodParams(BaseModel):
    date_from: dt.date = Field(description="first day of the period (inclusive)")
    date_to: dt.date = Field(description="last day of the period (inclusive)")
    source: str = Field(DEFAULT_SOURCE, description="visit Parquet root on HDFS")

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


def _visits(ctx: JobContext, p: PeriodParams):
    root = ctx.hdfs.abs(p.source)
    files = [f for f in ctx.hdfs.walk_files(root) if f.endswith(".parquet")]
    if not files:
        raise FileNotFoundError(f"no visit Parquet files under {root}")
    df = analyses.read_visits(ctx.spark, ctx.hdfs.url(root))
    return df, {"input": ctx.hdfs.url(root), "input_files": len(files)}


def _run(name: str, call):
    def run(ctx: JobContext, p: PeriodParams) -> dict:
        ctx.progress(0.05, "reading visits")
        df, provenance = _visits(ctx, p)
        ctx.progress(0.2, f"computing {name}")
        t0 = time.monotonic()
        numbers = call(df, p)
        spark_s = time.monotonic() - t0
        provenance["rows_in_input"] = df.count()
        provenance["spark_seconds"] = round(spark_s, 3)
        ctx.progress(0.9, "chart")
        ctx.write_artifact("chart.png", chart_png(numbers))
        return {"numbers": numbers, "provenance": provenance}
    return run


JOB_KINDS = {
    "icd10-age": (AgeParams, _run("age_groups", lambda df, p: analyses.age_groups(
        df, p.date_from, p.date_to, p.bins))),
    "icd10-sex": (PeriodParams, _run("sex_distribution", lambda df, p: analyses.sex_distribution(
        df, p.date_from, p.date_to))),
    "icd10-cases": (CasesParams, _run("cases_over_time", lambda df, p: analyses.cases_over_time(
        df, p.codes, p.date_from, p.date_to, p.subperiods))),
    "icd10-abnormal-labs": (CodesParams, _run("abnormal_labs", lambda df, p: analyses.abnormal_labs(
        df, p.codes, p.date_from, p.date_to))),
    "icd10-visit-duration": (CodesParams, _run("visit_duration",
                                               lambda df, p: analyses.visit_duration(
                                                   df, p.codes, p.date_from, p.date_to))),
}
