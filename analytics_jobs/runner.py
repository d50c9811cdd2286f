"""The job runner: one long-lived driver process that takes queued jobs and runs them on Spark.

Why a runner: a fresh JVM and SparkSession cost ~6+ s per job; the runner keeps one session warm
(executors included), so a job costs only its own Spark work. It runs jobs one at a time (the
embedded cluster has 2 cores) in submission order. Cancel: the service flags the job row; a
watcher thread sees the flag and cancels the job's Spark job group; the job ends `cancelled`.

On YARN (`settings.on_yarn`) every job gets its own Spark application: the session is started
for the job and stopped after it, so the job's application id (recorded on the job) names
exactly that job, and `pacs job cancel` can kill it through the ResourceManager. The warm
session stays the fast path of the embedded standalone cluster.

The runner writes a heartbeat row (`runner/<host>` in the jobs table) every few seconds; with
`embedded = false` a submit looks for a fresh one instead of asking the embedded supervisor.

Start it in the foreground with `pacs job runner` (deploy/cluster/pacs-job-runner.service);
`pacs job submit` starts one in the background when none is alive (`job_runner = "auto"`).
"""
from __future__ import annotations

import logging
import os
import platform
import threading
import time
import traceback

from analytics_jobs.context import JobCancelled, JobContext
from analytics_jobs.jobs import JobStore, now_iso
from analytics_jobs.kinds import kind_spec
from pacs_hdfs import clients, logs, metrics, schema_version
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.settings import Settings, get_settings

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0        # a runner writes `runner/<host>` this often


