"""The study's Tables 10–11 on synthetic terrain: median false-candidate ratio per B_in:B_out.

Runs ``run_pair`` locally on pairs 0 … N−1 of ``spark_sweep.make_pair`` (the very pairs an
``scc-sweep`` job with the same seed builds) over the study's fourteen combinations, counting
false candidates as the study does (§2.5.1; see ``analytics_jobs.scc.candidates``). Rows are
kept in ``quality_rows.json`` keyed by (seed, pair, B_in, B_out) and accumulate over runs, so the
costly 512 outputs (≈ 10 min a pair here) can be added with fewer pairs than the rest; each run
appends the table, built from all rows so far, to ``RESULTS.md``.

The data differ from the study's (synthetic ridges, the photo rendered from its panorama's own
scene, against real photos there): the table shows the shape, not the study's values.

    .venv/bin/python benchmarks/scc/bench_quality.py --pairs 8 --outputs 64,128,256
    .venv/bin/python benchmarks/scc/bench_quality.py --pairs 1 --outputs 512
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from analytics_jobs.scc.measure import host_facts
from analytics_jobs.scc.pipeline import run_pair, warm_up
from analytics_jobs.scc.report import STUDY_MEDIAN_RATIO, study_tables, summarise
from analytics_jobs.scc.spark_sweep import make_pair, task_row

HERE = Path(__file__).resolve().parent
FOV_DEG = 60.0


def _ints(text: str) -> set[int]:
    return {int(v) for v in text.split(",") if v.strip()}


def load_rows(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def run(pairs: int, seed: int, inputs: set[int], outputs: set[int], path: Path) -> dict[str, dict]:
    """Run every missing (pair, combination) task; save after each one (a long run may be cut)."""
    rows = load_rows(path)
    combos = sorted((k for k in STUDY_MEDIAN_RATIO if k[0] in inputs and k[1] in outputs), key=lambda k: (k[1], k[0]))
    fov = np.deg2rad(FOV_DEG)
    warm_up()
    for pair in range(pairs):
        panorama, photo, rotation, pose = make_pair(seed, pair, fov)
        for b_in, b_out in combos:
            key = f"{seed}/{pair}/{b_in}:{b_out}"
            if key in rows:
                continue
            load_before = os.getloadavg()[0]
            result = run_pair(panorama, photo, fov, b_in, b_out, rotation)
            task = {"pair": pair, "b_in": b_in, "b_out": b_out, "seed": seed, "fov_deg": FOV_DEG}
            row = task_row(result, task, pose, host_facts(), {}, {"load_before": load_before})
            rows[key] = {k: v for k, v in row.items() if k != "candidates_json"}
            path.write_text(json.dumps(rows, indent=1) + "\n")
            print(f"pair {pair} {b_in}:{b_out}  false candidates {row['false_candidates']} "
                  f"({row['false_candidate_ratio']:.2e}), {row['false_peaks']} peaks, best error "
                  f"{row['best_error_deg']:.1f}°, correlation {row['correlation_seconds']:.1f} s, "
                  f"load {load_before:.1f}→{row['host_load1']:.1f}", flush=True)
    return rows


def markdown(rows: dict[str, dict], seed: int) -> str:
    chosen = [r for key, r in rows.items() if key.startswith(f"{seed}/")]
    summary = summarise(chosen)
    loads = [r["load_before"] for r in chosen] + [r["host_load1"] for r in chosen]
    host = host_facts()
    lines = [f"## {datetime.now(timezone.utc).isoformat(timespec='seconds')} — false candidates, "
             f"study Tables 10–11 shape (bench_quality.py, seed {seed})", "",
             f"{host['cpu_model']}, {host['cpu_cores']} cores; 1-min load during the tasks "
             f"{min(loads):.1f}–{max(loads):.1f}. Pairs: `spark_sweep.make_pair(seed, pair)`, 60° photo "
             "480 × 320, panorama 2048 × 512. Correct solution = best grid pose within one grid step "
             "(π/B) of the truth; ratio = grid poses above it ÷ all grid poses; false peaks = distinct "
             "local maxima above it.", "", *study_tables(summary), "",
             "| B_in:B_out | pairs | false candidates per pair | false peaks per pair | best-candidate error ° (median) |",
             "|---|---|---|---|---|"]
    for e in summary:
        group = sorted((r for r in chosen if (r["b_in"], r["b_out"]) == (e["b_in"], e["b_out"])),
                       key=lambda r: r["pair"])
        lines.append(f"| {e['b_in']}:{e['b_out']} | {e['tasks']} | "
                     f"{', '.join(str(r['false_candidates']) for r in group)} | "
                     f"{', '.join(str(r['false_peaks']) for r in group)} | {e['best_error_deg']['median']:.1f} |")
    return "\n".join(lines) + "\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", default="64,128,256,512,1024")
    parser.add_argument("--outputs", default="64,128,256")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(args.pairs, args.seed, _ints(args.inputs), _ints(args.outputs), args.out / "quality_rows.json")
    text = markdown(rows, args.seed)
    with (args.out / "RESULTS.md").open("a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
