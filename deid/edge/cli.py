"""`pacs edge ...`: run the hospital edge, and look after its spool and quarantine.

| command | does |
|---|---|
| `pacs edge` | run the edge in the foreground (SCP + forwarder + review page) |
| `pacs edge status [--json]` | spool, quarantine, rejected, forwarder, per-stage cost (`state.status`) |
| `pacs edge quarantine list/show/release/reject [--json]` | review held objects (audited) |
| `pacs edge rejected list [--json]` | what the MDC refused for good, with the reasons |
| `pacs edge rejected requeue SOP_UID [--json]` | send a refused object again (audited) |
| `pacs edge user add NAME` | a review page user (password from a prompt or stdin) |
| `pacs edge bench [--count N] [--json]` | per-stage receive cost on synthetic CT, no network |
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone

import typer

from pacs_hdfs.cli_apps import app, console, emit_json, fail
from pacs_hdfs.settings import get_settings

edge_app = typer.Typer(help="Hospital edge: DICOM SCP, de-identification, spool, forwarder.",
                       invoke_without_command=True)
app.add_typer(edge_app, name="edge")
quarantine_cmd = typer.Typer(help="Objects held on the edge for burned-in PHI review.",
                             no_args_is_help=True)
edge_app.add_typer(quarantine_cmd, name="quarantine")
rejected_cmd = typer.Typer(help="Objects the MDC refused for good.", no_args_is_help=True)
edge_app.add_typer(rejected_cmd, name="rejected")
user_cmd = typer.Typer(help="Users of the edge review page.", no_args_is_help=True)
edge_app.add_typer(user_cmd, name="user")


def _paths():
    from deid.edge.layout import EdgePaths
    return EdgePaths.from_settings(get_settings()).create()


def _when(epoch) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@edge_app.callback()
def edge(ctx: typer.Context) -> None:
    """Run the hospital edge in the foreground: DICOM SCP (modalities send here), durable
    spool, forwarder to the MDC (STOW-RS over mTLS), quarantine review page."""
    if ctx.invoked_subcommand is not None:
        return
    from deid.edge.runner import EdgeBusy, run
    try:
        run(get_settings())
    except EdgeBusy as e:
        fail(e)


@edge_app.command("status")
def status(json_out: bool = typer.Option(False, "--json")) -> None:
    """Spool (objects, bytes, oldest), quarantine, rejected, forward rate, last error, stages."""
    from deid.edge.state import status as edge_status
    s = get_settings()
    report = edge_status(_paths(), s.edge_name, s.edge_mdc_url)
    if json_out:
        emit_json(report)
        return
    sp, fw = report["spool"], report["forwarded"]
    age = sp["oldest_age_seconds"]
    console.print(f"edge {report['edge']}: {'running, pid ' + str(report['pid']) if report['running'] else 'not running'}"
                  f", forwarding to {report['mdc_url']} ({report['forwarder']['state']})")
    console.print(f"spool: {sp['objects']} object(s), {sp['bytes'] / 1e6:.1f} MB"
                  + (f", oldest {age:.0f} s" if age is not None else ""))
    console.print(f"quarantine: {report['quarantine']['objects']} held; "
                  f"rejected by the MDC: {report['rejected']['objects']}")
    console.print(f"forwarded: {fw['objects']} since start, {fw['rate_per_second']}/s "
                  "over the last minute")
    if report["last_error"]:
        console.print(f"last error ({_when(report['last_error']['time'])}): "
                      f"{report['last_error']['message']}")
    costs = [f"{k} {v['cpu_ms']}/{v['wall_ms']}" for k, v in report["stages"].items()
             if v.get("cpu_ms") is not None]
    if costs:
        console.print("stages, ms per object cpu/wall: " + ", ".join(costs))


@quarantine_cmd.command("list")
def quarantine_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """Held objects, oldest first."""
    from deid.edge.quarantine import list_held
    held = list_held(_paths())
    if json_out:
        emit_json(held)
        return
    for h in held:
        console.print(f"{h['sop_uid']}  {_when(h['held_at'])}  {h['reason']}")
    console.print(f"{len(held)} held")


def _decide(action, sop_uid: str) -> dict:
    from deid.edge.quarantine import QuarantineError
    try:
        return action(_paths(), sop_uid)
    except (QuarantineError, ValueError) as e:
        fail(e)


@quarantine_cmd.command("show")
def quarantine_show(sop_uid: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """One held object: reason, time held, de-identified UIDs, file."""
    from deid.edge.quarantine import show
    report = _decide(show, sop_uid)
    if json_out:
        emit_json(report)
    else:
        for k, v in report.items():
            console.print(f"{k}: {_when(v) if k == 'held_at' else v}")


@quarantine_cmd.command("release")
def quarantine_release(sop_uid: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Move a held object to the spool: the edge forwards it to the MDC (audited)."""
    from deid.edge.quarantine import release
    report = _decide(release, sop_uid)
    emit_json(report) if json_out else console.print(f"released {report['sop_uid']}")