class Runner:
    def __init__(self, settings: Settings):
        self.s = settings
        self.hdfs = clients.hdfs(settings)
        self.hbase = clients.hbase(settings)
        self.store = JobStore(self.hbase)
        self._spark = None
        self._lock = threading.Lock()
        # YARN: one application per job (its id names the job; the RM can kill it)
        self.session_per_job = settings.on_yarn

    def spark(self):
        with self._lock:
            if self._spark is not None and self._spark_stopped():
                log.warning("Spark context was stopped (cluster restarted? application "
                            "killed?); starting a new one")
                try:
                    self._spark.stop()
                except Exception:  # noqa: BLE001 - already torn down
                    pass
                self._spark = None
                wait_jvm_context_gone()
            if self._spark is None:
                self._spark = clients.spark_session(
                    self.s, app_name="pacs-job-runner",
                    **{"spark.cores.max": str(self.s.spark_runner_cores),
                       "spark.task.maxFailures": "4",
                       "spark.scheduler.mode": "FAIR"})
            return self._spark

    def stop_spark(self) -> None:
        """End the session (YARN: the job's application); the next job starts another."""
        with self._lock:
            spark, self._spark = self._spark, None
        if spark is not None:
            try:
                spark.stop()
            except Exception as e:  # noqa: BLE001 - a session killed by YARN may not stop cleanly
                log.warning("stopping the Spark session: %s", e)
            wait_jvm_context_gone()

    def _spark_stopped(self) -> bool:
        try:
            return self._spark.sparkContext._jsc.sc().isStopped()
        except Exception:  # noqa: BLE001 - a context torn down under us counts as stopped
            return True

    def start_heartbeat(self, every_s: float = HEARTBEAT_S) -> threading.Event:
        """Write `runner/<host>` every few seconds until the returned event is set."""
        stop = threading.Event()
        info = {"pid": os.getpid(), "master": self.s.spark_master,
                "mode": "yarn" if self.session_per_job else "warm"}

        def beat():
            while True:
                try:
                    self.store.beat(platform.node(), {**info, "beat": f"{time.time():.1f}"})
                except Exception as e:  # noqa: BLE001 - HBase away: try again next time
                    log.debug("heartbeat failed: %s", e)
                if stop.wait(every_s):
                    try:   # leaving: a submit must not count on this runner any more
                        self.store.beat(platform.node(), {**info, "beat": "0"})
                    except Exception:  # noqa: BLE001
                        pass
                    return
        threading.Thread(target=beat, name="runner-heartbeat", daemon=True).start()
        return stop

    def run_forever(self, poll_s: float = 0.3, idle_exit_s: float | None = None) -> None:
        idle_since = time.monotonic()
        self._recover_orphans()
        while True:
            try:
                ids = self.store.queued_ids()
            except StorageError as e:  # HBase away for a moment: the runner waits, never dies
                log.warning("job queue unavailable: %s", e)
                time.sleep(2.0)
                continue
            if ids:
                try:
                    self.run_one(ids[0])
                except StorageError as e:
                    log.warning("job %s: bookkeeping failed (%s); will retry", ids[0], e)
                    time.sleep(2.0)
                idle_since = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                return
            else:
                time.sleep(poll_s)

    def _recover_orphans(self) -> None:
        """Jobs left 'running' by a runner that died mid-job can never finish: fail them, so
        their waiters get an answer (only one runner runs at a time)."""
        try:
            orphans = [r for r in self.store.list(1000) if r.state == "running"]
            for rec in orphans:
                rec.state, rec.finished = "failed", now_iso()
                rec.error = "the job runner stopped while this job ran; submit it again"
                self.store.update(rec, "state", "finished", "error")
                log.warning("job %s was left running by a stopped runner: marked failed", rec.id)
        except StorageError as e:
            log.warning("could not check for orphaned jobs: %s", e)

    def run_one(self, job_id: str) -> None:
        """Run a queued job. Its state is written before its queue marker goes, so a failed
        write leaves it queued (retried), never unqueued and stuck."""
        rec = self.store.get(job_id)
        if rec is None or rec.state != "queued":
            self.store.dequeue(job_id)          # a stale marker
            return
        if rec.cancel_requested:
            rec.state, rec.finished = "cancelled", now_iso()
            self.store.update(rec, "state", "finished")
            self.store.dequeue(job_id)
            return
        rec.state, rec.started = "running", now_iso()
        self.store.update(rec, "state", "started")
        try:
            self.store.dequeue(job_id)
        except StorageError as e:  # the marker stays; seen again after the run, it is dropped
            log.warning("job %s: queue marker not removed (%s)", job_id, e)
        ctx = JobContext(rec, self.s, self.hdfs, self.hbase, self.store, spark_factory=self.spark)
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(job_id, stop), daemon=True)
        watcher.start()
        t0 = time.monotonic()
        try:
            params_model, run = kind_spec(rec.kind)
            params = params_model.model_validate(rec.params)
            result = run(ctx, params)
            ctx.check_cancel()
            result = {"job_id": job_id, "kind": rec.kind, "parameters": rec.params,
                      **result, "provenance": {**result.get("provenance", {}),
                                               **self._provenance(time.monotonic() - t0)}}
            rec.result_path = ctx.write_json("result.json", result)
            rec.state = "succeeded"
            rec.progress = 1.0
        except JobCancelled:
            rec.state = "cancelled"
        except Exception as e:  # noqa: BLE001 - a failed job is recorded, the runner lives on
            if self.store.cancel_requested(job_id):
                rec.state = "cancelled"
            else:
                rec.state = "failed"
                rec.error = f"{type(e).__name__}: {str(e).splitlines()[0][:500] if str(e) else ''}"
                log.error("job %s (%s) failed: %s\n%s", job_id, rec.kind, rec.error,
                          traceback.format_exc(limit=5))
        finally:
            stop.set()
            if self.session_per_job:
                self.stop_spark()
        rec.finished = now_iso()
        rec.runtime_s = round(time.monotonic() - t0, 3)
        self._record_outcome(rec)
        metrics.JOB_SECONDS.labels(rec.kind, rec.state).observe(rec.runtime_s)
        log.info("job %s (%s) %s in %.2f s", job_id, rec.kind, rec.state, rec.runtime_s)

    def _record_outcome(self, rec, patience_s: float = 300.0) -> None:
        """The job's final state must reach HBase even across a Thrift/HBase restart; a job
        left 'running' forever would hang every waiter."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self.store.update(rec, "state", "progress", "finished", "error", "result_path",
                                  "runtime_s")
                return
            except StorageError as e:
                if time.monotonic() > deadline:
                    raise
                log.warning("job %s: recording outcome failed (%s); retrying", rec.id, e)
                time.sleep(2.0)

    def _watch_cancel(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            try:
                if self.store.cancel_requested(job_id):
                    if self._spark is not None:
                        self._spark.sparkContext.cancelJobGroup(job_id)
                    if self.session_per_job:   # and the job's own application, via the RM
                        kill_yarn_app(self.s, self.store.get(job_id))
                    return
            except Exception:  # noqa: BLE001 - the watcher must never kill the runner
                log.warning("cancel watcher for %s: HBase unavailable", job_id)

    def _provenance(self, runtime_s: float) -> dict:
        spark_conf = {}
        if self._spark is not None:
            spark_conf = {k: v for k, v in self._spark.sparkContext.getConf().getAll()
                          if k.startswith(("spark.executor", "spark.cores", "spark.master",
                                           "spark.sql.shuffle", "spark.driver.memory",
                                           "spark.archives", "spark.yarn.queue",
                                           "spark.driver.host"))}
            spark_conf["spark.version"] = self._spark.version
            spark_conf["spark.app.id"] = self._spark.sparkContext.applicationId
        return {"runtime_s": round(runtime_s, 3), "spark": spark_conf,
                "host": {"node": platform.node(), "cores": os.cpu_count(),
                         "python": platform.python_version()},
                "finished": now_iso()}


def wait_jvm_context_gone(timeout_s: float = 120.0) -> None:
    """Wait until the driver JVM has no active SparkContext. When YARN kills an application,
    Spark's monitor thread stops the context in the JVM while our stop() returns at once; a new
    context made before that ends fails ("Only one SparkContext should be running")."""
    from pyspark import SparkContext
    jvm = SparkContext._jvm
    if jvm is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:   # the Scala companion object (getActive has no static forwarder)
            companion = getattr(getattr(jvm.org.apache.spark, "SparkContext$"), "MODULE$")
            if not companion.getActive().isDefined():
                return
        except Exception:  # noqa: BLE001 - no gateway or no such method: nothing to wait for
            return
        time.sleep(0.5)
    log.warning("the driver JVM still has an active SparkContext after %.0f s", timeout_s)


def kill_yarn_app(settings: Settings, rec) -> str | None:
    """Kill a job's YARN application through the ResourceManager REST API (None when the job
    has no YARN application or the RM could not be asked; logged)."""
    if rec is None or not rec.app_id.startswith("application_"):
        return None
    from pacs_hdfs.yarn_rm import YarnError
    try:
        state = clients.yarn_rm(settings).kill(rec.app_id)
        log.info("job %s: asked the ResourceManager to kill %s (%s)", rec.id, rec.app_id, state)
        return state
    except (YarnError, OSError) as e:
        log.warning("job %s: could not kill %s through the ResourceManager: %s",
                    rec.id, rec.app_id, e)
        return None


def sole_runner_lock(settings: Settings):
    """An exclusive lock file held for the runner's lifetime, or None when another runner holds
    it (two submits racing may both start one; the second leaves at once)."""
    import fcntl
    path = settings.path("run", "job-runner.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def main(argv: list[str] | None = None) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="analytics_jobs.runner")
    parser.add_argument("--idle-exit-s", type=float, default=None,
                        help="leave after this many idle seconds (runners a submit started)")
    args = parser.parse_args(argv)
    settings = get_settings()
    logs.setup("job-runner", settings.path("logs", "job-runner.log"))
    schema_version.check_at_start(settings, "job runner")
    lock = sole_runner_lock(settings)
    if lock is None:
        log.info("another job runner is running; this one exits")
        return
    runner = Runner(settings)
    metrics.register_scrape(lambda: {"pacs_jobs": (
        "jobs by kind and state", ("kind", "state"), runner.store.state_counts())})
    metrics.serve("job-runner", settings)
    log.info("job runner on %s (%s)", settings.spark_master,
             "one YARN application per job" if runner.session_per_job else "warm session")
    beating = runner.start_heartbeat()
    try:
        runner.run_forever(idle_exit_s=args.idle_exit_s)
    finally:
        beating.set()
        runner.stop_spark()


if __name__ == "__main__":
    main()
