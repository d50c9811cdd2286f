"""The numba back-projector against an earlier revision of itself, alternating in one process.

On a shared machine absolute GUPS follow the load; a ratio of two kernels timed in turns on the
same data in the same process does much less. The earlier kernel is read from git
(``git show REV:recon_mapreduce/fdk_fast.py``) into a temporary module. Appends one row per
timing and a ratio row to ``RESULTS.md`` and writes ``side_by_side.json``.

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/fdk/bench_side_by_side.py [--rev 54233b7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", str(os.cpu_count()))
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from recon_mapreduce.fdk_fast import backproject_numba  # noqa: E402
from recon_mapreduce.geometry import ConeBeamGeometry  # noqa: E402

HERE = Path(__file__).resolve().parent


def load_revision(rev: str):
    """``backproject_numba`` of ``recon_mapreduce/fdk_fast.py`` at git revision ``rev``."""
    source = subprocess.run(["git", "show", f"{rev}:recon_mapreduce/fdk_fast.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"fdk_fast_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.backproject_numba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="54233b7", help="the earlier revision")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--angles", type=int, default=360)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    n, n_angles = args.size, args.angles
    geom = ConeBeamGeometry.for_volume(n, n_angles, detector_shape=(2 * n, 2 * n))
    filtered = np.random.default_rng(0).standard_normal((n_angles, 2 * n, 2 * n), np.float32)
    kernels = {f"numba at {args.rev}": load_revision(args.rev), "numba now": backproject_numba}
    tiny = ConeBeamGeometry.for_volume(8, 2, detector_shape=(16, 16))
    for kernel in kernels.values():  # compile outside the timing
        kernel(np.zeros((2, 16, 16), np.float32), tiny)
    rows = []
    for _ in range(args.rounds):
        for name, kernel in kernels.items():
            load = os.getloadavg()
            wall, cpu = time.perf_counter(), time.process_time()
            kernel(filtered, geom)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows.append(dict(kernel=name, seconds=wall, cpu_seconds=cpu,
                             gups=n**3 * n_angles / wall / 1e9,
                             gups_per_cpu_second=n**3 * n_angles / cpu / 1e9, load=list(load)))
            print(json.dumps(rows[-1]), flush=True)
    best = {name: min((r for r in rows if r["kernel"] == name), key=lambda r: r["seconds"])
            for name in kernels}
    old, new = (best[name] for name in kernels)
    ratio = {"wall": old["seconds"] / new["seconds"], "cpu": old["cpu_seconds"] / new["cpu_seconds"]}
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    case = f"{n}^3 x {n_angles} proj, {2 * n}^2 det"
    (HERE / "side_by_side.json").write_text(json.dumps(
        dict(date=stamp, case=case, numba_threads=numba.get_num_threads(),
             numba_threading_layer=numba.threading_layer(), rows=rows, best=best,
             speedup=ratio), indent=2) + "\n")
    threads = f"{numba.get_num_threads()} ({numba.threading_layer()})"
    with (HERE / "RESULTS.md").open("a") as out:
        for row in best.values():
            out.write(f"| {stamp} | {os.cpu_count()} | {threads} | {case} | "
                      f"backproject {row['kernel']} (side by side) | {row['seconds']:.2f} | "
                      f"{row['cpu_seconds']:.2f} | {row['gups']:.3f} | "
                      f"{row['gups_per_cpu_second']:.3f} | {row['load'][0]:.1f} |\n")
        out.write(f"| {stamp} | {os.cpu_count()} | {threads} | {case} | speed-up now / "
                  f"{args.rev}: wall x{ratio['wall']:.2f}, CPU x{ratio['cpu']:.2f} | | | | | |\n")
    print(f"speed-up: wall x{ratio['wall']:.2f}, CPU x{ratio['cpu']:.2f}")


if __name__ == "__main__":
    main()
