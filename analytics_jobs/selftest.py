"""`spark-selftest`: a tiny job that exercises the job service end to end (Spark, HDFS output,
progress, cancel). Sums 0..n-1 on the cluster; `sleep_s` per partition makes cancel testable."""
from __future__ import annotations

import time

from pydantic import BaseModel, Field

from analytics_jobs.context import JobContext


class Params(BaseModel):
    n: int = Field(1_000_000, ge=1, le=10**9)
    partitions: int = Field(4, ge=1, le=256)
    sleep_s: float = Field(0.0, ge=0, le=600)


def run(ctx: JobContext, p: Params) -> dict:
    sc = ctx.spark.sparkContext
    ctx.progress(0.1, "summing")
    sleep_s = p.sleep_s

    def part_sum(it):
        if sleep_s:
            time.sleep(sleep_s)
        yield sum(it)
    total = sc.parallelize(range(p.n), p.partitions).mapPartitions(part_sum).sum()
    ctx.progress(1.0, "done")
    return {"numbers": {"sum": total, "expected": p.n * (p.n - 1) // 2}}


JOB_KINDS = {"spark-selftest": (Params, run)}
