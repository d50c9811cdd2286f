"""`pacs certs init|edge`, `pacs gateway [compact]`, `pacs has generate|sync|visit`."""
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
    return CertPaths(directory or get_settings().path("certs"))


def _default_url() -> str:
    return f"https://127.0.0.1:{get_settings().gateway_port}"


@certs_app.command("init")
def certs_init(directory: Path = typer.Option(None, "--dir", help="default $PACS_HOME/certs"),
               ca_dir: Path = typer.Option(None, "--ca-dir", help="where the CA key goes; "
                                           "default: the sibling <dir>-ca-offline"),
               force: bool = typer.Option(False, "--force", help="replace existing files"),
               json_out: bool = typer.Option(False, "--json")) -> None:
    """Create a development CA, a server certificate (127.0.0.1, localhost) and a client one.

    The CA key is written apart from the server material (--ca-dir); in production move that
    folder off the gateway host (deploy/cluster/README.md, "The offline CA")."""
    from hl7_gateway.certs import create_dev_pki
    paths = create_dev_pki(_certs(directory).directory, force=force, ca_directory=ca_dir)
    files = {k: str(getattr(paths, k)) for k in ("ca_cert", "server_cert", "server_key",
                                                 "client_cert", "client_key", "ca_key")}
    if json_out:
        emit_json(files)
    else:
        console.print(f"certificates in {paths.directory}; the CA key is in "
                      f"{paths.ca_key.parent}: keep it offline in production")


@certs_app.command("edge")
def certs_edge(name: str = typer.Argument(..., help="the edge's name (letters, digits, . _ -)"),
               directory: Path = typer.Option(None, "--dir", help="default $PACS_HOME/certs"),
               ca_dir: Path = typer.Option(None, "--ca-dir", help="where the CA key is; "
                                           "default: the sibling <dir>-ca-offline"),
               force: bool = typer.Option(False, "--force", help="replace an existing one"),
               json_out: bool = typer.Option(False, "--json")) -> None:
    """Issue a hospital edge's client certificate (edges/NAME.pem, .key), signed by the dev CA.

    Only edge certificates may store images at the MDC (STOW-RS); the MDC records the edge
    name on every object it stores."""
    from hl7_gateway.certs import issue_edge_cert
    try:
        edge = issue_edge_cert(_certs(directory).directory, name, force=force,
                               ca_directory=ca_dir)
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
