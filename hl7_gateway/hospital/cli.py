"""`pacs has generate|sync|visit`: the hospital side of the HL7 path (runs at the hospital)."""
from __future__ import annotations

from pathlib import Path

import typer

from pacs_hdfs.cli_apps import console, emit_json, fail, has_app
from pacs_hdfs.settings import get_settings


def _certs(directory: Path | None):
    from hl7_gateway.certs import CertPaths
    return CertPaths(directory or get_settings().certs_path)


def _default_url() -> str:
    return f"https://127.0.0.1:{get_settings().gateway_port}"


@has_app.command("generate")
def has_generate(patients: int = typer.Option(100), visits: int = typer.Option(1000),
                 out: Path = typer.Option(..., help="JSON Lines export file to write"),
                 seed: int = typer.Option(0)) -> None:
    """Write a synthetic HIS export WITH PHI (JSON Lines, see hl7_gateway/his_export.py)."""
    from hl7_gateway.hospital.his_export import generate_export
    count = generate_export(out, patients, visits, seed)
    console.print(f"{count} visits of {patients} patients written to {out}")


def _has_context():
    from hl7_gateway.hospital.has_keys import has_keys, hospital_dir, open_vault
    from hl7_gateway.hospital.link_table import LinkTable
    settings = get_settings()
    home = settings.home_abs
    keys = has_keys(open_vault(home), settings.deid_date_policy)
    hospital_dir(home).mkdir(parents=True, exist_ok=True)
    return keys, LinkTable(hospital_dir(home) / "links.sqlite")


@has_app.command("sync")
def has_sync(export: Path = typer.Argument(..., exists=True, dir_okay=False),
             batch: int = typer.Option(100, min=1, max=10_000),
             url: str = typer.Option(None, help="gateway URL, default https://127.0.0.1:8443"),
             certs: Path = typer.Option(None, help="certificate dir, default $PACS_HOME/certs"),
             json_out: bool = typer.Option(False, "--json")) -> None:
    """De-identify the export and send it to the MDC gateway; resumable, no duplicates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from hl7_gateway.hospital.has_client import GatewayClient, GatewayError, sync_export
    from hl7_gateway.hospital.phi_screen import PhiScreen
    keys, table = _has_context()
    screen = PhiScreen(get_settings().hl7_phi_policy)
    client = GatewayClient(url or _default_url(), _certs(certs))
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  disable=json_out) as progress:
        task = progress.add_task("syncing visits", total=None)
        try:
            report = sync_export(export, keys, table, client, batch,
                                 on_start=lambda n: progress.update(task, total=n),
                                 on_batch=lambda n, _: progress.advance(task, n),
                                 screen=screen)
        except GatewayError as exc:
            fail(f"{exc}; rerun to resume")
        finally:
            client.close()
            table.close()
    if json_out:
        emit_json(report.__dict__)
    else:
        console.print(f"sent {report.sent}: {report.acked} acknowledged, {report.rejected} "
                      f"rejected; link table: {report.counts}")
    if report.held and not json_out:
        console.print(f"[yellow]{report.held} visits held by the PHI screen (hl7_phi_policy = "
                      "refuse): their exam text holds PHI; not sent[/yellow]")
    if report.counts.get("rejected") and not json_out:
        console.print("[yellow]rejected visits keep their error in the link table[/yellow]")


@has_app.command("visit")
def has_visit(his_visit_id: str,
              export: Path = typer.Option(None, help="HIS export with the patients' data"),
              url: str = typer.Option(None), certs: Path = typer.Option(None),
              json_out: bool = typer.Option(False, "--json")) -> None:
    """Fetch a visit from the MDC and show it with the patient's personal data and true dates
    (hospital only)."""
    from hl7_gateway.hospital.has_client import GatewayClient, GatewayError
    from hl7_gateway.hospital.deidentify_visit import shift_days
    from hl7_gateway.hospital.has_visit import patient_from_export, render_visit, restore_dates
    keys, table = _has_context()
    link = table.by_his_visit_id(his_visit_id)
    table.close()
    if link is None:
        fail(f"{his_visit_id} is not in the link table (never synced)")
    client = GatewayClient(url or _default_url(), _certs(certs))
    try:
        visit = client.get_visit(link.encrypted_visit_id)
    except GatewayError as exc:
        fail(exc)
    finally:
        client.close()
    if visit is None:
        fail(f"{his_visit_id} is not stored at the MDC (link state {link.state})")
    offset = shift_days(keys, link.national_id)
    visit = restore_dates(visit, offset)
    patient = patient_from_export(export, link.national_id) if export else None
    patient = patient or {"national_id": link.national_id}
    if json_out:
        emit_json({"his_visit_id": his_visit_id, "state": link.state, "patient": patient,
                   "visit": visit, "date_shift_days": offset})
    else:
        render_visit(console, his_visit_id, patient, visit)


@has_app.command("personalise")
def personalise(study_uid: str = typer.Argument(..., help="original or de-identified study UID"),
                out: Path = typer.Option(..., "--out", help="directory for the DICOM files"),
                json_out: bool = typer.Option(False, "--json")) -> None:
    """Fetch a study from the data center and write it with the original patient restored."""
    from deid.edge.personalise import PersonaliseError, personalise_study
    try:
        report = personalise_study(get_settings(), study_uid, out)
    except PersonaliseError as e:
        fail(e)
    if json_out:
        emit_json(report)
    else:
        console.print(f"wrote {report['files']} file(s) to {report['out']}")
