"""`scc-sweep`: the SCC kernel over (pair × resolution combination) tasks on Spark.

Each task is one Spark partition. The executor rebuilds its synthetic panorama/photo pair from
(seed, pair) — nothing but a few integers is shipped — runs ``run_pair`` and returns one flat
row: the numbers (false candidates per pose and as distinct peaks, candidates) together with the profiling metadata that
the study says must travel with them (per-stage wall/CPU time and peak RSS, host facts, the
Spark executor settings). The driver writes all rows as one Parquet file under the job's output
directory, a per-combination summary into the result document, and the report artifacts.

Combinations are every (b_in, b_out) with b_out ≤ b_in; the others (e.g. 64:128) cannot exist
(the output grid is at most the input bandwidth), so they are skipped and listed under
``skipped`` in the result. A request with no valid combination is rejected at submission.
"""
from __future__ import annotations

import io
import json
import os
import platform
import sys
import threading
import time

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from analytics_jobs.context import JobContext
from pacs_hdfs.clients import executor_python

#: driver SparkConf keys copied into every task row (what the executors were given)
SPARK_KEYS = ("spark.master", "spark.executor.memory", "spark.executor.cores", "spark.cores.max",
              "spark.task.cpus", "spark.python.worker.reuse", "spark.python.worker.memory")
#: executor environment variables that change kernel speed (a whitelist: never the whole env)
ENV_KEYS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: the study's largest input resolution (its Tables 10–11 go up to 1024:512)
MAX_BANDWIDTH = 1024


def _int_list(value) -> list[int]:
    """"64,128" / 64 / [64, "128"] -> [64, 128]."""
    if isinstance(value, (int, str)):
        value = [v for v in str(value).split(",") if v.strip()]
    return [int(v) for v in value]


class Params(BaseModel):
    inputs: list[int] = Field(description="input bandwidths B_in")
    outputs: list[int] = Field(description="output bandwidths B_out (≤ B_in)")
    pairs: int = Field(2, ge=1, le=100)
    seed: int = Field(0, ge=0)
    fov_deg: float = Field(60.0, gt=1, lt=179)
    top_k: int = Field(10, ge=1, le=1000)

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def split_commas(cls, value):
        return _int_list(value)

    @field_validator("inputs", "outputs")
    @classmethod
    def bandwidths_in_range(cls, value: list[int]) -> list[int]:
        if not value or any(not 2 <= b <= MAX_BANDWIDTH for b in value):
            raise ValueError(f"bandwidths must be between 2 and {MAX_BANDWIDTH}")
        return sorted(set(value))

    @model_validator(mode="after")
    def some_combination(self):
        if not combinations(self.inputs, self.outputs)[0]:
            raise ValueError("no combination with output ≤ input")
        return self


def combinations(inputs: list[int], outputs: list[int]) -> tuple[list[tuple[int, int]], list[dict]]:
    """Valid (b_in, b_out) pairs (b_out ≤ b_in) and the skipped ones with the reason."""
    valid, skipped = [], []
    for b_in in inputs:
        for b_out in outputs:
            if b_out <= b_in:
                valid.append((b_in, b_out))
            else:
                skipped.append({"b_in": b_in, "b_out": b_out,
                                "reason": "output resolution exceeds input resolution"})
    return valid, skipped


def pair_seed(seed: int, pair: int) -> int:
    """Independent, reproducible seed of one synthetic pair."""
    return int(np.random.SeedSequence([seed, pair]).generate_state(1)[0])


def make_pair(seed: int, pair: int, fov: float):
    """(panorama, photo, true camera rotation, pose) of pair ``pair`` — identical on any host."""
    from analytics_jobs.scc.synthetic import camera_rotation, make_scene, random_pose, render_panorama, render_photo
    s = pair_seed(seed, pair)
    scene = make_scene(s)
    pose = random_pose(np.random.default_rng(s))
    rotation = camera_rotation(*pose)
    return render_panorama(scene), render_photo(scene, rotation, fov, seed=s), rotation, pose


def tasks_for(p: Params) -> list[dict]:
    """One task per (pair, combination); the most expensive first so the 2 cores stay busy."""
    valid, _ = combinations(p.inputs, p.outputs)
    tasks = [{"pair": i, "b_in": b_in, "b_out": b_out, "seed": p.seed, "fov_deg": p.fov_deg,
              "top_k": p.top_k} for i in range(p.pairs) for b_in, b_out in valid]
    return sorted(tasks, key=lambda t: (-t["b_out"], -t["b_in"], t["pair"]))


def task_row(result: dict, task: dict, pose, facts: dict, spark_conf: dict, task_info: dict) -> dict:
    """Flatten one ``run_pair`` result and its profiling metadata into a Parquet row."""
    row = {"pair": task["pair"], "pair_seed": pair_seed(task["seed"], task["pair"]),
           "b_in": task["b_in"], "b_out": task["b_out"], "fov_deg": task["fov_deg"],
           "yaw": pose[0], "pitch": pose[1], "roll": pose[2],
           "grid_poses": result["grid_poses"], "sht_backend": result["sht_backend"],
           "false_candidate_ratio": result["false_candidate_ratio"],
           "false_candidates": result["false_candidates"], "false_peaks": result["false_peaks"],
           "true_score": result["true_score"], "true_index": json.dumps(result["true_index"]),
           "correct_score": result["correct_score"], "correct_index": json.dumps(result["correct_index"]),
           "n_candidates": len(result["candidates"]),
           "best_score": result["candidates"][0]["score"] if result["candidates"] else None,
           "best_error_deg": result["candidates"][0].get("error_deg") if result["candidates"] else None,
           "candidates_json": json.dumps(result["candidates"])}
    for stage, m in result["stages"].items():
        for key, value in m.items():
            row[f"{stage}_{key}"] = value
    row["total_seconds"] = sum(m["seconds"] for m in result["stages"].values())
    load = facts.pop("load_average", (None,))
    row.update({f"host_{k}": v for k, v in facts.items()})
    row["host_load1"] = load[0]
    row.update({k.replace(".", "_"): spark_conf.get(k) for k in (*SPARK_KEYS, "spark.version")})
    row.update(task_info)
    return row


