"""The `schema` table: the archive's schema version (see pacs_hdfs/schema_version.py).

One row, key `version`; family `v`: `v:version` (integer as text), `v:code` (the code version
that wrote it), `v:at` (ISO time).
"""
from __future__ import annotations

from dataclasses import dataclass

from pacs_hdfs.rows.cells import Row

TABLE = "schema"
ROW = b"version"
VERSION, CODE, AT = b"v:version", b"v:code", b"v:at"


@dataclass(frozen=True)
class Version:
    version: int
    code: str = ""
    at: str = ""


def encode(v: Version) -> Row:
    return {VERSION: str(v.version).encode(), CODE: v.code.encode(), AT: v.at.encode()}


def version(row: Row) -> int | None:
    """The recorded version, None when the row has none."""
    raw = row.get(VERSION)
    return int(raw) if raw else None
