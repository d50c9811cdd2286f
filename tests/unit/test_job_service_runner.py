"""Who runs a job with `embedded = false` (analytics_jobs/service.py): runner heartbeats, the
external runner's refusal before queueing, and a clear error instead of a hang (issue 16).
On an in-memory store."""
from __future__ import annotations

import time

import pytest

from analytics_jobs.jobs import JobStore
from analytics_jobs.service import JobService, RunnerUnavailable
from pacs_hdfs.settings import Settings
from tests.memory_store import MemoryStore


def service(tmp_path, **kw) -> JobService:
    svc = JobService.__new__(JobService)
    svc.s = Settings(embedded=False, home=tmp_path, **kw)
    svc.store = JobStore(MemoryStore())
    return svc


def test_fresh_heartbeats_count_and_stale_or_leaving_ones_do_not(tmp_path):
    svc = service(tmp_path)
    svc.store.beat("a", {"beat": f"{time.time():.1f}", "pid": 1})
    svc.store.beat("b", {"beat": f"{time.time() - 600:.1f}", "pid": 2})
    svc.store.beat("c", {"beat": "0", "pid": 3})        # a runner that left
    assert [r["host"] for r in svc.live_runners()] == ["a"]


def test_external_runner_missing_refuses_before_queueing(tmp_path):
    svc = service(tmp_path, job_runner="external")
    with pytest.raises(RunnerUnavailable, match="pacs-job-runner.service"):
        svc.submit("spark-selftest", {"n": "10"})
    assert svc.store.queued_ids() == []


def test_external_runner_alive_takes_the_job(tmp_path):
    svc = service(tmp_path, job_runner="external")
    svc.store.beat("runner-host", {"beat": f"{time.time():.1f}"})
    rec = svc.submit("spark-selftest", {"n": "10"})
    assert svc.store.queued_ids() == [rec.id] and svc.ensure_runner() is None


def test_a_queued_job_without_any_runner_ends_the_wait_with_what_to_do(tmp_path):
    svc = service(tmp_path, job_runner="external")
    svc.store.beat("runner-host", {"beat": f"{time.time():.1f}"})
    rec = svc.submit("spark-selftest", {"n": "10"})
    svc.store.beat("runner-host", {"beat": "0"})        # the runner went away
    with pytest.raises(RunnerUnavailable, match="still queued"):
        svc.wait(rec.id, timeout=30, runner_grace_s=0.5)
