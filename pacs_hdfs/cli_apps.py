"""The `pacs` command tree: the root app and its groups. Each area's cli module registers its
commands on these (pacs_cli/main.py imports them all: the composition root)."""
from __future__ import annotations

import json
import sys

import typer
from rich.console import Console

app = typer.Typer(help="Medical Data Center: distributed PACS and analytics on Hadoop.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


def group(name: str, help_text: str) -> typer.Typer:
    sub = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


cluster_app = group("cluster", "The embedded HDFS / HBase / Spark cluster.")
has_app = group("has", "Hospital side (HAS): generate, sync, visit, personalise.")
job_app = group("job", "Spark jobs: submit, status, list, result, cancel.")
recon_app = group("recon", "Cone-beam CT: simulate projections.")
certs_app = group("certs", "TLS certificates for the gateway and DICOM TLS.")
user_app = group("user", "Portal users.")
search_app = group("search", "The portal's case-search feed and index.")

console = Console(stderr=True)


def emit_json(obj: object) -> None:
    """The `--json` contract: one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def fail(message: object, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)
