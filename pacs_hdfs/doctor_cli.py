"""`pacs doctor [--json]`: check the configured cluster from this host (pacs_hdfs/doctor.py)."""
from __future__ import annotations

import typer

from pacs_hdfs.cli_apps import app, console, emit_json
from pacs_hdfs.settings import get_settings


@app.command("doctor")
def doctor(json_out: bool = typer.Option(False, "--json")) -> None:
    """Check the cluster these settings point at (NameNodes, DataNodes, HDFS write, HBase,
    Spark master or YARN, driver address, Python archive); exit 1 naming what fails."""
    from pacs_hdfs.doctor import run_checks
    with console.status("checking") as st:
        checks = run_checks(get_settings(), progress=lambda name: st.update(f"checking {name}"))
    ok = all(c.ok for c in checks)
    if json_out:
        emit_json({"ok": ok, "checks": [c.to_dict() for c in checks]})
    else:
        for c in checks:
            mark = "[green]ok[/green]  " if c.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {c.name}: {c.detail}" + (f"\n       fix: {c.fix}"
                                                            if not c.ok and c.fix else ""))
        console.print("[green]healthy[/green]" if ok else "[red]problems found[/red]")
    raise typer.Exit(0 if ok else 1)
