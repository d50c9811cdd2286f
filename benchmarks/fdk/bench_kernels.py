"""Back-projection kernel throughput in GUPS (voxels x projections / second).

Times the back-projection only, on random filtered projections (the kernels' cost does not
depend on the data); the row filter is timed separately. Writes ``results.json`` next to this
file and appends rows to ``RESULTS.md``. The machine is shared, so each row also records the
1-minute load average and the CPU seconds the process used.

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/fdk/bench_kernels.py [--skip-large]
        [--wait-load 2 --wait-minutes 20]

``--wait-load`` waits (up to ``--wait-minutes``) for a 1-minute load average at or below the
given value before it starts, and the run records the load averages (1, 5, 15 min) before and
after, numba's threading layer and thread count, and whether the AVX2 window path was used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", str(os.cpu_count()))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from recon_mapreduce import backends  # noqa: E402
from recon_mapreduce.filters import filter_projections  # noqa: E402
from recon_mapreduce.geometry import ConeBeamGeometry  # noqa: E402

HERE = Path(__file__).resolve().parent
# (kernel, voxels per side, projections, detector side, repeats)
CASES = [
    ("numpy", 64, 60, 128, 1),
    ("numba", 128, 360, 256, 2),
    ("numba", 256, 360, 512, 1),
    ("cupy", 128, 360, 256, 2),
    ("cupy", 256, 360, 512, 1),
]
LARGE = 256


def time_call(function, repeats: int) -> tuple[float, float]:
    """Best wall seconds and the CPU seconds of that run."""
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def run_case(kernel: str, n: int, n_angles: int, detector: int, repeats: int) -> list[dict]:
    geom = ConeBeamGeometry.for_volume(n, n_angles, detector_shape=(detector, detector))
    rng = np.random.default_rng(0)
    projections = rng.standard_normal((n_angles, detector, detector), dtype=np.float32)
    backprojector = backends.get_backprojector(kernel)
    tiny = ConeBeamGeometry.for_volume(8, 2, detector_shape=(8, 8))
    backprojector(np.zeros((2, 8, 8), np.float32), tiny)  # compile / load outside the timing
    case = f"{n}^3 x {n_angles} proj, {detector}^2 det"
    load = os.getloadavg()[0]
    rows = []
    filtered = None

    def do_filter():
        nonlocal filtered
        filtered = filter_projections(projections, geom, "ram-lak")

    wall, cpu = time_call(do_filter, 1)
    rows.append(dict(case=case, kernel="row filter (numpy fft)", seconds=wall, cpu_seconds=cpu,
                     gups=None, gups_per_cpu_second=None, load1=load))
    wall, cpu = time_call(lambda: backprojector(filtered, geom), repeats)
    updates = n**3 * n_angles
    rows.append(dict(case=case, kernel=f"backproject {kernel}", seconds=wall, cpu_seconds=cpu,
                     gups=updates / wall / 1e9, gups_per_cpu_second=updates / cpu / 1e9,
                     load1=os.getloadavg()[0]))
    return rows


def wait_for_quiet(max_load: float, minutes: float) -> float:
    """Wait until the 1-minute load is at most ``max_load`` (or time is up); the load then."""
    deadline = time.monotonic() + 60 * minutes
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        print(f"load {os.getloadavg()[0]:.1f} > {max_load}: waiting", flush=True)
        time.sleep(20)
    return os.getloadavg()[0]


def append_markdown(rows: list[dict], stamp: str, cores: int) -> None:
    path = HERE / "RESULTS.md"
    if not path.exists():
        path.write_text("# FDK kernel benchmarks\n\nGUPS = voxels x projections / wall second; "
                        "GUPS/CPU-s divides by the CPU seconds the process got instead, i.e. "
                        "the rate per fully available core. load1 = 1-minute load average "
                        "during the run (shared machine).\n\n"
                        "| date (UTC) | host cores | numba threads | case | kernel | seconds "
                        "| CPU seconds | GUPS | GUPS/CPU-s | load1 |\n"
                        "|---|---|---|---|---|---|---|---|---|---|\n")
    import numba

    threads = os.environ["NUMBA_NUM_THREADS"]
    try:
        threads += f" ({numba.threading_layer()})"
    except ValueError:  # no parallel kernel ran
        pass
    with path.open("a") as out:
        for row in rows:
            gups = "" if row["gups"] is None else f"{row['gups']:.3f}"
            per_cpu = "" if row["gups_per_cpu_second"] is None else f"{row['gups_per_cpu_second']:.3f}"
            out.write(f"| {stamp} | {cores} | {threads} | {row['case']} | {row['kernel']} | "
                      f"{row['seconds']:.2f} | {row['cpu_seconds']:.2f} | {gups} | {per_cpu} | "
                      f"{row['load1']:.1f} |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help=f"skip the {LARGE}^3 cases")
    parser.add_argument("--wait-load", type=float, default=None,
                        help="wait for a 1-minute load average at or below this first")
    parser.add_argument("--wait-minutes", type=float, default=20.0)
    args = parser.parse_args()
    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_minutes)
    load_before = os.getloadavg()
    available = backends.available_backends()
    rows = []
    for kernel, n, n_angles, detector, repeats in CASES:
        if kernel not in available or (args.skip_large and n >= LARGE):
            continue
        case_rows = run_case(kernel, n, n_angles, detector, repeats)
        for row in case_rows:
            rates = "" if row["gups"] is None else (
                f"GUPS {row['gups']:.3f} (per CPU-s {row['gups_per_cpu_second']:.3f})  ")
            print(f"{row['case']:30s} {row['kernel']:24s} {row['seconds']:6.2f} s  "
                  f"cpu {row['cpu_seconds']:6.2f} s  {rates}load {row['load1']:.1f}", flush=True)
        rows += case_rows
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    cores = os.cpu_count() or 1
    import numba

    from benchmarks.common import host_facts
    from recon_mapreduce import lerp_window

    (HERE / "results.json").write_text(json.dumps(
        dict(date=stamp, host=platform.node(), cpu=host_facts()["cpu"], cores=cores,
             numba_threads=int(os.environ["NUMBA_NUM_THREADS"]),
             numba_threading_layer=numba.threading_layer(), avx2_window=lerp_window.HAS_AVX2,
             load_avg_before=list(load_before), load_avg_after=list(os.getloadavg()),
             backends=available, results=rows), indent=2) + "\n")
    append_markdown(rows, stamp, cores)


if __name__ == "__main__":
    main()
