"""CLI for the DICOM area: `pacs scp`, `pacs quarantine ...`, `pacs has personalise`."""
from __future__ import annotations

from pathlib import Path

import typer

from pacs_hdfs.cli_apps import app, console, emit_json, fail, has_app, quarantine_app
from pacs_hdfs.settings import get_settings


@app.command("scp")
def scp(ae_title: str = typer.Option(None, "--ae-title", help="default: settings scp_ae_title"),
        port: int = typer.Option(None, "--port", help="default: settings scp_port")) -> None:
    """Run the DICOM SCP (Verification, Storage, Query/Retrieve) in the foreground."""
    from pacs_hdfs.dicom.config import ScpConfig
    from pacs_hdfs.dicom.runner import run
    s = get_settings()
    run(s, ScpConfig(), ae_title or s.scp_ae_title, port or s.scp_port)


def _hbase():
    from pacs_hdfs import clients
    return clients.hbase(get_settings())


@quarantine_app.command("list")
def quarantine_list(all_states: bool = typer.Option(False, "--all", help="also decided ones"),
                    json_out: bool = typer.Option(False, "--json")) -> None:
    """Objects held back for burned-in PHI review."""
    from pacs_hdfs.dicom.quarantine import list_entries
    entries = list_entries(_hbase(), None if all_states else "held")
    if json_out:
        emit_json(entries)
        return
    for e in entries:
        console.print(f"{e['sop_uid']}  {e['state']}  {e['reason']}")
    console.print(f"{len(entries)} object(s)")


def _decide(action, sop_uid: str) -> dict:
    from pacs_hdfs.dicom.quarantine import QuarantineError
    try:
        return action(_hbase(), sop_uid)
    except QuarantineError as e:
        fail(e)


@quarantine_app.command("show")
def quarantine_show(sop_uid: str) -> None:
    """One held object: reason, state, de-identified attributes, location (JSON)."""
    from pacs_hdfs.dicom.quarantine import show
    emit_json(_decide(show, sop_uid))


@quarantine_app.command("release")
def quarantine_release(sop_uid: str) -> None:
    """Make a held object visible to Q/R and the portal."""
    from pacs_hdfs.dicom.quarantine import release
    emit_json(_decide(release, sop_uid))


@quarantine_app.command("reject")
def quarantine_reject(sop_uid: str) -> None:
    """Keep a held object invisible for good."""
    from pacs_hdfs.dicom.quarantine import reject
    emit_json(_decide(reject, sop_uid))


@has_app.command("personalise")
def personalise(study_uid: str = typer.Argument(..., help="original or de-identified study UID"),
                out: Path = typer.Option(..., "--out", help="directory for the DICOM files"),
                json_out: bool = typer.Option(False, "--json")) -> None:
    """Fetch a study from the data center and write it with the original patient restored."""
    from pacs_hdfs.dicom.personalise import PersonaliseError, personalise_study
    try:
        report = personalise_study(get_settings(), study_uid, out)
    except PersonaliseError as e:
        fail(e)
    if json_out:
        emit_json(report)
    else:
        console.print(f"wrote {report['files']} file(s) to {report['out']}")
