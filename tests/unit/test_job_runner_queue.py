"""The runner's queue bookkeeping on an in-memory store: a failed state write leaves the job
queued (not lost), orphaned 'running' jobs are failed at start, one runner per home."""
from __future__ import annotations

import pytest

from analytics_jobs.jobs import JobRecord, JobStore, new_job_id
from analytics_jobs.runner import Runner, sole_runner_lock
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.settings import Settings
from tests.memory_store import MemoryStore


class FlakyStore(MemoryStore):
    """Fails the next `fail` puts to the jobs table."""

    def __init__(self):
        super().__init__()
        self.fail = 0

    def put(self, table, row, data):
        if self.fail and table == "jobs":
            self.fail -= 1
            raise StorageError("HBase went away")
        super().put(table, row, data)


def runner_on(store) -> Runner:
    r = Runner.__new__(Runner)       # no cluster clients: run_one stops before the job runs
    r.store = JobStore(store)
    return r


def test_a_failed_state_write_leaves_the_job_queued():
    store = FlakyStore()
    jobs = JobStore(store)
    rec = JobRecord(id=new_job_id(), kind="spark-selftest", params={"n": 3}, cancel_requested=True)
    jobs.create(rec)
    store.fail = 1
    with pytest.raises(StorageError):
        runner_on(store).run_one(rec.id)
    assert jobs.queued_ids() == [rec.id]             # still queued, so retried
    assert jobs.get(rec.id).state == "queued"
    runner_on(store).run_one(rec.id)                  # HBase back: it is taken (and cancelled)
    assert jobs.queued_ids() == [] and jobs.get(rec.id).state == "cancelled"


def test_stale_queue_markers_are_dropped():
    store = MemoryStore()
    jobs = JobStore(store)
    rec = JobRecord(id=new_job_id(), kind="spark-selftest", params={}, state="succeeded")
    jobs.create(rec)
    runner_on(store).run_one(rec.id)
    assert jobs.queued_ids() == [] and jobs.get(rec.id).state == "succeeded"


def test_orphaned_running_jobs_are_failed_at_start():
    store = MemoryStore()
    jobs = JobStore(store)
    left = JobRecord(id=new_job_id(), kind="fdk", params={}, state="running")
    done = JobRecord(id=new_job_id(), kind="fdk", params={}, state="succeeded")
    for rec in (left, done):
        jobs.create(rec)
        jobs.dequeue(rec.id)
    runner_on(store)._recover_orphans()
    assert jobs.get(left.id).state == "failed" and "runner stopped" in jobs.get(left.id).error
    assert jobs.get(done.id).state == "succeeded"


def test_only_one_runner_per_home(tmp_path):
    settings = Settings(home=str(tmp_path))
    first = sole_runner_lock(settings)
    assert first is not None
    assert sole_runner_lock(settings) is None
    first.close()
    again = sole_runner_lock(settings)
    assert again is not None
    again.close()
