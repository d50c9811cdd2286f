"""Summary, report and comparison of SCC sweeps: pure functions on flat task rows / result documents.

``summarise`` turns the per-task rows (the Parquet columns written by ``spark_sweep``) into one
entry per (b_in, b_out); ``build_report`` renders the study-style tables (time and memory per
stage, false-candidate quantiles) and three plots; ``compare`` sets two sweeps side by side, so a
run on a smaller machine can be read against an earlier one (the study's point: figures travel
with results).
"""
from __future__ import annotations

import io

import numpy as np

STAGES = ("cylmap", "projmap", "setup", "forward", "correlation", "finalisation")
#: the study's Tables 10–11: median false-candidate ratio ("median relative error") per B_in:B_out,
#: measured on its real photos against rendered panoramas (§2.5.1)
STUDY_MEDIAN_RATIO = {
    (64, 64): 0.0094385, (128, 64): 0.006380, (256, 64): 0.00514, (512, 64): 0.003871, (1024, 64): 0.003904,
    (128, 128): 0.0030366, (256, 128): 0.0017562, (512, 128): 0.0011149, (1024, 128): 0.001056,
    (256, 256): 0.00072, (512, 256): 0.000208, (1024, 256): 0.000154, (512, 512): 3.649e-05,
    (1024, 512): 1.1826e-05,
}
DATA_CAVEAT = ("The data differ from the study's: these are synthetic fractal-ridge terrain pairs (a photo "
               "rendered from the very scene of its panorama, with pixel noise), not real photos against "
               "rendered panoramas, so the numbers show the shape of the tables, not the study's values.")
QUANTILES = {"min": 0.0, "q10": 0.1, "q25": 0.25, "median": 0.5, "q75": 0.75, "q90": 0.9, "max": 1.0}


def _quantiles(values: list[float]) -> dict:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {name: None for name in (*QUANTILES, "mean")}
    out = {name: float(np.quantile(arr, q)) for name, q in QUANTILES.items()}
    out["mean"] = float(arr.mean())
    return out


def _stats(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"median": float(np.median(arr)), "max": float(arr.max())}


def summarise(rows: list[dict]) -> list[dict]:
    """One entry per combination: task count, false-candidate quantiles, per-stage time/memory."""
    groups: dict[tuple[int, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["b_in"], row["b_out"]), []).append(row)
    summary = []
    for (b_in, b_out), group in sorted(groups.items()):
        stages = {
            stage: {metric: _stats([r[f"{stage}_{metric}"] for r in group])
                    for metric in ("seconds", "cpu_seconds", "peak_rss_mib", "peak_delta_mib")}
            for stage in STAGES if f"{stage}_seconds" in group[0]
        }
        summary.append({
            "b_in": b_in, "b_out": b_out, "tasks": len(group), "grid_poses": group[0].get("grid_poses"),
            "false_candidate_ratio": _quantiles([r["false_candidate_ratio"] for r in group]),
            "false_peaks": _quantiles([r.get("false_peaks") for r in group]),
            "best_error_deg": _quantiles([r.get("best_error_deg") for r in group]),
            "total_seconds": _stats([r["total_seconds"] for r in group]),
            "peak_rss_mib": max(s["peak_rss_mib"]["max"] for s in stages.values()),
            "stages": stages,
        })
    return summary


def label(entry: dict) -> str:
    return f"{entry['b_in']}:{entry['b_out']}"


