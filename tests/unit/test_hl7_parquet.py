"""Parquet files of visits: schema, month grouping, name ordering, latest-wins dedupe."""
import io
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from hl7_gateway.hospital.samples import sample_visit
from hl7_gateway.visit_parquet import (dedupe_latest, file_name, file_stamp, month_files,
                                       tables_by_month)
from pacs_hdfs.visit_schema import VISIT_SCHEMA


def test_one_file_per_month_with_the_visit_schema():
    visits = [sample_visit(visit_id="a"), sample_visit(visit_id="b"),
              sample_visit(visit_id="c", admission=datetime(2024, 4, 2), discharge=None)]
    stamp = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    files = month_files(visits, stamp)
    assert [p.rsplit("/", 1)[0] for p, _ in files] == [
        "visits/parquet/visit_month=2024-03", "visits/parquet/visit_month=2024-04"]
    table = pq.read_table(io.BytesIO(files[0][1]))
    assert table.schema.equals(VISIT_SCHEMA) and table["visit_id"].to_pylist() == ["a", "b"]


def test_file_names_sort_by_time():
    early, late = (datetime(2024, 1, 1, 0, 0, s, tzinfo=timezone.utc) for s in (1, 2))
    names = [file_name(late), file_name(early, suffix="-compacted")]
    assert [file_stamp(n) for n in sorted(names, key=file_stamp)] == [early, late]
    assert file_stamp("_SUCCESS") is None


def test_dedupe_keeps_the_latest_row_per_visit():
    old = tables_by_month([sample_visit(visit_id="a"), sample_visit(visit_id="b")])["2024-03"]
    new = tables_by_month([sample_visit(visit_id="a", city="Gdańsk")])["2024-03"]
    table = dedupe_latest(pa.concat_tables([old, new]))
    assert sorted(zip(table["visit_id"].to_pylist(), table["city"].to_pylist())) == [
        ("a", "Gdańsk"), ("b", "Wrocław")]
