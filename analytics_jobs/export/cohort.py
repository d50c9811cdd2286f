"""The cohort of an export from its case pseudonyms: each case's studies and visits (the HBase
`subject` row), the visits' records, and those records as CSV and Parquet files.

Rows are read through the storage core's codecs (`pacs_hdfs.rows.subject`: `s:<study uid>`
written by DICOM ingest, `v:<visit id>` by the HL7 gateway; `pacs_hdfs.rows.visit`: the
`hl7_gateway.models.Visit` JSON), as the case view does. Quarantined and deleted studies have
no study column, so they are not exported.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hl7_gateway.models import Visit
from hl7_gateway.visit_row import visit_to_row
from pacs_hdfs.rows import subject as subject_rows
from pacs_hdfs.rows import visit as visit_rows
from pacs_hdfs.visit_schema import VISIT_SCHEMA

BATCH = 500        # rows per HBase multi-get
# CSV columns: the Parquet schema's, nested lists as JSON text
CSV_COLUMNS = [f.name for f in VISIT_SCHEMA]


@dataclass
class Links:
    studies: list[str] = field(default_factory=list)
    visits: list[bytes] = field(default_factory=list)


def _batches(items: list, n: int = BATCH) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def subject_links(hbase, pseudonyms: list[str]) -> dict[str, Links]:
    """pseudonym -> its studies and visit ids, for the pseudonyms that have a subject row."""
    out: dict[str, Links] = {}
    for batch in _batches(pseudonyms):
        rows = hbase.get_many(subject_rows.TABLE, [subject_rows.key(p) for p in batch])
        for key, row in rows.items():
            if not row:
                continue
            out[key.decode()] = Links(sorted(s.decode() for s in subject_rows.studies(row)),
                                      sorted(subject_rows.visits(row)))
    return out


def visits(hbase, visit_ids: list[bytes]) -> Iterator[Visit]:
    """The visit records (validated again: the store is not trusted blindly), in batches."""
    for batch in _batches(visit_ids):
        rows = hbase.get_many(visit_rows.TABLE, batch, columns=[visit_rows.JSON])
        for vid in batch:
            cell = visit_rows.visit_json(rows.get(vid, {}))
            if cell:
                yield Visit.model_validate_json(cell)


def _csv_value(value):
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else value


def write_visit_files(records: Iterable[Visit], csv_path: Path, parquet_path: Path,
                      batch: int = 5000) -> int:
    """Write the visits as CSV (one row per visit, nested fields as JSON) and as Parquet with
    the archive's VISIT_SCHEMA, in batches (bounded memory); the number of visits."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    n = 0
    with open(csv_path, "w", newline="", encoding="utf-8") as fc, \
            pq.ParquetWriter(parquet_path, VISIT_SCHEMA, compression="zstd") as pw:
        w = csv.writer(fc)
        w.writerow(CSV_COLUMNS)
        rows: list[dict] = []

        def flush():
            if rows:
                pw.write_table(pa.Table.from_pylist(rows, schema=VISIT_SCHEMA))
                w.writerows([[_csv_value(r[c]) for c in CSV_COLUMNS] for r in rows])
                rows.clear()
        for visit in records:
            rows.append(visit_to_row(visit))
            n += 1
            if len(rows) >= batch:
                flush()
        flush()
    return n


def file_chunks(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(chunk):
            yield block

