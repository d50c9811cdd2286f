"""`pacs certs init|edge`, `pacs gateway [compact]`, `pacs has generate|sync|visit`."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer

from pacs_hdfs.cli_apps import app, certs_app, console, emit_json, fail, has_app
from pacs_hdfs.settings import get_settings

gateway_app = typer.Typer(help="HL7 v3 HTTPS gateway (mutual TLS).", invoke_without_command=True)
app.add_typer(gateway_app, name="gateway")


def _certs(directory: Path | None):
    from hl7_gateway.certs import CertPaths
    return CertPaths(directory or get_settings().path("certs"))


def _default_url() -> str:
    return f"https://127.0.0.1:{get_settings().gateway_port}"


@certs_app.command("init")
def certs_init(directory: Path = typer.Option(None, "--dir", help="default $PACS_HOME/certs"),
               force: bool = typer.Option(False, "--force", help="replace existing files"),
               json_out: bool = typer.Option(False, "--json")) -> None:
    """Create a development CA, a server certificate (127.0.0.1, localhost) and a client one."""
    from hl7_gateway.certs import create_dev_pki
    paths = create_dev_pki(_certs(directory).directory, force=force)
    files = {k: str(getattr(paths, k)) for k in ("ca_cert", "server_cert", "server_key",
                                                 "client_cert", "client_key")}
    if json_out:
        emit_json(files)
    else:
        console.print(f"certificates in {paths.directory}")


@certs_app.command("edge")
def certs_edge(name: str = typer.Argument(..., help="the edge's name (letters, digits, . _ -)"),
               directory: Path = typer.Option(None, "--dir", help="default $PACS_HOME/certs"),
               force: bool = typer.Option(False, "--force", help="replace an existing one"),
               json_out: bool = typer.Option(False, "--json")) -> None:
    """Issue a hospital edge's client certificate (edges/NAME.pem, .key), signed by the dev CA.

    Only edge certificates may store images at the MDC (STOW-RS); the MDC records the edge
    name on every object it stores."""
    from hl7_gateway.certs import issue_edge_cert
    try:
        edge = issue_edge_cert(_certs(directory).directory, name, force=force)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if json_out:
        emit_json({"name": edge.name, "cert": str(edge.cert), "key": str(edge.key),
                   "ca_cert": str(edge.ca_cert)})
    else:
        console.print(f"edge {edge.name}: {edge.cert} (key {edge.key})")


@gateway_app.callback()
def gateway(ctx: typer.Context,
            port: int = typer.Option(None, help="default: settings gateway_port (8443)"),
            host: str = typer.Option("127.0.0.1"),
            certs: Path = typer.Option(None, help="certificate dir, default $PACS_HOME/certs"),
            max_bytes: int = typer.Option(20 * 1024 * 1024, help="request body limit"),
            log_file: Path = typer.Option(None, help="default $PACS_HOME/logs/gateway.log")) -> None:
    """Run the gateway in the foreground (HTTPS only, client certificates required)."""
    if ctx.invoked_subcommand is not None:
        return
    from hl7_gateway.parser import ParserLimits
    from hl7_gateway.server import serve
    paths = _certs(certs)
    if not paths.complete():
        fail(f"no certificates in {paths.directory}: run `pacs certs init` first")
    serve(get_settings(), paths, host, port, ParserLimits(max_bytes=max_bytes), log_file)


@gateway_app.command("compact")
def gateway_compact(month: str = typer.Option(None, help="YYYY-MM, default every month"),
                    grace_seconds: int = typer.Option(60, help="leave files younger than this"),
                    json_out: bool = typer.Option(False, "--json")) -> None:
    """Merge each visit_month partition's small Parquet files into one, deduplicated."""
    from hl7_gateway.visit_parquet import compact
    from pacs_hdfs import clients
    report = compact(clients.hdfs(get_settings()), month, timedelta(seconds=grace_seconds))
    if json_out:
        emit_json(report)
    else:
        done = [r for r in report if r["output"]]
        console.print(f"compacted {len(done)} of {len(report)} partitions, "
                      f"{sum(r['inputs'] for r in done)} files merged")


@has_app.command("generate")
def has_generate(patients: int = typer.Option(100), visits: int = typer.Option(1000),
                 out: Path = typer.Option(..., help="JSON Lines export file to write"),
                 seed: int = typer.Option(0)) -> None:
    """Write a synthetic HIS export WITH PHI (JSON Lines, see hl7_gateway/his_export.py)."""
    from hl7_gateway.his_export import generate_export
    count = generate_export(out, patients, visits, seed)
    console.print(f"{count} visits of {patients} patients written to {out}")


def _has_context():
    from hl7_gateway.has_keys import has_keys, hospital_dir, open_vault
    from hl7_gateway.link_table import LinkTable
    home = get_settings().home_abs
    keys = has_keys(open_vault(home))
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

    from hl7_gateway.has_client import GatewayClient, GatewayError, sync_export
    keys, table = _has_context()
    client = GatewayClient(url or _default_url(), _certs(certs))
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  disable=json_out) as progress:
        task = progress.add_task("syncing visits", total=None)
        try:
            report = sync_export(export, keys, table, client, batch,
                                 on_start=lambda n: progress.update(task, total=n),
                                 on_batch=lambda n, _: progress.advance(task, n))
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
    if report.counts.get("rejected") and not json_out:
        console.print("[yellow]rejected visits keep their error in the link table[/yellow]")


@has_app.command("visit")
def has_visit(his_visit_id: str,
              export: Path = typer.Option(None, help="HIS export with the patients' data"),
              url: str = typer.Option(None), certs: Path = typer.Option(None),
              json_out: bool = typer.Option(False, "--json")) -> None:
    """Fetch a visit from the MDC and show it with the patient's personal data (hospital only)."""
    from hl7_gateway.has_client import GatewayClient, GatewayError
    from hl7_gateway.has_visit import patient_from_export, render_visit
    _, table = _has_context()
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
    patient = patient_from_export(export, link.national_id) if export else None
    patient = patient or {"national_id": link.national_id}
    if json_out:
        emit_json({"his_visit_id": his_visit_id, "state": link.state, "patient": patient,
                   "visit": visit})
    else:
        render_visit(console, his_visit_id, patient, visit)
