"""Benchmark the SCC kernel per stage on this CPU against the study's published figures.

Runs ``run_pair`` on a seeded synthetic panorama/photo pair for each (B_in, B_out)
configuration, writes ``results.json`` next to this file and appends a dated section to
``RESULTS.md``. Resolution R of the study = bandwidth B (SO(3) grid of 2B per angle); see
``analytics_jobs.scc`` for why.

The anchors are the study's Table 8 (correlation step Vscc5). The study ran that step as host
processes on its nodes' 6-core Xeon at 3.46 GHz; the nodes' M2070Q GPUs only rendered the
cylmap/projmap stages (OpenGL). So these are host-CPU figures, one process per node. Targets:
correlation time ≤ the study's, and the process's peak RSS ≤ 2 GiB. B = 512 is measured when
listed in ``--configs`` (≈ 10 min here, so it is not in the default list nor in the tests).

    .venv/bin/python benchmarks/scc/bench_scc.py [--configs 64:64,128:128,256:256,256:128,512:512]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from analytics_jobs.scc.measure import host_facts
from analytics_jobs.scc.pipeline import run_pair, warm_up
from analytics_jobs.scc.sht import SHT_BACKENDS, ducc_available
from analytics_jobs.scc.synthetic import camera_rotation, make_scene, random_pose, render_panorama, render_photo

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIGS = "64:64,128:128,256:256,256:128"
FOV = np.deg2rad(60.0)

#: the study's Table 8, correlation step (Vscc5), run on the nodes' host CPU (6-core Xeon
#: 3.46 GHz; the M2070Q only rendered cylmap/projmap): output resolution → (seconds, MB)
STUDY_CORRELATION = {64: (0.384, 40.6), 128: (4.94, 266.6), 256: (55.3, 2062.0), 512: (673.9, 16404.0)}
STUDY_HOST = "6-core Intel Xeon 3.46 GHz per node, one process per node (study §2.3–2.4)"
#: ceiling on this process's peak resident set during a run (issue 19)
TARGET_PEAK_RSS_MIB = 2048.0


def parse_configs(text: str) -> list[tuple[int, int]]:
    """"64:64,256:128" → [(64, 64), (256, 128)]."""
    return [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item]


def time_sht(bandwidth: int, repeat: int = 3) -> dict:
    """Best-of-``repeat`` seconds of each forward SHT back-end on one random grid."""
    samples = np.random.default_rng(0).normal(size=(2 * bandwidth, 2 * bandwidth))
    backends = {"numpy": SHT_BACKENDS["numpy"]}
    if ducc_available():
        backends["ducc0"] = SHT_BACKENDS["ducc0"]
    out = {}
    for name, transform in backends.items():
        best = np.inf
        for _ in range(repeat):
            start = time.perf_counter()
            transform(samples, bandwidth)
            best = min(best, time.perf_counter() - start)
        out[name] = best
    return out


def predict(measured: dict[int, float], targets: list[int], model_exponent: float) -> dict:
    """Extrapolate from the largest measured output bandwidth two ways: the power law fitted
    through the two largest sizes, and the algorithm's model exponent (B^4 time, B^2 memory)."""
    sizes = sorted(measured)[-2:]
    if len(sizes) < 2:
        return {}
    b1, b2 = sizes
    fitted = float(np.log(measured[b2] / measured[b1]) / np.log(b2 / b1))
    return {
        "fitted_exponent": fitted,
        "model_exponent": model_exponent,
        "from": [b1, b2],
        "fitted": {str(b): measured[b2] * (b / b2) ** fitted for b in targets},
        "model": {str(b): measured[b2] * (b / b2) ** model_exponent for b in targets},
    }


def run(configs: list[tuple[int, int]], seed: int) -> dict:
    warm_up()
    scene = make_scene(seed)
    panorama = render_panorama(scene)
    rotation = camera_rotation(*random_pose(np.random.default_rng(seed)))
    photo = render_photo(scene, rotation, FOV, seed=seed)
    runs = []
    for b_in, b_out in configs:
        load_before = os.getloadavg()
        result = run_pair(panorama, photo, FOV, b_in, b_out, rotation)
        result["load_before"], result["load_after"] = load_before, os.getloadavg()
        result["peak_rss_mib"] = max(s["peak_rss_mib"] for s in result["stages"].values())
        result["candidates"] = result["candidates"][:3]
        runs.append(result)
        corr = result["stages"]["correlation"]
        print(
            f"B_in={b_in:4d} B_out={b_out:4d}  correlation {corr['seconds']:8.2f} s "
            f"(CPU {corr['cpu_seconds']:.1f} s)  peak RSS {result['peak_rss_mib']:7.0f} MiB  "
            f"false candidates {result['false_candidates']} ({result['false_peaks']} peaks)  "
            f"load {result['load_before'][0]:.1f}→{result['load_after'][0]:.1f}",
            flush=True,
        )
    square = {r["b_out"]: r["stages"]["correlation"] for r in runs if r["b_in"] == r["b_out"]}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": host_facts(),
        "resolution_mapping": "study resolution R = bandwidth B; SO(3) grid has 2B samples per angle",
        "photo": {"fov_deg": 60.0, "size": list(photo.shape[::-1]), "seed": seed},
        "panorama_size": list(panorama.shape[::-1]),
        "runs": runs,
        "sht_seconds": {str(b): time_sht(b) for b in sorted({b for b, _ in configs})},
        "study_correlation": {str(k): {"seconds": v[0], "mb": v[1]} for k, v in STUDY_CORRELATION.items()},
        "study_host": STUDY_HOST,
        "prediction_correlation_seconds": predict({b: s["seconds"] for b, s in square.items()}, [512, 1024], 4.0),
        "prediction_correlation_mib": predict({b: s["peak_delta_mib"] for b, s in square.items()}, [512, 1024], 2.0),
    }


