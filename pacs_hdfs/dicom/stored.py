"""Reading one stored DICOM object back: the instance row says where, the sha256 says it is right.

Every reader (C-GET/C-MOVE, WADO-RS, the viewer, personalise, jobs) goes through `read_bytes`,
so a wrong byte range can never be served as an object: a checksum mismatch or a short read
raises `StorageError` naming the object, and the caller reports that one object as failed.

A compaction may move an object to a new container between the moment a reader fetched the
instance row and the moment it reads the bytes; the old file is then gone, so a failed read is
retried once with a freshly read row.
"""
from __future__ import annotations

from pacs_hdfs.containers import read_object
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance

def read_bytes(hbase, hdfs, key: bytes, row: dict[bytes, bytes]) -> bytes:
    """The object's bytes, verified against the index's sha256; raises StorageError."""
    try:
        return _read(hbase, hdfs, key, row)
    except StorageError:
        fresh = hbase.get("instance", key)
        if not fresh or _where(fresh) == _where(row):
            raise
        return _read(hbase, hdfs, key, fresh)


def _where(row: dict[bytes, bytes]) -> tuple:
    return row.get(instance.PATH), row.get(instance.OFFSET)


def _read(hbase, hdfs, key: bytes, row: dict[bytes, bytes]) -> bytes:
    loc = instance.location(row)
    if loc is None:
        raise StorageError(f"instance {key!r} has no stored location")
    return read_object(hdfs, loc)
