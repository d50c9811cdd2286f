"""Visits as Parquet on HDFS for Spark: one file per request and month, compaction, dedupe.

Layout: ``visits/parquet/visit_month=YYYY-MM/part-<UTC yyyymmddHHMMSSffffff>-<rand>.parquet``
with ``pacs_hdfs.visit_schema.VISIT_SCHEMA`` (``visit_month`` is also a column, as the ICD-10
generator writes it). The timestamp in the file name orders versions: a re-sent visit lands in a
newer file, and the **latest file wins**.

Readers must dedupe by ``visit_id`` keeping the row of the newest file (``dedupe_latest``,
``read_visits``); compaction does it physically: it merges a partition's files older than a grace
period into one file named after the newest input (so files written meanwhile stay newer), writes
it durably, then deletes the inputs. A crash in between only leaves duplicates, which readers and
the next compaction resolve.
"""
from __future__ import annotations

import io
import posixpath
import secrets
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hl7_gateway.models import Visit
from hl7_gateway.visit_row import visit_to_row
from pacs_hdfs.visit_schema import PARTITION_COLUMN, VISIT_SCHEMA

ROOT = "visits/parquet"
STAMP_FORMAT = "%Y%m%d%H%M%S%f"
_ORDER = "__order"


def partition_dir(month: str) -> str:
    return f"{ROOT}/{PARTITION_COLUMN}={month}"


def file_name(stamp: datetime, suffix: str = "") -> str:
    return f"part-{stamp.strftime(STAMP_FORMAT)}-{secrets.token_hex(4)}{suffix}.parquet"


def file_stamp(name: str) -> datetime | None:
    """The UTC time encoded in a part file's name (None for foreign files)."""
    parts = posixpath.basename(name).split("-")
    try:
        return datetime.strptime(parts[1], STAMP_FORMAT).replace(tzinfo=timezone.utc)
    except (IndexError, ValueError):
        return None


def tables_by_month(visits: list[Visit]) -> dict[str, pa.Table]:
    """Group visits by admission month, one VISIT_SCHEMA table each (input order kept)."""
    rows: dict[str, list[dict]] = {}
    for visit in visits:
        row = visit_to_row(visit)
        rows.setdefault(row[PARTITION_COLUMN], []).append(row)
    return {m: pa.Table.from_pylist(r, schema=VISIT_SCHEMA) for m, r in rows.items()}


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def dedupe_latest(table: pa.Table) -> pa.Table:
    """Keep the last row per visit_id (rows must be ordered oldest file first)."""
    if table.num_rows == 0:
        return table
    indexed = table.append_column(_ORDER, pa.array(range(table.num_rows), pa.int64()))
    last = indexed.group_by("visit_id").aggregate([(_ORDER, "max")])[f"{_ORDER}_max"]
    return table.take(np.sort(last.to_numpy()))


def month_files(visits: list[Visit], stamp: datetime) -> list[tuple[str, bytes]]:
    """(path, Parquet bytes) of one new file per month these visits touch."""
    return [(f"{partition_dir(month)}/{file_name(stamp)}", to_parquet_bytes(table))
            for month, table in sorted(tables_by_month(visits).items())]


def write_visits(hdfs, visits: list[Visit], stamp: datetime) -> list[str]:
    """One durable Parquet file per month for these visits; returns their paths."""
    files = month_files(visits, stamp)
    for path, data in files:
        hdfs.write(path, data)
    return [path for path, _ in files]


def _part_files(hdfs, directory: str) -> list[str]:
    names = [n for n in hdfs.list(directory) if n.endswith(".parquet") and file_stamp(n)]
    return sorted(names, key=lambda n: (file_stamp(n), n))


def read_partition(hdfs, directory: str) -> pa.Table:
    """All rows of one partition, oldest file first, deduplicated (latest wins)."""
    tables = [pq.read_table(io.BytesIO(hdfs.read(f"{directory}/{n}")), schema=VISIT_SCHEMA)
              for n in _part_files(hdfs, directory)]
    return dedupe_latest(pa.concat_tables(tables)) if tables else VISIT_SCHEMA.empty_table()


def months(hdfs) -> list[str]:
    prefix = f"{PARTITION_COLUMN}="
    return sorted(d[len(prefix):] for d in hdfs.list(ROOT) if d.startswith(prefix))


def read_visits(hdfs, month: str | None = None) -> pa.Table:
    """The deduplicated visits of one month, or of all months."""
    wanted = [month] if month else months(hdfs)
    tables = [read_partition(hdfs, partition_dir(m)) for m in wanted if hdfs.exists(partition_dir(m))]
    return pa.concat_tables(tables) if tables else VISIT_SCHEMA.empty_table()


def compact_partition(hdfs, month: str, grace: timedelta = timedelta(seconds=60),
                      now: datetime | None = None) -> dict:
    """Merge the partition's files older than ``grace`` into one deduplicated file."""
    directory = partition_dir(month)
    cutoff = (now or datetime.now(timezone.utc)) - grace
    inputs = [n for n in _part_files(hdfs, directory) if file_stamp(n) <= cutoff]
    if len(inputs) < 2:
        return {"month": month, "inputs": len(inputs), "rows": None, "output": None}
    table = dedupe_latest(pa.concat_tables(
        [pq.read_table(io.BytesIO(hdfs.read(f"{directory}/{n}")), schema=VISIT_SCHEMA)
         for n in inputs]))
    output = f"{directory}/{file_name(file_stamp(inputs[-1]), suffix='-compacted')}"
    hdfs.write(output, to_parquet_bytes(table))
    for name in inputs:
        hdfs.delete(f"{directory}/{name}")
    return {"month": month, "inputs": len(inputs), "rows": table.num_rows, "output": output}


def compact(hdfs, month: str | None = None, grace: timedelta = timedelta(seconds=60)) -> list[dict]:
    """Compact one month or every month."""
    return [compact_partition(hdfs, m, grace) for m in ([month] if month else months(hdfs))]
