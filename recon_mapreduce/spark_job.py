"""Job kind ``fdk``: cone-beam FDK on Spark, decomposed per (angle chunk, detector-row band).

Map: a task reads one band of detector rows for a run of angles from HDFS (one ranged read of a
band file, see ``projection_store``), ramp-filters the rows and back-projects them onto the
volume slabs that band can reach; it emits ``(z0, partial slab)``. Reduce: ``reduceByKey`` adds
the partial slabs per slab (accumulating in float64, so the sum does not depend on the order in
which shuffle blocks arrive and a retried job gives the identical volume). Each reduce task
writes its finished slab to HDFS and reports error sums against the ground truth. No task holds
the whole volume: a map task holds its band rows and the slabs its band touches, a reduce task
one slab.

Band size versus cost: the voxel-driven kernel pays a per-voxel-column setup (projection of the
column, ownership range) for every band it is called with, about 30 ns per column and angle
here against ~180 ns for the column's whole z walk at 128^3 (benchmarks/fdk). Two bands cost
~1.2x one, eight bands ~2.5x, so the default stores and maps few, tall bands and gets its
parallelism from angle chunks instead; ``band_rows`` can still cut them finer.

Memory per task is bounded: ``task_mb`` (default 1 GiB) caps the arrays of the largest map
task (``task_bytes``); ``fit_tasks`` halves angle chunks and bands until it fits, so a 512^3
volume runs as more, smaller tasks rather than larger ones.

Tasks run single-threaded numba (``spark.task.cpus`` threads): Spark already runs one task per
core, and more threads per task would oversubscribe the executor.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import posixpath
import resource
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pyspark.accumulators import AccumulatorParam
from pydantic import BaseModel, Field, field_validator

from pacs_hdfs.hdfs_store import StorageError
from recon_mapreduce import projection_store as store
from recon_mapreduce.bands import band_rows, slabs_touched_by_band, split_range
from recon_mapreduce.filters import FILTER_NAMES
from recon_mapreduce.geometry import ConeBeamGeometry
from pacs_hdfs.clients import executor_python

log = logging.getLogger(__name__)


class Params(BaseModel):
    projections: str = Field(description="HDFS directory written by `pacs recon simulate`")
    size: int | None = Field(None, ge=4, le=2048, description="voxels per side (default: stored)")
    filter: str = "ram-lak"
    band_rows: int | None = Field(None, ge=1, description="detector rows per map task "
                                  "(default: the stored band size; at most that)")
    slab_size: int = Field(16, ge=1, le=2048, description="slices per reduce key")
    angle_chunk: int | None = Field(None, ge=1, description="angles per map task "
                                    "(default: about 4 tasks per core)")
    task_mb: int = Field(1024, ge=16, description="memory budget of one map task's arrays "
                         "(raw rows, padded copy, its z range): bands and angle chunks are cut "
                         "until the largest task fits")
    backend: Literal["auto", "numba"] = "auto"
    dicom: bool = Field(True, description="also store the volume as a DICOM CT series")

    @field_validator("filter")
    @classmethod
    def _known_filter(cls, value: str) -> str:
        if value not in FILTER_NAMES:
            raise ValueError(f"unknown filter {value!r}; choose from {FILTER_NAMES}")
        return value


@dataclass(frozen=True)
class MapTask:
    """One map task: angles ``[a0, a1)`` of band ``[v0, v1)``, read from stored band ``stored``."""

    a0: int
    a1: int
    v0: int
    v1: int
    stored: dict


# --- pure pieces (no Spark) -----------------------------------------------------------------

def job_geometry(meta: dict, size: int | None) -> ConeBeamGeometry:
    """Stored scanner geometry, reconstructed onto ``size`` voxels over the same field of view."""
    geom = store.geometry_from_dict(meta["geometry"])
    if size is None or size == geom.n_voxels:
        return geom
    fov = geom.n_voxels * geom.voxel_size
    return ConeBeamGeometry(geom.dso, geom.dsd, geom.n_rows, geom.n_cols, geom.du, geom.dv,
                            geom.angles, size, fov / size, geom.offset_u, geom.offset_v)


def plan_tasks(meta: dict, band_size: int | None, angle_chunk: int) -> list[MapTask]:
    """Every stored band cut into bands of ``band_size`` rows, times chunks of angles."""
    n_angles = len(meta["geometry"]["angles"])
    tasks = []
    for stored in store.band_layout(meta):
        width = stored["v1"] - stored["v0"]
        for b0, b1 in split_range(width, min(band_size or width, width)):
            for a0, a1 in split_range(n_angles, angle_chunk):
                tasks.append(MapTask(a0, a1, stored["v0"] + b0, stored["v0"] + b1, stored))
    return tasks


def default_angle_chunk(n_angles: int, n_bands: int, cores: int) -> int:
    """Angles per task so that there are about four tasks per core (load balance vs overhead)."""
    chunks = max(1, math.ceil(4 * cores / max(1, n_bands)))
    return max(1, math.ceil(n_angles / chunks))


def task_bytes(geom: ConeBeamGeometry, task: MapTask, slab_size: int) -> int:
    """Arrays a map task holds at its peak: the raw rows of its stored band for its angles, the
    padded filtered copy of its own rows, and the z range it back-projects onto."""
    angles = task.a1 - task.a0
    raw = angles * (task.stored["v1"] - task.stored["v0"] + 1) * geom.n_cols * 4
    padded = angles * (task.v1 - task.v0 + 2) * (geom.n_cols + 2) * 4
    slabs = touched_slabs(geom, task.a0, task.a1, task.v0, task.v1, slab_size)
    depth = slabs[-1][1] - slabs[0][0] if slabs else 0
    return raw + padded + depth * geom.n_voxels**2 * 4


def fit_tasks(meta: dict, geom: ConeBeamGeometry, band_size: int | None, angle_chunk: int,
              slab_size: int, budget_bytes: int) -> tuple[int | None, int, list[MapTask]]:
    """``(band_size, angle_chunk, tasks)`` with the largest task's arrays within the budget:
    halve the angle chunk while the rows dominate, the band while its z range does (a band's
    z range shrinks with its height). Stops at 1 angle and 8 rows, even if still over."""
    while True:
        tasks = plan_tasks(meta, band_size, angle_chunk)
        largest = max(tasks, key=lambda t: task_bytes(geom, t, slab_size))
        if task_bytes(geom, largest, slab_size) <= budget_bytes:
            return band_size, angle_chunk, tasks
        rows = largest.v1 - largest.v0
        depth_heavy = (task_bytes(geom, dataclasses.replace(largest, a1=largest.a0 + 1), slab_size)
                       > budget_bytes / 2)
        if depth_heavy and rows > 8:
            band_size = math.ceil(rows / 2)
        elif angle_chunk > 1:
            angle_chunk = math.ceil(angle_chunk / 2)
        elif rows > 8:
            band_size = math.ceil(rows / 2)
        else:
            return band_size, angle_chunk, tasks


def touched_slabs(geom: ConeBeamGeometry, a0: int, a1: int, v0: int, v1: int,
                  slab_size: int) -> list[tuple[int, int]]:
    """Slabs that band ``[v0, v1)`` may reach at any angle in ``[a0, a1)``, in z order."""
    slabs = set()
    for angle in geom.angles[a0:a1]:
        slabs.update(slabs_touched_by_band(geom, float(angle), v0, v1, slab_size))
    return sorted(slabs)


def backproject_chunk(raw: np.ndarray, geom: ConeBeamGeometry, task: MapTask, slab_size: int,
                      filter_name: str) -> list[tuple[int, np.ndarray]]:
    """Filter and back-project one task's rows: ``[(z0, float32 partial slab), ...]``.

    ``raw`` is ``(a1 - a0, rows, n_cols)`` as stored for band ``task.stored`` (its first row is
    ``stored['v0']``). The same arithmetic as ``bands.map_band`` for each angle, but all angles of
    the chunk go through one kernel call onto one z range, which saves per-call overhead.
    """
    from recon_mapreduce.fdk_fast import backproject_owned, padded_zeros
    from recon_mapreduce.filters import filter_projection_rows

    first, stop = band_rows(task.v0, task.v1, geom.n_rows)
    offset = task.stored["v0"]
    rows = raw[:, first - offset:stop - offset]
    # padded rows are v0 - 1 .. v1 inclusive; rows past the detector stay zero. Each angle is
    # filtered straight into it (FFT temporaries for one angle; no filtered copy of the chunk).
    padded = padded_zeros(len(rows), stop - first, geom.n_cols, rows_before=1,
                          rows_after=task.v1 + 1 - stop)
    for index, angle_rows in enumerate(rows):
        padded[index, 1:-1, 1:1 + stop - first] = filter_projection_rows(
            angle_rows, geom, first, filter_name).T
    slabs = touched_slabs(geom, task.a0, task.a1, task.v0, task.v1, slab_size)
    if not slabs:
        return []
    z_lo, z_hi = slabs[0][0], slabs[-1][1]
    volume = np.zeros((z_hi - z_lo, geom.n_voxels, geom.n_voxels), dtype=np.float32)
    backproject_owned(volume, padded, geom, geom.angles[task.a0:task.a1],
                      geom.angle_weights()[task.a0:task.a1], row_base=task.v0 - 1,
                      own_lo=-1 if task.v0 == 0 else task.v0, own_hi=task.v1, z0=z_lo)
    # views, not copies: each is serialised for the shuffle on its own
    return [(z0, volume[z0 - z_lo:z1 - z_lo]) for z0, z1 in slabs]


def central_mask(geom: ConeBeamGeometry, z0: int, z1: int) -> np.ndarray:
    """Accuracy region (as in the unit tests): away from the cone-limited ends and the skull."""
    coords = geom.voxel_coordinates()
    z, y, x = np.meshgrid(coords[z0:z1], coords, coords, indexing="ij")
    half = geom.n_voxels * geom.voxel_size / 2
    return (np.abs(z) < 0.35 * half) & (x**2 + y**2 < (0.6 * half) ** 2)


def error_sums(slab: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict:
    diff = (slab.astype(np.float64) - truth)[mask]
    return {"sq": float(np.sum(diff**2)), "n": int(mask.sum()),
            "tmax": float(truth.max()), "tmin": float(truth.min())}


def accuracy(stats: list[dict]) -> dict | None:
    """RMSE / PSNR over the central region from per-slab error sums (peak = truth range)."""
    stats = [s for s in stats if s]
    n = sum(s["n"] for s in stats)
    if not n:
        return None
    rmse = math.sqrt(sum(s["sq"] for s in stats) / n)
    peak = max(s["tmax"] for s in stats) - min(s["tmin"] for s in stats)
    return {"rmse": rmse, "psnr_db": 20 * math.log10(peak / rmse) if rmse else float("inf"),
            "peak": peak, "voxels": n, "region": "|z| < 0.35 half-FOV, r < 0.6 half-FOV"}


def read_volume(hdfs, volume_meta: dict) -> np.ndarray:
    """Assemble the slabs a job wrote (for tests and small volumes)."""
    return np.concatenate([store.npy_load(hdfs.read(s["path"])) for s in volume_meta["slabs"]])


def reset_peak_rss() -> None:
    """Start a new peak-RSS period for this process (Linux: clear_refs 5 resets VmHWM), so a
    reused Python worker reports the peak of the task it runs now, not of an earlier one."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """Peak resident set size since ``reset_peak_rss`` (VmHWM), else of the process's life."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- Spark glue -----------------------------------------------------------------------------

