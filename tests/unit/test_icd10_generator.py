"""The synthetic visit generator: exact schema, hive layout, determinism, realistic shares."""
import datetime as dt

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pyarrow.compute as pc

from analytics_jobs.icd10.generator import FILE_SCHEMA, code_catalogue, generate_visits
from pacs_hdfs.visit_schema import VISIT_SCHEMA


def read(root):
    return ds.dataset(root, partitioning="hive", schema=VISIT_SCHEMA).to_table()


def test_layout_schema_and_counts(tmp_path):
    summary = generate_visits(tmp_path, 12_000, n_patients=2_000, first_month="2023-11", months=3, seed=3)
    assert summary["months"] == {"2023-11": 4000, "2023-12": 4000, "2024-01": 4000}
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [f"visit_month={m}/part-00000.parquet" for m in ("2023-11", "2023-12", "2024-01")]
    assert pq.read_schema(tmp_path / files[0]).equals(FILE_SCHEMA)
    table = read(tmp_path)
    assert table.num_rows == 12_000
    months = pc.strftime(table["admission"], "%Y-%m")
    assert pc.all(pc.equal(months, table["visit_month"])).as_py()
    assert pc.count_distinct(table["visit_id"]).as_py() == 12_000
    assert pc.count_distinct(table["patient_id"]).as_py() <= 2_000


def test_deterministic_by_seed(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_visits(tmp_path / name, 3_000, months=2, seed=seed)
    a, b, c = (read(tmp_path / n) for n in "abc")
    assert a.equals(b) and not a.equals(c)


def test_realistic_shares(tmp_path):
    generate_visits(tmp_path, 40_000, months=2, seed=1)
    t = read(tmp_path)
    open_share = t["discharge"].null_count / t.num_rows
    assert 0.02 < open_share < 0.07          # ~2.7 days in hospital per visit over 59 days
    still_in = pc.filter(t["admission"], pc.is_null(t["discharge"]))
    late = pc.sum(pc.greater_equal(still_in, pa.scalar(dt.datetime(2023, 2, 14), pa.timestamp("us")))).as_py()
    assert late / len(still_in) > 0.8        # open visits: mostly in the last weeks before the export (Mar 1)
    stays = pc.cast(pc.subtract(t["discharge"], t["admission"]), pa.int64())
    assert pc.max(t["discharge"]).as_py() < dt.datetime(2023, 3, 1)
    assert pc.max(stays).as_py() > 20 * 86_400_000_000   # a long tail: what the overlap rule must find
    interp = pc.struct_field(pc.list_flatten(t["labs"]), "interpretation")
    abnormal = pc.sum(pc.and_(pc.is_valid(interp), pc.not_equal(interp, "N"))).as_py() / len(interp)
    assert 0.12 < abnormal < 0.30
    codes = pc.list_flatten(t["icd10"])
    top = pc.value_counts(codes).to_pylist()
    top.sort(key=lambda x: -x["counts"])
    assert top[0]["values"] == code_catalogue()[0][0].as_py()   # Zipf rank 1 is the most frequent
    assert pc.all(pc.match_substring_regex(codes, r"^[A-Z]\d\d(\.\d{1,2})?$")).as_py()
    ages = t["age"]
    assert pc.min(ages).as_py() >= 0 and pc.max(ages).as_py() == 90   # top-coded: "90 or more"
    assert "birth_year" not in t.column_names
    assert set(pc.unique(t["sex"]).to_pylist()) == {"F", "M", "UN"}
