"""`pacs certs init|edge|client|revoke`, `pacs gateway [compact]`."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer

from pacs_hdfs.cli_apps import app, certs_app, console, emit_json, fail
from pacs_hdfs.settings import get_settings

gateway_app = typer.Typer(help="HL7 v3 HTTPS gateway (mutual TLS).", invoke_without_command=True)
app.add_typer(gateway_app, name="gateway")


def _certs(directory: Path | None):
    from hl7_gateway.certs import CertPaths
    return CertPaths(directory or get_settings().certs_path)


def _default_url() -> str:
    return f"https://127.0.0.1:{get_settings().gateway_port}"


DIR_OPTION = typer.Option(None, "--dir", help="default $PACS_HOME/certs")
CA_DIR_OPTION = typer.Option(None, "--ca-dir", help="where the CA key is; default: the "
                             "sibling <dir>-ca-offline")
HOSPITAL_HELP = "the hospital id it acts for (letters, digits, . _ -)"


def _hospital_of(path: Path) -> str | None:
    from cryptography import x509

    from pacs_hdfs.dicom.edge_identity import certificate_hospital
    return certificate_hospital(x509.load_pem_x509_certificate(path.read_bytes()))


@certs_app.command("init")
def certs_init(directory: Path = DIR_OPTION,
               ca_dir: Path = typer.Option(None, "--ca-dir", help="where the CA key goes; "
                                           "default: the sibling <dir>-ca-offline"),
               hospital: str = typer.Option(None, "--hospital", help="the HAS client's "
                                            "hospital id; default hospital1"),
               force: bool = typer.Option(False, "--force", help="replace existing files"),
               json_out: bool = typer.Option(False, "--json")) -> None:
    """Create a development CA, a server certificate (127.0.0.1, localhost) and a HAS client
    certificate that acts for one hospital (--hospital).

    The CA key is written apart from the server material (--ca-dir); in production move that
    folder off the gateway host (deploy/cluster/README.md, "The offline CA")."""
    from hl7_gateway.certs import create_dev_pki
    try:
        paths = create_dev_pki(_certs(directory).directory, force=force, ca_directory=ca_dir,
                               hospital=hospital)
    except ValueError as exc:
        fail(str(exc))
    files = {k: str(getattr(paths, k)) for k in ("ca_cert", "server_cert", "server_key",
                                                 "client_cert", "client_key", "ca_key")}
    if json_out:
        emit_json({**files, "hospital": _hospital_of(paths.client_cert)})
    else:
        console.print(f"certificates in {paths.directory} (HAS client of hospital "
                      f"{_hospital_of(paths.client_cert)}); the CA key is in "
                      f"{paths.ca_key.parent}: keep it offline in production")


@certs_app.command("edge")
def certs_edge(name: str = typer.Argument(..., help="the edge's name (letters, digits, . _ -)"),
               directory: Path = DIR_OPTION, ca_dir: Path = CA_DIR_OPTION,
               hospital: str = typer.Option(None, "--hospital", help=HOSPITAL_HELP + "; "
                                            "default: the issued one, else hospital1"),
               force: bool = typer.Option(False, "--force", help="replace an existing one"),
               json_out: bool = typer.Option(False, "--json")) -> None:
    """Issue a hospital edge's client certificate (edges/NAME.pem, .key), signed by the dev CA.

    Only edge certificates may store images at the MDC (STOW-RS); the MDC records the edge
    name on every object it stores. An edge name serves one hospital for good."""
    from hl7_gateway.certs import issue_edge_cert
    try:
        edge = issue_edge_cert(_certs(directory).directory, name, force=force,
                               ca_directory=ca_dir, hospital=hospital)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if json_out:
        emit_json({"name": edge.name, "cert": str(edge.cert), "key": str(edge.key),
                   "ca_cert": str(edge.ca_cert)})
    else:
        console.print(f"edge {edge.name} of hospital {_hospital_of(edge.cert)}: {edge.cert} "
                      f"(key {edge.key})")


@certs_app.command("client")
def certs_client(name: str = typer.Argument(..., help="the client's name, its certificate CN"),
                 hospital: str = typer.Option(..., "--hospital", help=HOSPITAL_HELP),
                 directory: Path = DIR_OPTION, ca_dir: Path = CA_DIR_OPTION,
                 force: bool = typer.Option(False, "--force", help="replace an existing one"),
                 json_out: bool = typer.Option(False, "--json")) -> None:
    """Issue a hospital's HAS client certificate into clients/NAME/ (client.pem, client.key,
    ca.pem): carry that folder to the hospital and use it as `pacs has sync --certs`.

    The gateway lets it send and read the visits of that hospital only."""
    from hl7_gateway.certs import issue_client_cert
    try:
        paths = issue_client_cert(_certs(directory).directory, name, hospital, force=force,
                                  ca_directory=ca_dir)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if json_out:
        emit_json({"name": name, "hospital": hospital, "dir": str(paths.directory),
                   "cert": str(paths.client_cert), "key": str(paths.client_key),
                   "ca_cert": str(paths.ca_cert)})
    else:
        console.print(f"HAS client {name} of hospital {hospital}: {paths.directory}")


@certs_app.command("revoke")
def certs_revoke(names: list[str] = typer.Argument(None, help="`client`, an edge or client "
                                                   "name, or a PEM file"),
                 serial: list[str] = typer.Option(None, "--serial", help="a serial (hex)"),
                 directory: Path = DIR_OPTION, ca_dir: Path = CA_DIR_OPTION,
                 json_out: bool = typer.Option(False, "--json")) -> None:
    """Revoke certificates: add their serials to revoked.crl (signed by the CA) in the certs
    folder. A running gateway refuses them from its next request on (403); with the CA
    offline, copy revoked.crl to the gateway's certs folder (or set gateway_crl)."""
    from cryptography import x509

    from hl7_gateway.certs import issued_certificate, revoke
    base = _certs(directory).directory
    try:
        serials = [x509.load_pem_x509_certificate(issued_certificate(base, n).read_bytes())
                   .serial_number for n in names or []]
        serials += [int(s.replace(":", "").removeprefix("0x"), 16) for s in serial or []]
        if not serials:
            raise ValueError("name a certificate or give --serial")
        listed = revoke(base, serials, ca_directory=ca_dir)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if json_out:
        emit_json({"crl": str(_certs(directory).crl), "revoked": [
            {"serial": format(r.serial, "x"), "since": r.revoked.isoformat()} for r in listed]})
    else:
        console.print(f"revoked {', '.join(format(s, 'x') for s in serials)}; "
                      f"{len(listed)} serial(s) in {_certs(directory).crl}")


@gateway_app.callback()
def gateway(ctx: typer.Context,
            port: int = typer.Option(None, help="default: settings gateway_port (8443)"),
            host: str = typer.Option(None, help="default: settings gateway_bind (127.0.0.1)"),
            certs: Path = typer.Option(None, help="default: settings certs_dir"),
            max_bytes: int = typer.Option(None, help="default: settings gateway_max_bytes"),
            log_file: Path = typer.Option(None, help="default: settings gateway_log")) -> None:
    """Run the gateway in the foreground (HTTPS only, client certificates required). Every
    option is a setting (`pacs config show`); a flag overrides it for this run."""
    if ctx.invoked_subcommand is not None:
        return
    from hl7_gateway.parser import ParserLimits
    from hl7_gateway.server import serve
    paths = _certs(certs)
    if not paths.complete():
        fail(f"no certificates in {paths.directory}: run `pacs certs init` first")
    try:
        s = get_settings()
        serve(s, paths, host or s.gateway_bind, port,
              ParserLimits(max_bytes=max_bytes or s.gateway_max_bytes), log_file or s.gateway_log)
    except ValueError as exc:  # gateway_hospitals / gateway_revoked malformed
        fail(str(exc))


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
