"""`study-compact`: the lifecycle's compaction (`Lifecycle.compact`) as a job kind of the job
service, so an admin can launch it like any job (`pacs job submit study-compact [--all-series
true] [--grace-s S] --wait`) and see its progress and result; `pacs study compact` runs the same
code in the foreground. It runs on the job runner's driver (no Spark stage: one WebHDFS rewrite
per series with released files), since the work is bounded by what was deleted.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from pacs_hdfs.dicom.lifecycle import Lifecycle


class Params(BaseModel):
    all_series: bool = Field(False, description="also compact every other series directory")
    grace_s: float = Field(3600.0, ge=0, description="unreferenced files no lifecycle record "
                                                     "names are deleted only when this old")


def run(ctx, params: Params) -> dict:
    ctx.progress(0.05, "compacting the files of deleted and rejected objects")
    result = Lifecycle(ctx.settings, ctx.hbase, ctx.hdfs).compact(
        f"job:{ctx.record.user or '-'}", params.all_series, params.grace_s)
    ctx.progress(1.0, f"{result['bytes_deleted']} bytes freed")
    return {**result, "numbers": {"bytes_freed": result["bytes_deleted"],
                                  "released_bytes_reclaimed": result["released_bytes_reclaimed"],
                                  "series": result.get("series", 0),
                                  "seconds": result["seconds"]}}


JOB_KINDS = {"study-compact": (Params, run)}