class _Max(AccumulatorParam):
    """Accumulator keeping the largest value seen (idempotent under task retries)."""

    def zero(self, value):
        return 0.0

    def addInPlace(self, value1, value2):  # noqa: N802 - Spark's name
        return max(value1, value2)


class _SumDict(AccumulatorParam):
    """Accumulator adding dicts of seconds key by key (where map tasks spend their time)."""

    def zero(self, value):
        return dict.fromkeys(value, 0.0)

    def addInPlace(self, value1, value2):  # noqa: N802 - Spark's name
        return {k: value1.get(k, 0.0) + value2.get(k, 0.0) for k in {*value1, *value2}}


def _map_task_fn(settings, directory: str, geom: ConeBeamGeometry, slab_size: int,
                 filter_name: str, threads: int, rss_mb, array_mb, task_seconds):
    def run_task(task: MapTask):
        os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        from pacs_hdfs.hdfs_store import HdfsStore

        reset_peak_rss()
        start, cpu = time.perf_counter(), time.process_time()
        raw = store.read_band(HdfsStore(settings), directory, task.stored, geom.n_cols,
                              task.a0, task.a1)
        read = time.perf_counter()
        partials = backproject_chunk(raw, geom, task, slab_size, filter_name)
        task_seconds.add({"read": read - start, "compute": time.perf_counter() - read,
                          "cpu": time.process_time() - cpu})
        # what the task holds at its peak: raw rows, the padded filtered copy, the z range it
        # back-projects onto (the partial slabs are views of it)
        held = 2 * raw.nbytes + sum(p.nbytes for _, p in partials)
        array_mb.add(held / 2**20)
        del raw
        yield from partials
        # after Spark took the partial slabs (all but the last batch serialised for the shuffle)
        rss_mb.add(peak_rss_mb())
    return run_task


