"""The job service shared by the CLI and the portal: submit, status, list, result, cancel.

Who runs the queued jobs: the embedded default asks its supervisor to start the job runner.
With `embedded = false` the supervisor is never involved: a runner anywhere announces itself by
a heartbeat row (analytics_jobs/runner.py), and a submit that sees none either starts a runner
process itself (`job_runner = "auto"`, detached, logging to $PACS_HOME/logs/job-runner.log,
leaving after 15 idle minutes) or, with `job_runner = "external"` (a systemd unit runs it),
refuses before queueing and says what to start.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from analytics_jobs.jobs import JobRecord, JobStore, new_job_id, now_iso
from analytics_jobs.kinds import validate_params
from pacs_hdfs import clients
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.settings import Settings

RUNNER_NAME = "job-runner"
RUNNER_STALE_S = 30.0           # a heartbeat older than this: that runner is gone
SPAWNED_RUNNER_IDLE_EXIT_S = 900.0
log = logging.getLogger(__name__)


class JobNotFound(KeyError):
    pass


class RunnerUnavailable(RuntimeError):
    """No job runner will take the job; the message says what to start."""


def runner_hint(settings: Settings) -> str:
    return ("start one: `pacs job runner` in the foreground, or the systemd unit "
            "pacs-job-runner.service (deploy/cluster/); `job_runner = \"auto\"` lets "
            "`pacs job submit` start it")


class JobService:
    def __init__(self, settings: Settings):
        self.s = settings
        self.store = JobStore(clients.hbase(settings))

    def submit(self, kind: str, raw_params: dict, user: str = "", start_runner: bool = True
               ) -> JobRecord:
        """Validate parameters, make sure a runner will take the job, queue it.

        Raises RunnerUnavailable (nothing queued) when `job_runner = "external"` and no runner
        reports in."""
        params = validate_params(kind, raw_params)
        if start_runner and not self.s.embedded and self.s.job_runner == "external" \
                and not self.live_runners():
            raise RunnerUnavailable(f"no job runner has reported in the last "
                                    f"{RUNNER_STALE_S:.0f} s, so the job was not queued; "
                                    + runner_hint(self.s))
        rec = JobRecord(id=new_job_id(), kind=kind, params=params, user=user)
        self.store.create(rec)
        if start_runner:
            self.ensure_runner()
        return rec

    def ensure_runner(self) -> int | None:
        """Make sure a runner will take queued jobs; the pid of one started here, else None.

        Embedded: the supervisor's `job-runner` service. Otherwise never the supervisor: a
        fresh heartbeat is enough; without one, start a detached runner on this host
        (`job_runner = "auto"`) or leave it to the managed one ("external")."""
        if self.s.embedded:
            from deploy.supervisor import Supervisor
            return Supervisor(self.s).start_python_service(RUNNER_NAME, "analytics_jobs.runner")
        if self.live_runners() or self.s.job_runner == "external":
            return None
        return self._spawn_runner()

    def live_runners(self, stale_s: float = RUNNER_STALE_S) -> list[dict]:
        """Runners whose heartbeat is fresh (any host)."""
        now = time.time()
        try:
            beats = self.store.runners()
        except StorageError:
            return []
        return [b for b in beats if now - float(b.get("beat") or 0) < stale_s]

    def _spawn_runner(self) -> int:
        """A detached `python -m analytics_jobs.runner` on this host (its lock file makes a
        second one leave at once), logging to $PACS_HOME/logs/job-runner.log."""
        logs, run = self.s.path("logs"), self.s.path("run")
        logs.mkdir(parents=True, exist_ok=True)
        run.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-X", f"pacs.daemon={RUNNER_NAME}", "-m", "analytics_jobs.runner",
               "--idle-exit-s", str(SPAWNED_RUNNER_IDLE_EXIT_S)]
        with open(logs / f"{RUNNER_NAME}.log", "ab") as out:
            out.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
            out.flush()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=dict(os.environ, PACS_HOME=str(self.s.home_abs)))
        (run / f"{RUNNER_NAME}.pid").write_text(str(proc.pid))
        log.info("started a job runner (pid %d, log %s)", proc.pid, logs / f"{RUNNER_NAME}.log")
        return proc.pid

    def status(self, job_id: str) -> JobRecord:
        rec = self.store.get(job_id)
        if rec is None:
            raise JobNotFound(f"no job {job_id!r}")
        return rec

    def list(self, limit: int = 50) -> list[JobRecord]:
        return self.store.list(limit)

    def yarn_report(self, rec: JobRecord) -> dict | None:
        """The ResourceManager's view of the job's application (state, finalStatus, progress,
        trackingUrl, queue), or None when it has none or the RM does not answer."""
        if not rec.app_id.startswith("application_"):
            return None
        from pacs_hdfs.yarn_rm import YarnError
        try:
            app = clients.yarn_rm(self.s).app(rec.app_id)
        except (YarnError, OSError) as e:
            return {"id": rec.app_id, "error": str(e)[:300]}
        return {"id": rec.app_id, **{k: app.get(k) for k in (
            "state", "finalStatus", "progress", "queue", "trackingUrl", "diagnostics")}}

    def cancel(self, job_id: str) -> JobRecord:
        """Flag the job (the runner cancels its Spark job group); a queued job ends at once; a
        running job on YARN also has its application killed through the ResourceManager."""
        rec = self.status(job_id)
        if not rec.final:
            self.store.request_cancel(job_id)
            if rec.state == "running" and rec.app_id.startswith("application_") \
                    and self.s.on_yarn:
                from analytics_jobs.runner import kill_yarn_app
                kill_yarn_app(self.s, rec)
            if rec.state == "queued":
                self.store.dequeue(job_id)
                rec.state, rec.finished, rec.cancel_requested = "cancelled", now_iso(), True
                self.store.update(rec, "state", "finished", "cancel_requested")
        return self.status(job_id)

    def wait(self, job_id: str, timeout: float = 3600, on_progress=None,
             runner_grace_s: float = 120.0) -> JobRecord:
        """Poll until the job ends. With `embedded = false`, a job still queued after
        `runner_grace_s` while no runner reports in raises RunnerUnavailable (the job stays
        queued for the next runner) instead of waiting out the timeout."""
        deadline = time.monotonic() + timeout
        started = respawned = time.monotonic()
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
            waited = time.monotonic() - started
            if (not self.s.embedded and rec.state == "queued" and self.s.job_runner == "auto"
                    and waited > RUNNER_STALE_S and not self.live_runners()
                    and time.monotonic() - respawned > RUNNER_STALE_S):
                self.ensure_runner()           # the runner it counted on went away
                respawned = time.monotonic()
            if (not self.s.embedded and rec.state == "queued"
                    and waited > runner_grace_s and not self.live_runners()):
                raise RunnerUnavailable(f"job {job_id} is still queued and no job runner "
                                        f"reports in; it runs when one starts: "
                                        + runner_hint(self.s))
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {rec.state} after {timeout} s")
            time.sleep(0.25)

    def artifact(self, job_id: str, name: str = "result.json") -> bytes:
        rec = self.status(job_id)
        if name not in rec.artifacts:
            raise JobNotFound(f"job {job_id} has no artifact {name!r} "
                              f"(has: {', '.join(rec.artifacts) or 'none'})")
        return clients.hdfs(self.s).read(rec.artifacts[name])
