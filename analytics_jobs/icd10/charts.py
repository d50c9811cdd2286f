"""One PNG chart per ICD-10 result (matplotlib, headless)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _bars(labels, values, title, ylabel):
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.bar([str(x) for x in labels], values, color="#3b6ea5")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    for i, v in enumerate(values):
        ax.annotate(f"{v:g}", (i, v), ha="center", va="bottom", fontsize=8)
    if len(labels) > 8:
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    return fig


def _period(r: dict) -> str:
    p = r["period"]
    return f"{p.get('from', p.get('date_from', ''))} – {p.get('to', p.get('date_to', ''))}"


def chart_png(result: dict) -> bytes:
    """Render the result of any of the five analyses as a bar chart."""
    name = result["analysis"]
    if name == "age_groups":
        labels = [g["label"] for g in result["groups"]] + ["unknown"]
        values = [g["patients"] for g in result["groups"]] + [result["unknown_age"]]
        fig = _bars(labels, values, f"Patients by age group, {_period(result)}", "patients")
    elif name == "sex_distribution":
        fig = _bars(list(result["counts"]), list(result["counts"].values()),
                    f"Patients by sex, {_period(result)}", "patients")
    elif name == "cases_over_time":
        labels = [s["start"][:10] for s in result["subperiods"]]
        fig = _bars(labels, [s["cases"] for s in result["subperiods"]],
                    f"Cases of {', '.join(result['codes']['specs'])}", "cases (visits)")
    elif name == "abnormal_labs":
        labels = ["normal", "abnormal", "uninterpreted"]
        normal = result["lab_results"] - result["abnormal"] - result["uninterpreted"]
        fig = _bars(labels, [normal, result["abnormal"], result["uninterpreted"]],
                    f"Lab results, {', '.join(result['codes']['specs'])}", "lab results")
    elif name == "visit_duration":
        fig = _bars(["mean hours", "mean days"],
                    [round(result["mean_hours"] or 0, 2), round(result["mean_days"] or 0, 2)],
                    f"Visit duration, {', '.join(result['codes']['specs'])} "
                    f"({result['visits_measured']} visits)", "duration")
    else:
        raise ValueError(f"no chart for {name}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
