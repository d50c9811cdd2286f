"""Put a local hive-partitioned visit dataset onto HDFS (demo data, benchmarks, tests)."""
from __future__ import annotations

from pathlib import Path

from pacs_hdfs.hdfs_store import HdfsStore


def upload_dataset(fs: HdfsStore, local_root: str | Path, hdfs_root: str, prefix: str = "") -> int:
    """Copy every `visit_month=*/ *.parquet` file (names prefixed, so they never replace the
    gateway's files); return the number of files."""
    local_root = Path(local_root)
    n = 0
    for f in sorted(local_root.glob("visit_month=*/*.parquet")):
        fs.write(f"{hdfs_root.rstrip('/')}/{f.parent.name}/{prefix}{f.name}", f.read_bytes(), overwrite=True)
        n += 1
    return n
