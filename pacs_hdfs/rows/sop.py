"""The `sop` table: SOP Instance UID -> instance row key.

Key: sop_uid. One column, `r:key` = the instance row key. The row is the commit marker of an
object: written last by a commit, deleted last by a lifecycle change (see `dicom/commit.py`).
"""
from __future__ import annotations

from pacs_hdfs.rows.cells import Row
from pacs_hdfs.schema import row_key

TABLE = "sop"
KEY = b"r:key"
COLUMNS = [KEY]


def key(sop_uid: str) -> bytes:
    return row_key(sop_uid)


def encode(instance_key: bytes) -> Row:
    return {KEY: instance_key}


def decode(row: Row | None) -> bytes | None:
    """The instance row key the row points at; None for an absent row."""
    return (row or {}).get(KEY)