def _fmt(value, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def _stage_table(summary: list[dict], metric: str, spec: str, stat: str = "median") -> list[str]:
    stages = [s for s in STAGES if summary and s in summary[0]["stages"]]
    lines = ["| B_in:B_out | tasks | " + " | ".join(stages) + " |", "|---" * (len(stages) + 2) + "|"]
    for e in summary:
        cells = [_fmt(e["stages"][s][metric][stat], spec) for s in stages]
        lines.append(f"| {label(e)} | {e['tasks']} | " + " | ".join(cells) + " |")
    return lines


def markdown(summary: list[dict], hosts: list[dict], skipped: list[dict] = ()) -> str:
    """The study's tables: time and memory per stage, false-candidate quantiles; host facts."""
    lines = ["# SCC sweep report", "",
             "Times are medians over the pairs of each combination, memory the maximum. "
             "Resolution = bandwidth B (SO(3) grid 2B per angle).", "",
             "## Wall time per stage (s)", "", *_stage_table(summary, "seconds", ".3g"), "",
             "## CPU time per stage (s)", "", *_stage_table(summary, "cpu_seconds", ".3g"), "",
             "## Peak memory per stage (MiB above the stage's starting RSS, max over the pairs)", "",
             *_stage_table(summary, "peak_delta_mib", ".1f", "max"), "",
             "## Peak resident set per stage (MiB, max over the pairs)", "",
             *_stage_table(summary, "peak_rss_mib", ".0f", "max"), "",
             "## False-candidate ratio (grid poses scoring above the correct solution ÷ grid poses)", "",
             "The correct solution is the best grid pose within one grid step (π/B, geodesic) of the true "
             "rotation (study §2.5.1); false peaks are distinct local maxima scoring above it.", "",
             "| B_in:B_out | tasks | grid poses | min | q25 | median | q75 | max | false peaks (median) "
             "| false peaks (max) | best-candidate error ° (median) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        q, peaks = e["false_candidate_ratio"], e.get("false_peaks", {})
        lines.append(f"| {label(e)} | {e['tasks']} | {e['grid_poses']} | "
                     + " | ".join(_fmt(q[k], ".2e") for k in ("min", "q25", "median", "q75", "max"))
                     + f" | {_fmt(peaks.get('median'), '.3g')} | {_fmt(peaks.get('max'), '.0f')}"
                     + f" | {_fmt(e['best_error_deg']['median'], '.1f')} |")
    lines += ["", *study_tables(summary)]
    if skipped:
        lines += ["", "Skipped (output > input): "
                  + ", ".join(f"{s['b_in']}:{s['b_out']}" for s in skipped) + "."]
    lines += ["", "## Hosts", ""]
    for i, host in enumerate(hosts):
        facts = ", ".join(f"{k}={_fmt(v, '.0f') if isinstance(v, float) else v}"
                          for k, v in host.items() if k != "spark")
        spark = ", ".join(f"{k}={v}" for k, v in host.get("spark", {}).items() if v is not None)
        lines += [f"{i + 1}. {facts}", f"   Spark: {spark}"]
    return "\n".join(lines) + "\n"


def study_tables(summary: list[dict]) -> list[str]:
    """The study's Tables 10–11 laid out as there (one column per B_in:B_out), this sweep beside it."""
    ours = {(e["b_in"], e["b_out"]): e for e in summary}
    keys = sorted(set(STUDY_MEDIAN_RATIO) | set(ours), key=lambda k: (k[1], k[0]))
    lines = ["## Study Tables 10–11: median false-candidate ratio per B_in:B_out", "", DATA_CAVEAT, "",
             "| | " + " | ".join(f"{b_in}:{b_out}" for b_in, b_out in keys) + " |",
             "|---" * (len(keys) + 1) + "|",
             "| study (real photos) | " + " | ".join(_fmt(STUDY_MEDIAN_RATIO.get(k), ".3g") for k in keys) + " |"]
    def cell(key, field):
        return "–" if key not in ours else _fmt(ours[key][field]["median"], ".3g")
    def mean(key):
        return "–" if key not in ours else _fmt(ours[key]["false_candidate_ratio"]["mean"], ".3g")
    lines += ["| here: median ratio | " + " | ".join(cell(k, "false_candidate_ratio") for k in keys) + " |",
              "| here: mean ratio | " + " | ".join(mean(k) for k in keys) + " |",
              "| here: median false peaks | " + " | ".join(
                  cell(k, "false_peaks") if k in ours and "false_peaks" in ours[k] else "–" for k in keys) + " |",
              "| here: pairs | " + " | ".join(str(ours[k]["tasks"]) if k in ours else "–" for k in keys) + " |"]
    return lines


def _plot_stages(summary: list[dict], metric: str, stat: str, ylabel: str, title: str) -> bytes:
    """One line per stage over the combinations; memory may be 0, hence symlog below 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(len(summary))
    for stage in STAGES:
        if summary and stage in summary[0]["stages"]:
            y = [e["stages"][stage][metric][stat] for e in summary]
            ax.plot(x, y, marker="o", label=stage)
    ax.set_xticks(x, [label(e) for e in summary])
    ax.set_yscale("symlog", linthresh=1e-3 if metric == "seconds" else 1.0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("B_in:B_out")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _plot_quality(summary: list[dict]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(len(summary))
    q = [e["false_candidate_ratio"] for e in summary]
    med = np.array([v["median"] for v in q])
    ax.vlines(x, [v["min"] for v in q], [v["max"] for v in q], color="grey", label="min–max")
    ax.vlines(x, [v["q25"] for v in q], [v["q75"] for v in q], linewidth=6, color="tab:blue", label="q25–q75")
    ax.plot(x, med, "o", color="black", label="median")
    ax.set_xticks(x, [label(e) for e in summary])
    ax.set_xlabel("B_in:B_out")
    ax.set_ylabel("false-candidate ratio")
    ax.set_title("False candidates per combination")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def build_report(summary: list[dict], hosts: list[dict], skipped: list[dict] = ()) -> dict[str, bytes]:
    """{artifact name: bytes}: report.md, time.png, memory.png, quality.png."""
    return {
        "report.md": markdown(summary, hosts, skipped).encode(),
        "time.png": _plot_stages(summary, "seconds", "median", "median wall time (s)",
                                 "Time per stage vs resolution"),
        "memory.png": _plot_stages(summary, "peak_delta_mib", "max", "peak memory above stage start (MiB)",
                                   "Memory per stage vs resolution"),
        "quality.png": _plot_quality(summary),
    }


def _ratio(new, old):
    return None if new is None or not old else new / old


def compare(a: dict, b: dict) -> dict:
    """Two sweep result documents per common combination: B/A ratios of time and memory and the
    median false-candidate ratio of each; plus the host facts of both."""
    by_a = {label(e): e for e in a["summary"]}
    by_b = {label(e): e for e in b["summary"]}
    rows = []
    for key in [k for k in by_a if k in by_b]:
        ea, eb = by_a[key], by_b[key]
        corr_a, corr_b = ea["stages"]["correlation"], eb["stages"]["correlation"]
        rows.append({
            "combination": key,
            "total_seconds": [ea["total_seconds"]["median"], eb["total_seconds"]["median"]],
            "total_seconds_ratio": _ratio(eb["total_seconds"]["median"], ea["total_seconds"]["median"]),
            "correlation_seconds_ratio": _ratio(corr_b["seconds"]["median"], corr_a["seconds"]["median"]),
            "correlation_mib": [corr_a["peak_delta_mib"]["max"], corr_b["peak_delta_mib"]["max"]],
            "correlation_mib_ratio": _ratio(corr_b["peak_delta_mib"]["max"], corr_a["peak_delta_mib"]["max"]),
            "peak_rss_mib_ratio": _ratio(eb["peak_rss_mib"], ea["peak_rss_mib"]),
            "false_candidate_median": [ea["false_candidate_ratio"]["median"], eb["false_candidate_ratio"]["median"]],
            "false_peaks_median": [ea.get("false_peaks", {}).get("median"), eb.get("false_peaks", {}).get("median")],
        })
    return {
        "jobs": [a.get("job_id"), b.get("job_id")],
        "combinations": rows,
        "only_in_a": [k for k in by_a if k not in by_b],
        "only_in_b": [k for k in by_b if k not in by_a],
        "hosts": [a.get("hosts", []), b.get("hosts", [])],
    }
