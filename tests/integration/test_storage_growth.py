"""Moved staging objects leave HDFS once a compaction sees their delete markers (real HBase +
HDFS; what the settings in deploy/configs.py rely on).

A staged object that a memstore flush wrote to a `staging` store file stays there after the
mover deletes its row, until a compaction merges that file with the one holding the row's delete
marker. On its own table prefix and HDFS root, the test:
1. stages ~40 MB, so HBase flushes it into a store file (the mover is "behind");
2. lets a real `Flusher` move it into containers (rows deleted, store file unchanged);
3. puts and deletes filler rows one at a time until two more flushes wrote the markers (what
   continuing ingest or the periodic memstore flush does; Thrift 1 has no flush call);
4. asks for a compaction (the periodic major compaction does the same for big stores): the
   staging store files must end up nearly empty, every object intact in its container.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid

import pytest

pytestmark = pytest.mark.cluster

MB = 1 << 20
OBJECT = 1 * MB


@pytest.fixture
def own(cluster):
    """Settings, stores and a staging-store-file probe for a private prefix and HDFS root;
    its tables and root are removed afterwards."""
    from types import SimpleNamespace

    from pacs_hdfs import clients
    from pacs_hdfs.schema import TABLES, table_name
    from pacs_hdfs.settings import Settings
    from pacs_hdfs.storage import init_storage
    tag = uuid.uuid4().hex[:10]
    s = Settings(hdfs_root=f"/test-growth-{tag}", hbase_table_prefix=f"testgrowth{tag}")
    init_storage(s)
    hbase, hdfs = clients.hbase(s), clients.hdfs(s)
    table_dir = f"/hbase/data/default/{table_name(s.hbase_table_prefix, 'staging')}"

    def store_files() -> dict[str, int]:
        """name -> length of the staging family's store files (one region)."""
        regions = [r for r in hdfs.list(table_dir) if not r.startswith(".")]
        out = {}
        for r in regions:
            if hdfs.exists(f"{table_dir}/{r}/d"):
                for name, st in hdfs.client.list(f"{table_dir}/{r}/d", status=True):
                    out[name] = st["length"]
        return out
    try:
        yield SimpleNamespace(settings=s, hbase=hbase, hdfs=hdfs, store_files=store_files)
    finally:
        hdfs.delete(s.hdfs_root, recursive=True)
        existing = set(hbase.tables())
        for t in TABLES:
            if t.name in existing:
                hbase.drop_table(t.name)


def wait_for(what: str, check, timeout: float = 40.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def staged_row(i: int, data: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    from pacs_hdfs.schema import row_key
    return row_key("2.25.1", "2.25.2", f"2.25.{i}"), {b"d:data": data,
                                                       b"d:dir": b"dicom/containers/s/x"}


def test_moved_staging_objects_are_compacted_away(own):
    from pacs_hdfs.containers import ContainerWriter, Location, read_object
    from pacs_hdfs.dicom.staging import Flusher

    hbase = own.hbase
    # 1. a backlog of 40 objects (40 MB > the 32 MB memstore flush size)
    backlog = {}
    for i in range(40):
        key, row = staged_row(i, os.urandom(OBJECT))
        hbase.put("staging", key, row)
        backlog[key] = hashlib.sha256(row[b"d:data"]).hexdigest()
    wait_for("the backlog's memstore flush",
             lambda: sum(own.store_files().values()) >= 20 * MB)

    # 2. the mover drains it: rows gone, bytes still in the store file
    flusher = Flusher(hbase, ContainerWriter(own.hdfs, writer="growth-test"), workers=2)
    assert flusher.recover() == 40
    wait_for("the drain", lambda: not hbase.scan("staging", columns=[b"d:dir"], limit=1))
    moved_but_kept = sum(own.store_files().values())
    assert moved_but_kept >= 20 * MB

    # 3. filler, written and deleted one at a time, until two more flushes (markers on HDFS)
    seen = set(own.store_files())  # names of every store file seen (compactions remove some)
    for i in range(1000, 1120):
        key, row = staged_row(i, os.urandom(OBJECT))
        hbase.put("staging", key, row)
        hbase.delete("staging", key)
        seen |= set(own.store_files())
        if len(seen) >= 3:
            break
    assert len(seen) >= 3, "the filler did not make the memstore flush twice"

    # 4. compaction: the moved objects' bytes go (HBase may already have started one itself);
    # the merged files leave the store directory at the next discharger run (30 s with
    # deploy/configs.py, 2 min with HBase's default)
    hbase.compact("staging")
    after = wait_for("the compaction", lambda: [n for n in [sum(own.store_files().values())]
                                                if n < 4 * MB], timeout=150)[0]
    assert after < moved_but_kept / 5, (moved_but_kept, after)

    # data safety: every object is in its container, byte for byte, and nothing is staged
    assert not hbase.scan("staging", columns=[b"d:dir"], limit=1)
    rows = hbase.get_many("instance", list(backlog))
    assert len(rows) == len(backlog)
    for k, digest in backlog.items():
        data = read_object(own.hdfs, Location.from_columns(rows[k]))
        assert hashlib.sha256(data).hexdigest() == digest
