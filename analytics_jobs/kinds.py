"""The job kinds the service can run, as a table: kind -> module holding `Params` and `run`.

A kind module defines `JOB_KINDS = {kind: (Params, run)}` where
    class Params(pydantic.BaseModel): ...            # validated parameters (CLI and portal)
    def run(ctx: JobContext, params: Params) -> dict  # the result document
and stays free of CLI/portal code. Modules are imported only when a job of that kind is validated
or run, so `pacs` starts fast.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

KINDS: dict[str, str] = {
    "icd10-age": "analytics_jobs.icd10.jobs",
    "icd10-sex": "analytics_jobs.icd10.jobs",
    "icd10-cases": "analytics_jobs.icd10.jobs",
    "icd10-abnormal-labs": "analytics_jobs.icd10.jobs",
    "icd10-visit-duration": "analytics_jobs.icd10.jobs",
    "fdk": "recon_mapreduce.spark_job",
    "scc-sweep": "analytics_jobs.scc.spark_sweep",
    "spark-selftest": "analytics_jobs.selftest",
    "fsck": "pacs_hdfs.dicom.fsck_job",
    "study-compact": "pacs_hdfs.dicom.lifecycle_job",
    "export": "analytics_jobs.export.job",
    "search-rebuild": "portal.search.rebuild",     # case-search documents from the visits
}


class UnknownKind(ValueError):
    pass


def kind_spec(kind: str) -> tuple[type, Callable]:
    """(Params model, run function) of a kind."""
    if kind not in KINDS:
        raise UnknownKind(f"unknown job kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    module: ModuleType = importlib.import_module(KINDS[kind])
    return module.JOB_KINDS[kind]


def validate_params(kind: str, raw: dict) -> dict:
    """Validate raw parameters (strings from the CLI or a form) into the kind's JSON form."""
    params_model, _ = kind_spec(kind)
    return params_model.model_validate(raw).model_dump(mode="json")
