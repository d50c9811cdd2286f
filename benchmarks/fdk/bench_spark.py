"""The fdk Spark job's wall time against the fast kernel alone on the same cores.

For each case: random projections (the cost does not depend on the data) are stored on HDFS in
the job's band layout; the kernel alone (row filter + numba back-projection, 2 threads, from
memory) is timed in this process; then the job is submitted through the job service (the warm
runner) and timed three ways: submit-to-done as a user sees it, the runner's job runtime, and
the Spark map/reduce alone (HDFS reads, filter, back-projection, shuffle, slab writes). Also
records the per-task memory figures the job reports. Needs the running cluster; writes
``spark/results.json`` and a row per case to ``spark/RESULTS.md``.

    PACS_HOME=.pacs-test .venv/bin/python benchmarks/fdk/bench_spark.py [--large] [--huge]
        [--wait-load 2]

``--huge`` runs 512^3 x 360 (1 GiB detector, 1.5 GB of projections on HDFS) through the job
only, to show the memory per task stays within the job's ``task_mb`` budget; it reports the
peak RSS of the Python workers that ran map and reduce tasks. Every row records the load
averages (1, 5, 15 min) at its start.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from benchmarks.common import record  # noqa: E402
from pacs_hdfs import clients  # noqa: E402
from pacs_hdfs.settings import get_settings  # noqa: E402
from recon_mapreduce import projection_store  # noqa: E402
from recon_mapreduce.fdk_fast import backproject_numba  # noqa: E402
from recon_mapreduce.filters import filter_projections  # noqa: E402
from recon_mapreduce.geometry import ConeBeamGeometry  # noqa: E402

HERE = Path(__file__).resolve().parent / "spark"
COLUMNS = ["case", "bands x angle chunks", "kernel alone s", "spark map/reduce s", "job runtime s",
           "submit-to-done s", "ratio (job / kernel)", "kernel CPU s", "map tasks CPU s",
           "map task arrays MB",
           "python worker peak RSS MB", "map task peak RSS MB", "reduce task peak RSS MB",
           "task budget MB", "load avg 1/5/15"]
CASES = [(128, 360, 256), (256, 360, 512), (512, 360, 1024)]
HUGE = 512  # job only: the kernel alone would hold 3 GB of projections in this process


def kernel_alone(projections: np.ndarray, geom: ConeBeamGeometry) -> tuple[float, float]:
    """Wall and CPU seconds of row filter + numba back-projection (2 threads) from memory."""
    tiny = ConeBeamGeometry.for_volume(8, 2, detector_shape=(8, 8))
    backproject_numba(np.zeros((2, 8, 8), np.float32), tiny)  # load the compiled kernel
    start, cpu = time.perf_counter(), time.process_time()
    backproject_numba(filter_projections(projections, geom, "ram-lak"), geom)
    return time.perf_counter() - start, time.process_time() - cpu


def patiently(call, timeout: float = 300):
    """Ride out short HBase Thrift outages (other people run fault tests on this cluster)."""
    from thriftpy2.transport import TTransportException

    from pacs_hdfs.hdfs_store import StorageError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (StorageError, ConnectionError, OSError, TTransportException):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def timed_job(service, directory: str, attempts: int = 3) -> dict:
    """Submit one fdk job and time it; a job failed by a storage outage is run again."""
    for _ in range(attempts):
        start = time.perf_counter()
        job = patiently(lambda: service.submit("fdk", {"projections": directory, "dicom": False}))
        while not (job := patiently(lambda: service.status(job.id))).final:
            time.sleep(0.2)
        wall = time.perf_counter() - start
        if job.state == "succeeded":
            result = json.loads(patiently(lambda: service.artifact(job.id)))
            return {"wall": wall, "runtime": job.runtime_s, "spark": result["spark"]}
        print(f"fdk job {job.id} {job.state}: {job.error}; running it again", flush=True)
    raise RuntimeError(f"fdk job failed {attempts} times")


def run_case(n: int, n_angles: int, detector: int, repeats: int) -> dict:
    from analytics_jobs.service import JobService

    settings = get_settings()
    hdfs = clients.hdfs(settings)
    geom = ConeBeamGeometry.for_volume(n, n_angles, detector_shape=(detector, detector))
    load = os.getloadavg()
    projections = np.random.default_rng(0).random((n_angles, detector, detector), np.float32)
    directory = f"tmp/bench-fdk-{uuid.uuid4().hex[:8]}"
    projection_store.write_projections(hdfs, directory, projections, geom,
                                       band_size=detector // 2)
    kernel_s = kernel_cpu = None
    if n < HUGE:
        kernel_s, kernel_cpu = kernel_alone(projections, geom)
    del projections
    service = patiently(lambda: JobService(settings))
    best = None
    try:
        for _ in range(repeats):
            run = timed_job(service, directory)
            if best is None or run["runtime"] < best["runtime"]:
                best = run
    finally:
        hdfs.delete(directory, recursive=True)
    spark = best["spark"]
    return {"case": f"{n}^3 x {n_angles} proj, {detector}^2 det",
            "bands x angle chunks": f"{spark['bands']} x {spark['map_tasks'] // spark['bands']}",
            "kernel alone s": round(kernel_s, 2) if kernel_s else "",
            "spark map/reduce s": spark["seconds"],
            "job runtime s": best["runtime"],
            "submit-to-done s": round(best["wall"], 2),
            "ratio (job / kernel)": round(best["runtime"] / kernel_s, 2) if kernel_s else "",
            "kernel CPU s": round(kernel_cpu, 2) if kernel_cpu else "",
            "map tasks CPU s": spark.get("map_task_seconds_total", {}).get("cpu", ""),
            "map task arrays MB": spark["map_task_array_mb"],
            "python worker peak RSS MB": max(spark["map_task_peak_rss_mb"],
                                             spark["reduce_task_peak_rss_mb"]),
            "map task peak RSS MB": spark["map_task_peak_rss_mb"],
            "reduce task peak RSS MB": spark["reduce_task_peak_rss_mb"],
            "task budget MB": spark.get("task_budget_mb", ""),
            "load avg 1/5/15": " / ".join(f"{v:.1f}" for v in load),
            "spark": spark}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also run 256^3 (a few minutes)")
    parser.add_argument("--huge", action="store_true", help=f"also run {HUGE}^3, job only")
    parser.add_argument("--only-huge", action="store_true", help=f"run only {HUGE}^3")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--wait-load", type=float, default=None,
                        help="wait (up to 20 min) for a 1-minute load average at most this")
    args = parser.parse_args()
    HERE.mkdir(exist_ok=True)
    if args.wait_load is not None:
        deadline = time.monotonic() + 1200
        while os.getloadavg()[0] > args.wait_load and time.monotonic() < deadline:
            print(f"load {os.getloadavg()[0]:.1f} > {args.wait_load}: waiting", flush=True)
            time.sleep(20)
    for n, n_angles, detector in CASES:
        if (args.only_huge and n < HUGE) or (n >= HUGE and not (args.huge or args.only_huge)):
            continue
        if 128 < n < HUGE and not args.large:
            continue
        row = run_case(n, n_angles, detector, args.repeats if n <= 128 else 1)
        print(json.dumps(row, indent=1), flush=True)
        record(HERE, row, COLUMNS)


if __name__ == "__main__":
    main()
