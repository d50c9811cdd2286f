"""`pacs job ...`: submit, status, list, result, cancel, runner, kinds.

Kind-specific options are passed as `--name value` after the kind and validated by the kind's
parameter model (dashes become underscores; `--from`/`--to` map to `date_from`/`date_to`).
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn

from pacs_hdfs.cli_apps import console, emit_json, fail, job_app
from pacs_hdfs.settings import get_settings

ALIASES = {"from": "date_from", "to": "date_to"}


def parse_extra(args: list[str]) -> dict:
    """`--size 128 --filter hann --flag` -> {"size": "128", "filter": "hann", "flag": True}."""
    out: dict = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise typer.BadParameter(f"unexpected argument {a!r}")
        key = a[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 1
        else:
            value = True
        key = key.replace("-", "_")
        out[ALIASES.get(key, key)] = value
        i += 1
    return out


def _service():
    from analytics_jobs.service import JobService
    return JobService(get_settings())


@job_app.command("submit", context_settings={"allow_extra_args": True,
                                             "ignore_unknown_options": True})
def submit(ctx: typer.Context, kind: str,
           wait: bool = typer.Option(False, "--wait", help="wait for the job to finish"),
           json_out: bool = typer.Option(False, "--json")) -> None:
    """Queue a job of KIND (see `pacs job kinds`) with its options; optionally wait."""
    from pydantic import ValidationError

    from analytics_jobs.kinds import UnknownKind
    from analytics_jobs.service import RunnerUnavailable
    svc = _service()
    try:
        rec = svc.submit(kind, parse_extra(ctx.args))
    except (UnknownKind, typer.BadParameter) as e:
        fail(e, 2)
    except ValidationError as e:
        fail(f"invalid parameters for {kind}:\n{e}", 2)
    except RunnerUnavailable as e:
        fail(e, 3)
    if not wait:
        emit_json(rec.to_dict()) if json_out else console.print(f"queued job {rec.id}")
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"{kind} {rec.id}", total=1.0)
        try:
            rec = svc.wait(rec.id, on_progress=lambda r: bar.update(
                task, completed=r.progress, description=f"{kind} {r.state} {r.message}"[:80]))
        except RunnerUnavailable as e:
            fail(e, 3)
    if json_out:
        emit_json(rec.to_dict())
    else:
        console.print(f"job {rec.id}: {rec.state} in {rec.runtime_s} s"
                      + (f" — {rec.error}" if rec.error else ""))
    raise typer.Exit(0 if rec.state == "succeeded" else 1)


@job_app.command("status")
def status(job_id: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """State, progress and outputs of one job."""
    from analytics_jobs.service import JobNotFound
    svc = _service()
    try:
        rec = svc.status(job_id)
    except JobNotFound as e:
        fail(e, 2)
    yarn = svc.yarn_report(rec)         # None unless the job ran as a YARN application
    if json_out:
        emit_json({**rec.to_dict(), **({"yarn": yarn} if yarn else {})})
    else:
        console.print(f"{rec.id} {rec.kind}: {rec.state} {rec.progress:.0%} {rec.message}"
                      + (f"\nerror: {rec.error}" if rec.error else "")
                      + (f"\nYARN {yarn['id']}: {yarn.get('state')} {yarn.get('finalStatus')}"
                         f" {yarn.get('trackingUrl') or yarn.get('error', '')}" if yarn else ""))


@job_app.command("list")
def list_jobs(limit: int = 20, json_out: bool = typer.Option(False, "--json")) -> None:
    """Recent jobs, newest first."""
    recs = _service().list(limit)
    if json_out:
        emit_json([r.to_dict() for r in recs])
        return
    from rich.console import Console
    from rich.table import Table
    t = Table()
    for col in ("id", "kind", "state", "progress", "submitted", "runtime s"):
        t.add_column(col)
    for r in recs:
        t.add_row(r.id, r.kind, r.state, f"{r.progress:.0%}", r.submitted, str(r.runtime_s or ""))
    Console().print(t)


@job_app.command("result")
def result(job_id: str, out: Path = typer.Option(None, "--out", help="write here instead of stdout"),
           artifact: str = typer.Option("result.json", help="which output (e.g. chart.png)")) -> None:
    """The job's result document (or another named output)."""
    from analytics_jobs.service import JobNotFound
    try:
        data = _service().artifact(job_id, artifact)
    except JobNotFound as e:
        fail(e, 2)
    if out:
        out.write_bytes(data)
        console.print(f"wrote {out} ({len(data)} bytes)")
    else:
        typer.echo(data.decode(errors="replace"))


@job_app.command("cancel")
def cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    from analytics_jobs.service import JobNotFound
    try:
        rec = _service().cancel(job_id)
    except JobNotFound as e:
        fail(e, 2)
    console.print(f"{rec.id}: {rec.state}{' (cancel requested)' if not rec.final else ''}")


@job_app.command("kinds")
def kinds() -> None:
    """Job kinds and their parameters."""
    from analytics_jobs.kinds import KINDS, kind_spec
    for kind in sorted(KINDS):
        try:
            model, _ = kind_spec(kind)
            fields = ", ".join(f"--{n.replace('_', '-')}" for n in model.model_fields)
        except (ImportError, AttributeError, KeyError):
            fields = "(not available)"
        typer.echo(f"{kind}: {fields}")


@job_app.command("runner")
def runner(idle_exit_s: float = typer.Option(None, "--idle-exit-s",
                                             help="leave after this many idle seconds")) -> None:
    """Run the job runner in the foreground (a Spark driver taking queued jobs: one warm
    session on a standalone master, one application per job on YARN). This is what the
    systemd unit pacs-job-runner.service runs."""
    from analytics_jobs.runner import main
    main([] if idle_exit_s is None else ["--idle-exit-s", str(idle_exit_s)])


@job_app.command("pack-env")
def pack_env(upload: bool = typer.Option(True, help="also copy it to HDFS")) -> None:
    """Build the Python archive executors get on YARN (venv-pack of this venv, without pyspark's
    jars), the code zip and Spark's jars zip when missing or stale, and upload them to HDFS
    under <hdfs_root>/env/ (a job on YARN does this itself on first use)."""
    from pacs_hdfs.python_env import (ensure_code_zip, ensure_env_archive, ensure_spark_jars_zip,
                                      hdfs_copy)
    s = get_settings()
    built = [ensure_env_archive(s, progress=console.log), ensure_code_zip(s)]
    if s.on_yarn:
        built.append(ensure_spark_jars_zip(s))
    for path in built:
        line = f"{path} ({path.stat().st_size / 2**20:.0f} MiB)"
        if upload and path.name != "pacs-code.zip":
            line += f" -> {hdfs_copy(s, path)}"
        console.print(line)
