"""`pacs init`: create the HDFS layout and the HBase tables, idempotently, after checking the
archive's schema version (see schema_version.py: an older archive is refused unless upgraded)."""
from __future__ import annotations

from pacs_hdfs import clients, schema_version
from pacs_hdfs.schema import HDFS_DIRS
from pacs_hdfs.settings import Settings


def init_storage(settings: Settings, upgrade: bool = False) -> dict:
    """Create what is missing; with `upgrade`, migrate an older archive to this code's schema.

    Raises `schema_version.SchemaError` before changing anything when the archive's schema is
    older (without `upgrade`) or newer than this code's."""
    found = schema_version.read(settings)
    plan = schema_version.plan(found.version, upgrade)
    fs = clients.hdfs(settings)
    for d in HDFS_DIRS:
        fs.mkdirs(d)
    tables = clients.hbase(settings).ensure_tables()
    for step in plan.steps:
        step.run(settings)
        schema_version.write(settings, step.to)
    if not plan.steps and (found.hbase, found.hdfs) != (plan.target, plan.target):
        schema_version.write(settings, plan.target)   # new archive, or one record missing
    return {"hdfs_root": settings.hdfs_root,
            "hdfs_dirs": [fs.abs(d) for d in HDFS_DIRS],
            "hbase_tables": tables,
            "schema": {"action": plan.action, "from": plan.stored, "version": plan.target,
                       "migrations": [f"{m.to}: {m.what}" for m in plan.steps]}}


def drop_storage(settings: Settings) -> None:
    """The inverse of `init_storage`: delete the HDFS root and the HBase tables of the prefix,
    and the backups (HDFS and HBase snapshots) taken of them.

    For scratch namespaces (tests, benchmarks) only: it deletes everything they stored.
    """
    from pacs_hdfs.backup import drop_backups
    from pacs_hdfs.schema import TABLES
    drop_backups(settings)
    clients.hdfs(settings).delete(settings.hdfs_root, recursive=True)
    hbase = clients.hbase(settings)
    existing = set(hbase.tables())
    for table in TABLES:
        if table.name in existing:
            hbase.drop_table(table.name)
