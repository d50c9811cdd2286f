"""`pacs job compare ID1 ID2 [--json]`: two SCC sweeps side by side (time, memory, quality, hosts)."""
from __future__ import annotations

import json

import typer

from pacs_hdfs.cli_apps import console, emit_json, fail, job_app
from pacs_hdfs.settings import get_settings


def load_sweep(svc, job_id: str) -> dict:
    """The result document of a finished scc-sweep job (exit 2 when it is not one)."""
    from analytics_jobs.service import JobNotFound
    try:
        rec = svc.status(job_id)
        if rec.kind != "scc-sweep" or rec.state != "succeeded":
            fail(f"job {job_id} is a {rec.state} {rec.kind} job, not a succeeded scc-sweep", 2)
        return json.loads(svc.artifact(job_id))
    except JobNotFound as e:
        fail(e, 2)


def _num(value, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def _fact(value) -> str:
    return _num(value, ".0f") if isinstance(value, float) else ("–" if value is None else str(value))


@job_app.command("compare")
def compare_jobs(job_a: str, job_b: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Compare two scc-sweep jobs per combination (B/A ratios) and show both hosts' facts."""
    from rich.table import Table

    from analytics_jobs.scc.report import compare
    from analytics_jobs.service import JobService
    svc = JobService(get_settings())
    result = compare(load_sweep(svc, job_a), load_sweep(svc, job_b))
    if json_out:
        emit_json(result)
        return
    table = Table(title=f"A = {job_a}   B = {job_b}   (ratios are B / A)")
    for col in ("B_in:B_out", "total s A", "total s B", "time ×", "corr. time ×",
                "corr. MiB A", "corr. MiB B", "corr. memory ×", "peak RSS ×", "false-cand. median A", "B",
                "false peaks median A", "B"):
        table.add_column(col)
    for row in result["combinations"]:
        table.add_row(row["combination"], _num(row["total_seconds"][0]), _num(row["total_seconds"][1]),
                      _num(row["total_seconds_ratio"], ".2f"), _num(row["correlation_seconds_ratio"], ".2f"),
                      _num(row["correlation_mib"][0], ".1f"), _num(row["correlation_mib"][1], ".1f"),
                      _num(row["correlation_mib_ratio"], ".2f"), _num(row["peak_rss_mib_ratio"], ".2f"),
                      _num(row["false_candidate_median"][0], ".2e"), _num(row["false_candidate_median"][1], ".2e"),
                      *(_num(v, ".3g") for v in row.get("false_peaks_median", (None, None))))
    console.print(table)
    for side, only in (("A", result["only_in_a"]), ("B", result["only_in_b"])):
        if only:
            console.print(f"only in {side}: {', '.join(only)}")
    hosts = Table(title="Hosts (first host of each job)")
    hosts.add_column("fact")
    hosts.add_column("A")
    hosts.add_column("B")
    first = [h[0] if h else {} for h in result["hosts"]]
    flat = [{**{k: v for k, v in h.items() if k != "spark"}, **h.get("spark", {})} for h in first]
    for key in dict.fromkeys([*flat[0], *flat[1]]):
        a, b = (_fact(side.get(key)) for side in flat)
        if a == b == "–":
            continue
        hosts.add_row(key, a, b if b != a else f"[dim]{b}[/dim]")
    console.print(hosts)