def markdown(report: dict) -> str:
    """A dated RESULTS.md section: per-stage table, comparison with the study's figures, predictions."""
    host = report["host"]
    lines = [
        f"## {report['date']} — {host['cpu_model']}, {host['cpu_cores']} cores, "
        f"{host['memory_total_mib'] / 1024:.0f} GiB, load {tuple(round(x, 1) for x in host['load_average'])}",
        "",
        f"numpy {host['numpy']}, scipy {host['scipy']}, numba {host['numba']}, ducc0 {host['ducc0']}; "
        f"memory = peak RSS during the stage minus RSS at its start ({host['peak_memory_method']}); "
        "resolution R = bandwidth B (grid 2B per angle).",
        "",
        f"Study figures: Table 8 (Vscc5), {STUDY_HOST}; the study's GPUs did not run this step.",
        "",
        "| B_in:B_out | cylmap s | projmap s | setup s | forward s | correlation s (CPU s) | finalisation s "
        "| correlation MiB | peak RSS MiB | study corr. s | study corr. MB | ≤ study time? | ≤ 2 GiB RSS? "
        "| false cand. (ratio) | false peaks | load 1-min before→after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        st = run["stages"]
        corr = st["correlation"]
        study = STUDY_CORRELATION.get(run["b_out"])
        faster = "" if study is None else ("yes" if corr["seconds"] <= study[0] else "no")
        lean = "yes" if run["peak_rss_mib"] <= TARGET_PEAK_RSS_MIB else "no"
        lines.append(
            f"| {run['b_in']}:{run['b_out']} | {st['cylmap']['seconds']:.3f} | {st['projmap']['seconds']:.3f} "
            f"| {st['setup']['seconds']:.3f} | {st['forward']['seconds']:.3f} "
            f"| {corr['seconds']:.2f} ({corr['cpu_seconds']:.2f}) "
            f"| {st['finalisation']['seconds']:.4f} | {corr['peak_delta_mib']:.1f} | {run['peak_rss_mib']:.0f} "
            f"| {study[0] if study else '–'} | {study[1] if study else '–'} | {faster} | {lean} "
            f"| {run['false_candidates']} ({run['false_candidate_ratio']:.2e}) | {run['false_peaks']} "
            f"| {run['load_before'][0]:.1f}→{run['load_after'][0]:.1f} |"
        )
    sht = ", ".join(
        f"B={b}: " + " / ".join(f"{name} {sec * 1000:.1f} ms" for name, sec in times.items())
        for b, times in report["sht_seconds"].items()
    )
    t_pred, m_pred = report["prediction_correlation_seconds"], report["prediction_correlation_mib"]
    lines += ["", f"Forward SHT (one map, best of 3): {sht}."]
    measured = {run["b_out"] for run in report["runs"] if run["b_in"] == run["b_out"]}
    if t_pred:
        for kind in ("fitted", "model"):
            targets = [b for b in ("512", "1024") if int(b) not in measured]
            lines.append(
                f"Extrapolated correlation (not measured), {kind} scaling (time B^{t_pred[kind + '_exponent']:.2f}, "
                f"memory B^{m_pred[kind + '_exponent']:.2f}, from B={t_pred['from'][1]}): "
                + "; ".join(f"B={b} → {t_pred[kind][b]:.0f} s, {m_pred[kind][b]:.0f} MiB" for b in targets)
                + " (study at 512: 674 s, 16 GB)."
            )
    return "\n".join(lines) + "\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="comma list of B_in:B_out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    report = run(parse_configs(args.configs), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    results_md = args.out / "RESULTS.md"
    if not results_md.exists():
        results_md.write_text(
            "# SCC kernel benchmark\n\nWritten by `benchmarks/scc/bench_scc.py`; newest run last. "
            "Study figures: correlation step (Vscc5) of the original study, run as host processes on "
            "nodes with a 6-core Xeon at 3.46 GHz (their M2070Q only rendered cylmap/projmap) "
            "(out 64 / 128 / 256 / 512 → 0.38 s / 4.9 s / 55 s / 674 s and 41 MB / 267 MB / 2.1 GB / 16 GB; "
            "the study's MB are MiB — its 16384 MB at 512 is exactly 1024³ complex doubles). "
            "The host is shared: the load average is printed with each run.\n\n"
        )
    with results_md.open("a") as handle:
        handle.write(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