def run_task(task: dict, spark_conf: dict) -> dict:
    """Executor side: build the pair, run the kernel with the task's cores, return one row."""
    import numba
    from pyspark import TaskContext

    from analytics_jobs.scc.measure import host_facts
    from analytics_jobs.scc.pipeline import run_pair
    tc = TaskContext.get()
    cpus = tc.cpus() if tc else 1
    numba.set_num_threads(max(1, min(cpus, numba.config.NUMBA_NUM_THREADS)))
    fov = np.deg2rad(task["fov_deg"])
    panorama, photo, rotation, pose = make_pair(task["seed"], task["pair"], fov)
    started = time.time()
    result = run_pair(panorama, photo, fov, task["b_in"], task["b_out"], rotation, top_k=task["top_k"])
    env = {f"env_{k.lower()}": os.environ.get(k) for k in ENV_KEYS}
    info = {"host_name": platform.node(), "worker_pid": os.getpid(), "numba_threads": numba.get_num_threads(),
            "task_cpus": cpus, "partition": tc.partitionId() if tc else -1,
            "attempt": tc.attemptNumber() if tc else 0, "started_unix": started, **env}
    return task_row(result, task, pose, host_facts(), spark_conf, info)


def driver_spark_conf(spark) -> dict:
    """The executor-relevant settings of the session, plus the Spark version."""
    conf = dict(spark.sparkContext.getConf().getAll())
    return {**{k: conf.get(k) for k in SPARK_KEYS}, "spark.version": spark.version}


def completed_tasks(tracker, group: str) -> int:
    """Tasks finished so far in the Spark jobs of a job group."""
    done = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job else []:
            stage = tracker.getStageInfo(stage_id)
            done += stage.numCompletedTasks if stage else 0
    return done


def run_on_spark(ctx: JobContext, tasks: list[dict], spark_conf: dict) -> list[dict]:
    """Run every task as its own partition; report progress from Spark's status tracker."""
    out: dict = {}

    def collect():
        try:
            sc = ctx.spark.sparkContext   # sets this job's group in this thread (cancel works)
            with executor_python(sc):
                out["rows"] = (sc.parallelize(tasks, len(tasks))
                               .map(lambda t: run_task(t, spark_conf)).collect())
        except Exception as e:  # noqa: BLE001 - re-raised in the job's thread
            out["error"] = e

    worker = threading.Thread(target=collect, name=f"scc-sweep-{ctx.job_id}", daemon=True)
    worker.start()
    tracker = ctx.spark.sparkContext.statusTracker()
    while worker.is_alive():
        worker.join(1.0)
        done = completed_tasks(tracker, ctx.job_id)
        ctx.progress(0.05 + 0.85 * done / len(tasks), f"{done}/{len(tasks)} tasks")
    if "error" in out:
        raise out["error"]
    return out["rows"]


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def distinct_hosts(rows: list[dict]) -> list[dict]:
    """The host facts seen by the tasks (one entry per distinct host/library set)."""
    seen = []
    for row in rows:
        facts = {k[5:]: v for k, v in row.items() if k.startswith("host_") and k != "host_load1"}
        facts["spark"] = {k: row.get(k.replace(".", "_")) for k in (*SPARK_KEYS, "spark.version")}
        if facts not in seen:
            seen.append(facts)
    return seen


def run(ctx: JobContext, p: Params) -> dict:
    from analytics_jobs.scc.report import build_report, summarise
    t0 = time.monotonic()
    valid, skipped = combinations(p.inputs, p.outputs)
    tasks = tasks_for(p)
    ctx.progress(0.02, f"{len(tasks)} tasks ({len(valid)} combinations × {p.pairs} pairs)"
                 + (f", {len(skipped)} skipped" if skipped else ""))
    spark_conf = driver_spark_conf(ctx.spark)
    rows = sorted(run_on_spark(ctx, tasks, spark_conf), key=lambda r: (r["b_in"], r["b_out"], r["pair"]))
    ctx.progress(0.92, "writing Parquet and report")
    parquet = ctx.write_artifact("tasks.parquet", parquet_bytes(rows))
    summary = summarise(rows)
    hosts = distinct_hosts(rows)
    for name, data in build_report(summary, hosts, skipped).items():
        ctx.write_artifact(name, data)
    ctx.progress(1.0, "done")
    return {
        "combinations": [{"b_in": b_in, "b_out": b_out} for b_in, b_out in valid],
        "skipped": skipped,
        "summary": summary,
        "tasks": [{k: r[k] for k in ("pair", "b_in", "b_out", "false_candidate_ratio", "false_candidates",
                                     "false_peaks", "true_score", "correct_score",
                                     "best_score", "best_error_deg", "total_seconds",
                                     "correlation_seconds", "correlation_peak_rss_mib")}
                  for r in rows],
        "hosts": hosts,
        "parquet": parquet,
        "sweep_seconds": round(time.monotonic() - t0, 3),
    }


JOB_KINDS = {"scc-sweep": (Params, run)}
