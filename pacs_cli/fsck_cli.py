"""`pacs fsck [--repair] [--grace SECONDS] [--study UID [--series UID]] [--json]`.

Submits the `fsck` job (pacs_hdfs/dicom/fsck_job.py) to the job service, waits with a progress
bar, then prints a summary or, with `--json`, the job's result document unchanged:

    clean     true when no problem remains (after the repair when repairing); pending items
              (younger than the grace period: maybe a commit in flight) do not count
    scope     {"containers", "study", "series"}
    totals    files, bytes, objects_checked, objects_ok, objects_bad, rows_past_end,
              rows_missing_file, rows_unreadable, orphan_files, orphan_segments, orphan_bytes,
              unfinished_files, unfinished_commits, dangling_sop_rows, counter_mismatches,
              bytes_read, moved_during_check, problems
    pending   orphan_files, orphan_segments, orphan_bytes, unfinished_files,
              unfinished_commits, counter_mismatches (younger than --grace)
    problems  lists (at most --list-cap items each): bad_objects, rows_past_end,
              rows_missing_file, rows_unreadable, orphan_files, orphan_segments,
              unfinished_files, unfinished_commits, dangling_sop_rows, counter_mismatches,
              unreadable_files
    before    with --repair: {totals, pending, problems} of the check before the repair
    repair    with --repair: rows {repointed, unrepairable, ...}, commits {completed,
              unrepairable, ...}, compaction {series, orphan_files_deleted,
              orphan_bytes_reclaimed, ...}, counters {set, left_pending, ...}
    timing    check_s, repair_s, recheck_s, total_s, stages_s
    (plus the job service's job_id, kind, parameters, numbers, provenance)

Exit code: 0 the archive (scope) is clean, 1 problems remain, 2 the job could not run.
"""
from __future__ import annotations

import json

import typer
from rich.progress import BarColumn, Progress, TextColumn

from pacs_hdfs.cli_apps import app, console, emit_json, fail
from pacs_hdfs.settings import get_settings

#: totals shown in the summary table, in this order
SHOWN = ("files", "bytes", "objects_checked", "objects_ok", "objects_bad", "rows_past_end",
         "rows_missing_file", "rows_unreadable", "orphan_files", "orphan_segments",
         "orphan_bytes", "unfinished_files", "unfinished_commits", "dangling_sop_rows",
         "counter_mismatches", "problems")


@app.command("fsck")
def fsck(repair: bool = typer.Option(False, "--repair",
                                     help="fix what redundant copies allow, then check again"),
         grace: float = typer.Option(3600.0, "--grace", min=0,
                                     help="seconds: younger files may belong to a commit in "
                                          "flight (pending, never deleted)"),
         study: str = typer.Option("", "--study", help="check only this study"),
         series: str = typer.Option("", "--series", help="check only this series of --study"),
         list_cap: int = typer.Option(100, "--list-cap", min=1, help="items per problem list"),
         timeout: float = typer.Option(24 * 3600, "--timeout", help="seconds to wait"),
         json_out: bool = typer.Option(False, "--json", help="print the result document")
         ) -> None:
    """Check every index row against its batch file's bytes (sha256), list orphan segments,
    unfinished files and commits and wrong counters; with --repair fix what can be fixed."""
    from pydantic import ValidationError

    from analytics_jobs.service import JobService
    svc = JobService(get_settings())
    params = {"repair": repair, "grace_s": grace, "study": study, "series": series,
              "list_cap": list_cap}
    try:
        rec = svc.submit("fsck", params)
    except ValidationError as e:
        fail(f"invalid parameters:\n{e}", 2)
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), console=console,
                  transient=True, disable=json_out and not console.is_terminal) as bar:
        task = bar.add_task(f"fsck {rec.id}", total=1.0)
        rec = svc.wait(rec.id, timeout=timeout, on_progress=lambda r: bar.update(
            task, completed=r.progress, description=f"fsck {r.state} {r.message}"[:80]))
    if rec.state != "succeeded":
        if json_out:
            emit_json({"job_id": rec.id, "state": rec.state, "error": rec.error})
        console.print(f"[red]fsck job {rec.id} {rec.state}[/red] {rec.error}")
        raise typer.Exit(2)
    result = json.loads(svc.artifact(rec.id))
    if json_out:
        emit_json(result)
    else:
        print_summary(result)
    raise typer.Exit(0 if result["clean"] else 1)


def print_summary(result: dict) -> None:
    from rich.table import Table
    before = (result.get("before") or {}).get("totals")
    scope = result["scope"]
    where = scope["containers"] + (f" study {scope['study']}" if scope.get("study") else "") \
        + (f" series {scope['series']}" if scope.get("series") else "")
    t = Table(title=f"fsck {where}")
    t.add_column("")
    if before:
        t.add_column("before", justify="right")
    t.add_column("after repair" if before else "found", justify="right")
    for k in SHOWN:
        t.add_row(k, *([str(before[k])] if before else []), str(result["totals"][k]))
    console.print(t)
    pending = {k: v for k, v in result["pending"].items() if v}
    if pending:
        console.print(f"pending (younger than the grace period): {pending}")
    if result.get("repair"):
        r = result["repair"]
        console.print(
            f"repair: {r['rows']['repointed']} row(s) repointed, {r['rows']['unrepairable']} "
            f"unrepairable; {r['commits']['completed']} commit(s) completed, "
            f"{r['commits']['unrepairable']} not; {r['compaction']['orphan_files_deleted']} "
            f"orphan file(s) deleted ({r['compaction']['orphan_bytes_reclaimed']} bytes) in "
            f"{r['compaction']['series']} series; {r['counters']['set']} counter(s) set")
        for item in r["rows"]["unrepairable_list"][:5]:
            console.print(f"  unrepairable {item.get('key')}: {item.get('reason')}")
    for name, items in result["problems"].items():
        for item in items[:5]:
            what = item.get("key") or item.get("path")
            console.print(f"  {name}: {what}" + (f" ({item['column']}: stored {item['stored']}, "
                                                  f"expected {item['expected']})"
                                                  if "column" in item else ""))
        if len(items) > 5:
            console.print(f"  {name}: ... {len(items) - 5} more listed in --json")
    timing = result["timing"]
    console.print(("[green]clean[/green]" if result["clean"] else
                   f"[red]{result['totals']['problems']} problem(s)[/red]")
                  + f" in {timing['total_s']} s")