def _reduce_fn(settings, out_dir: str, geom: ConeBeamGeometry, slab_size: int,
               truth_path: str | None, truth_header: int):
    def finish(partition):
        from pacs_hdfs.hdfs_store import HdfsStore

        hdfs = HdfsStore(settings)
        reset_peak_rss()
        for z0, total in partition:
            slab = total.astype(np.float32)
            z1 = z0 + slab.shape[0]
            path = posixpath.join(out_dir, f"slab-{z0:05d}-{z1:05d}.npy")
            hdfs.write(path, store.npy_bytes(slab), overwrite=True)
            stats = None
            if truth_path:
                plane = geom.n_voxels**2 * 4
                truth = np.frombuffer(hdfs.read(truth_path, truth_header + z0 * plane,
                                                (z1 - z0) * plane), "<f4")
                stats = error_sums(slab, truth.reshape(slab.shape), central_mask(geom, z0, z1))
            yield {"z0": z0, "z1": z1, "path": hdfs.abs(path), "min": float(slab.min()),
                   "max": float(slab.max()), "errors": stats, "peak_rss_mb": peak_rss_mb()}
    return finish


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reduce step: float64 accumulator, so the result does not depend on the merge order."""
    a = a.astype(np.float64) if a.dtype != np.float64 else a
    a += b
    return a


def collect_with_progress(sc, rdd, total_tasks: int, progress) -> list:
    """``rdd.collect()`` in a thread while ``progress(done, total)`` follows finished tasks.

    The job group (for cancel) is per thread, so it is copied to the collecting thread.
    """
    group = sc.getLocalProperty("spark.jobGroup.id")
    out: dict = {}

    def collect():
        try:
            if group:
                sc.setJobGroup(group, group, interruptOnCancel=True)
            out["rows"] = rdd.collect()
        except Exception as error:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = error

    worker = threading.Thread(target=collect, name="fdk-collect", daemon=True)
    worker.start()
    tracker = sc.statusTracker()
    while worker.is_alive():
        worker.join(0.5)
        if group:
            done = sum(info.numCompletedTasks for job in tracker.getJobIdsForGroup(group)
                       for stage in (tracker.getJobInfo(job).stageIds
                                     if tracker.getJobInfo(job) else [])
                       if (info := tracker.getStageInfo(stage)))
            try:
                progress(min(done, total_tasks), total_tasks)
            except StorageError as error:  # a progress write lost to an HBase blip is no failure
                log.warning("fdk progress not recorded: %s", error)
    if "error" in out:
        raise out["error"]
    return out["rows"]


def reconstruct_on_spark(spark, settings, hdfs, directory: str, meta: dict, params: Params,
                         out_dir: str, progress=lambda done, total: None) -> dict:
    """Run the map/reduce; returns the volume description (slab files) and task statistics."""
    sc = spark.sparkContext
    geom = job_geometry(meta, params.size)
    cores = int(sc.defaultParallelism) or 2
    threads = int(sc.getConf().get("spark.task.cpus", "1"))
    n_bands = len(plan_tasks(meta, params.band_rows, len(geom.angles)))
    chunk = params.angle_chunk or default_angle_chunk(geom.n_angles, n_bands, cores)
    band_size, chunk, tasks = fit_tasks(meta, geom, params.band_rows, chunk, params.slab_size,
                                        params.task_mb << 20)
    n_bands = len(plan_tasks(meta, band_size, len(geom.angles)))
    truth_path, truth_header = None, 0
    if meta.get("truth") and geom.n_voxels == meta["geometry"]["n_voxels"]:
        truth_path = posixpath.join(directory, meta["truth"])
        truth_header = store.npy_header_length(hdfs.read(truth_path, 0, 512))
    n_slabs = len(split_range(geom.n_voxels, params.slab_size))
    slab_size = params.slab_size
    rss_mb, array_mb = sc.accumulator(0.0, _Max()), sc.accumulator(0.0, _Max())
    task_seconds = sc.accumulator({"read": 0.0, "compute": 0.0, "cpu": 0.0}, _SumDict())
    t0 = time.perf_counter()
    with executor_python(sc):  # the Python RDDs capture the interpreter when they are built
        pipeline = (sc.parallelize(tasks, len(tasks))
                    .flatMap(_map_task_fn(settings, directory, geom, slab_size, params.filter,
                                          threads, rss_mb, array_mb, task_seconds))
                    .reduceByKey(_add, numPartitions=n_slabs,
                                 partitionFunc=lambda z0: z0 // slab_size)
                    .mapPartitions(_reduce_fn(settings, hdfs.abs(out_dir), geom, slab_size,
                                              truth_path, truth_header)))
        slabs = collect_with_progress(sc, pipeline, len(tasks) + n_slabs, progress)
    seconds = time.perf_counter() - t0
    slabs.sort(key=lambda s: s["z0"])
    return {"geometry": geom, "slabs": slabs, "seconds": seconds, "tasks": len(tasks),
            "angle_chunk": chunk, "bands": n_bands, "threads_per_task": threads,
            "task_budget_mb": params.task_mb,
            "map_task_peak_rss_mb": rss_mb.value, "map_task_array_mb": array_mb.value,
            "map_task_seconds": {k: round(v, 3) for k, v in task_seconds.value.items()},
            "accuracy": accuracy([s["errors"] for s in slabs]) if truth_path else None}


def run(ctx, params: Params) -> dict:
    from recon_mapreduce import charts, dicom_series

    directory = ctx.hdfs.abs(params.projections.rstrip("/"))
    ctx.progress(0.02, "reading geometry")
    meta = store.read_meta(ctx.hdfs, directory)
    out_dir = f"{ctx.output_dir}/volume"
    ctx.progress(0.05, "reconstructing on Spark")
    recon = reconstruct_on_spark(
        ctx.spark, ctx.settings, ctx.hdfs, directory, meta, params, out_dir,
        lambda done, total: ctx.progress(0.05 + 0.75 * done / total, f"{done}/{total} tasks"))
    geom = recon["geometry"]
    volume_meta = {"shape": [geom.n_voxels] * 3, "dtype": "float32", "order": "[z, y, x]",
                   "voxel_size_mm": geom.voxel_size, "units": "attenuation per mm",
                   "min": min(s["min"] for s in recon["slabs"]),
                   "max": max(s["max"] for s in recon["slabs"]),
                   "slabs": [{k: s[k] for k in ("z0", "z1", "path")} for s in recon["slabs"]]}
    volume_path = ctx.write_json("volume/volume.json", volume_meta)
    ctx.progress(0.8, "drawing the chart")
    planes = charts.central_planes(
        (store.npy_load(ctx.hdfs.read(s["path"])) for s in recon["slabs"]), geom.n_voxels)
    truth = charts.phantom_profile(meta, geom)
    ctx.write_artifact("chart.png", charts.volume_chart_png(planes, geom, truth))
    series = None
    if params.dicom:
        ctx.progress(0.85, "writing the DICOM series")
        series = dicom_series.store_volume_series(ctx, volume_meta, geom, params)
    ctx.progress(1.0, "done")
    result = {
        "volume": {"path": volume_path, **{k: volume_meta[k] for k in
                                           ("shape", "voxel_size_mm", "min", "max")}},
        "accuracy": recon["accuracy"],
        "dicom": series,
        "spark": {"seconds": round(recon["seconds"], 3), "map_tasks": recon["tasks"],
                  "angle_chunk": recon["angle_chunk"], "bands": recon["bands"],
                  "task_budget_mb": recon["task_budget_mb"],
                  "slabs": len(recon["slabs"]), "threads_per_task": recon["threads_per_task"],
                  "map_task_peak_rss_mb": round(recon["map_task_peak_rss_mb"], 1),
                  "map_task_array_mb": round(recon["map_task_array_mb"], 2),
                  "map_task_seconds_total": recon["map_task_seconds"],
                  "reduce_task_peak_rss_mb": round(max(s["peak_rss_mb"]
                                                       for s in recon["slabs"]), 1)},
        "projections": directory,
        "backend": "numba",
        "chart": {"profile": "along y through the central voxel",
                  "compared_with": "phantom" if truth is not None else None},
    }
    return {"numbers": charts.result_numbers(result), **result}


JOB_KINDS = {"fdk": (Params, run)}
