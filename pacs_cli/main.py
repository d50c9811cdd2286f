"""The composition root of the `pacs` command: the root app of `pacs_hdfs.cli_apps` with the
commands of every area, registered by importing their cli modules (each decorates the shared
groups). Nothing else imports all of them."""
from __future__ import annotations

import importlib

from pacs_hdfs.cli_apps import app

#: modules that add commands, in help order
COMMAND_MODULES = (
    "pacs_cli.cluster",
    "recon_mapreduce.cli",
    "analytics_jobs.cli",
    "analytics_jobs.scc_cli",
    "hl7_gateway.cli",
    "hl7_gateway.hospital.cli",
    "pacs_hdfs.dicom_cli",
    "pacs_cli.fsck_cli",
    "pacs_hdfs.study_cli",
    "pacs_hdfs.backup_cli",
    "pacs_hdfs.config_cli",
    "portal.cli",
    "pacs_cli.demo",
    "deid.edge.cli",
    "pacs_hdfs.doctor_cli",
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:  # pragma: no cover
    app(prog_name="pacs")