@quarantine_cmd.command("reject")
def quarantine_reject(sop_uid: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Delete a held object: it never leaves the hospital (audited)."""
    from deid.edge.quarantine import reject
    report = _decide(reject, sop_uid)
    emit_json(report) if json_out else console.print(f"rejected and deleted {report['sop_uid']}")


@rejected_cmd.command("list")
def rejected_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """Objects the MDC refused for good (`rejected/`), with its reason."""
    from deid.edge.spool import read_json
    paths = _paths()
    out = []
    for f in sorted(paths.rejected.glob("*.dcm")):
        meta = read_json(f.with_suffix(".json")) or {"sop_uid": f.stem, "reason": "?"}
        out.append({**meta, "path": str(f)})
    if json_out:
        emit_json(out)
        return
    for r in out:
        console.print(f"{r['sop_uid']}  {_when(r.get('rejected_at'))}  {r['reason']}")
    console.print(f"{len(out)} rejected")


@rejected_cmd.command("requeue")
def rejected_requeue(sop_uid: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Put a refused object back in the spool to be sent again (audited), e.g. once the cause
    was fixed at the MDC."""
    from deid.edge.layout import safe_uid
    from deid.edge.quarantine import audit, cli_user
    from deid.edge.spool import Spool
    paths = _paths()
    try:
        record = Spool(paths).requeue(safe_uid(sop_uid))
    except (KeyError, ValueError):
        fail(f"{sop_uid} is not in rejected/")
    except FileExistsError:
        fail(f"{sop_uid}: a different object with this UID is in the spool")
    entry = audit(paths, "requeue", sop_uid, cli_user(), reason=record.get("reason", ""))
    report = {"sop_uid": sop_uid, "state": "requeued", "audit": entry}
    emit_json(report) if json_out else console.print(f"requeued {sop_uid}")


@user_cmd.command("add")
def user_add(name: str,
             password_stdin: bool = typer.Option(False, "--password-stdin",
                                                 help="read the password from stdin"),
             replace: bool = typer.Option(False, "--replace", help="set a new password")) -> None:
    """Create a review page user (argon2id hash in $PACS_HOME/hospital/edge_users.json)."""
    from deid.edge.users import EdgeUsers, UserError
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        EdgeUsers(_paths().users).add(name, password, replace=replace)
    except UserError as e:
        fail(e)
    console.print(f"user {name} can sign in to the edge review page")


@edge_app.command("bench")
def bench(count: int = typer.Option(200, help="objects"),
          size: int = typer.Option(512, help="rows = columns of the synthetic CT"),
          json_out: bool = typer.Option(False, "--json")) -> None:
    """Per-stage receive cost (ms per object) on synthetic CT, in a throw-away spool."""
    from deid.edge.bench import measure
    report = measure(count, size)
    if json_out:
        emit_json(report)
        return
    console.print(f"{report['objects']} objects of {report['object_bytes']} bytes, "
                  f"{report['objects_per_second']} objects/s in one thread")
    for name, v in report["stages"].items():
        console.print(f"  {name:<10} cpu {v['cpu_ms']} ms  wall {v['wall_ms']} ms")
