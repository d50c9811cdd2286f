"""`pacs config show [--json]`: the effective settings, by section, with secrets masked.

Every option lives in `Settings` (pacs_hdfs/settings.py) and can be set in `pacs.toml` (flat,
or in a table per section: `[edge] port = 11112`) or as `PACS_<NAME>` (`PACS_EDGE_PORT`).
This shows what a process started here would use, and where each value came from.
"""
from __future__ import annotations

import os

import typer

from pacs_hdfs.cli_apps import console, emit_json, group
from pacs_hdfs.settings import Settings

config_app = group("config", "The effective configuration (pacs.toml, PACS_* variables).")

#: section -> field-name prefixes, first match wins (the rest is "core")
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("edge", ("edge_",)),
    ("mdc_dimse", ("mdc_dimse_", "mdc_")),
    ("gateway", ("gateway_", "hl7_gateway_")),
    ("portal", ("portal_",)),
    ("deid", ("deid_", "hl7_phi_")),
    ("jobs", ("spark_", "yarn", "jobs_")),
    ("cluster", ("datanodes", "namenode_", "webhdfs_", "hdfs_", "replication", "zookeeper_",
                 "thrift_", "hbase_", "heap_mb", "cluster_", "embedded", "hadoop_", "jars_dir")),
    ("observability", ("log_", "metrics_")),
    ("tls", ("certs_dir",)),
)
#: names that hold a secret value (never a path to one): shown as "****" when set
SECRET_WORDS = ("password", "secret", "token", "passphrase")


def section_of(name: str) -> str:
    for section, prefixes in SECTIONS:
        if any(name.startswith(p) for p in prefixes):
            return section
    return "core"


def is_secret(name: str) -> bool:
    return any(w in name for w in SECRET_WORDS)


def effective(settings: Settings) -> dict[str, dict[str, dict]]:
    """{section: {name: {"value", "source", "description"}}} of every setting."""
    env_names = {k.upper() for k in os.environ}
    explicit = settings.model_fields_set
    out: dict[str, dict[str, dict]] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if is_secret(name) and value:
            value = "****"
        if f"PACS_{name.upper()}" in env_names:
            source = "environment"
        elif name in explicit:
            source = "pacs.toml"
        else:
            source = "default"
        out.setdefault(section_of(name), {})[name] = {
            "value": value if isinstance(value, (int, float, bool, list, dict)) or value is None
            else str(value), "source": source, "description": field.description or ""}
    return dict(sorted(out.items()))


@config_app.command("show")
def config_show(json_out: bool = typer.Option(False, "--json"),
                changed: bool = typer.Option(False, "--changed", help="only non-defaults")
                ) -> None:
    """Print every setting by section: value, where it came from, what it does."""
    from rich.table import Table

    from pacs_hdfs.settings import get_settings
    doc = effective(get_settings())
    if changed:
        doc = {sec: {k: v for k, v in fields.items() if v["source"] != "default"}
               for sec, fields in doc.items()}
        doc = {sec: fields for sec, fields in doc.items() if fields}
    if json_out:
        emit_json({"config_file": os.environ.get("PACS_CONFIG", "pacs.toml"), "sections": doc})
        return
    for section, fields in doc.items():
        table = Table(title=f"[{section}]", title_justify="left", show_edge=False)
        for col in ("setting", "value", "source", "description"):
            table.add_column(col, overflow="fold")
        for name, v in fields.items():
            table.add_row(name, str(v["value"]), v["source"], v["description"])
        console.print(table)
