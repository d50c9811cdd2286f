"""CLI for the MDC's DICOM service: `pacs scp`."""
from __future__ import annotations

import typer

from pacs_hdfs.cli_apps import app
from pacs_hdfs.settings import get_settings


@app.command("scp")
def scp(ae_title: str = typer.Option(None, "--ae-title", help="default: mdc_dimse_ae_title"),
        port: int = typer.Option(None, "--port", help="default: mdc_dimse_port")) -> None:
    """Run the MDC's DICOM service (Verification, Query/Retrieve, C-STORE of de-identified
    objects) in the foreground."""
    from pacs_hdfs.dicom.runner import run
    run(get_settings(), ae_title, port)
