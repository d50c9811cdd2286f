"""`pacs init`: create the HDFS layout and the HBase tables, idempotently."""
from __future__ import annotations

from pacs_hdfs import clients
from pacs_hdfs.schema import HDFS_DIRS
from pacs_hdfs.settings import Settings


def init_storage(settings: Settings) -> dict:
    fs = clients.hdfs(settings)
    for d in HDFS_DIRS:
        fs.mkdirs(d)
    tables = clients.hbase(settings).ensure_tables()
    return {"hdfs_root": settings.hdfs_root,
            "hdfs_dirs": [fs.abs(d) for d in HDFS_DIRS],
            "hbase_tables": tables}


def drop_storage(settings: Settings) -> None:
    """The inverse of `init_storage`: delete the HDFS root and the HBase tables of the prefix.

    For scratch namespaces (tests, benchmarks) only: it deletes everything they stored.
    """
    from pacs_hdfs.schema import TABLES
    clients.hdfs(settings).delete(settings.hdfs_root, recursive=True)
    hbase = clients.hbase(settings)
    existing = set(hbase.tables())
    for table in TABLES:
        if table.name in existing:
            hbase.drop_table(table.name)
