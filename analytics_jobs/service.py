"""The job service shared by the CLI and the portal: submit, status, list, result, cancel."""
from __future__ import annotations

import time

from analytics_jobs.jobs import JobRecord, JobStore, new_job_id, now_iso
from analytics_jobs.kinds import validate_params
from pacs_hdfs import clients
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.settings import Settings

RUNNER_NAME = "job-runner"


class JobNotFound(KeyError):
    pass


class JobService:
    def __init__(self, settings: Settings):
        self.s = settings
        self.store = JobStore(clients.hbase(settings))

    def submit(self, kind: str, raw_params: dict, user: str = "", start_runner: bool = True
               ) -> JobRecord:
        """Validate parameters, queue the job, make sure a runner will take it."""
        params = validate_params(kind, raw_params)
        rec = JobRecord(id=new_job_id(), kind=kind, params=params, user=user)
        self.store.create(rec)
        if start_runner:
            self.ensure_runner()
        return rec

    def ensure_runner(self) -> int:
        from deploy.supervisor import Supervisor
        return Supervisor(self.s).start_python_service(RUNNER_NAME, "analytics_jobs.runner")

    def status(self, job_id: str) -> JobRecord:
        rec = self.store.get(job_id)
        if rec is None:
            raise JobNotFound(f"no job {job_id!r}")
        return rec

    def list(self, limit: int = 50) -> list[JobRecord]:
        return self.store.list(limit)

    def cancel(self, job_id: str) -> JobRecord:
        rec = self.status(job_id)
        if not rec.final:
            self.store.request_cancel(job_id)
            if rec.state == "queued":
                self.store.dequeue(job_id)
                rec.state, rec.finished, rec.cancel_requested = "cancelled", now_iso(), True
                self.store.update(rec, "state", "finished", "cancel_requested")
        return self.status(job_id)

    def wait(self, job_id: str, timeout: float = 3600, on_progress=None) -> JobRecord:
        deadline = time.monotonic() + timeout
        while True:
            try:
                rec = self.status(job_id)
            except StorageError:  # HBase briefly away (restart, failover): keep waiting
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
                continue
            if on_progress:
                on_progress(rec)
            if rec.final:
                return rec
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {rec.state} after {timeout} s")
            time.sleep(0.25)

    def artifact(self, job_id: str, name: str = "result.json") -> bytes:
        rec = self.status(job_id)
        if name not in rec.artifacts:
            raise JobNotFound(f"job {job_id} has no artifact {name!r} "
                              f"(has: {', '.join(rec.artifacts) or 'none'})")
        return clients.hdfs(self.s).read(rec.artifacts[name])
