"""The five ICD-10 analyses in Spark and DuckDB: hand-computed numbers on a tiny dataset, and
exact Spark == DuckDB agreement on a generated one. One local SparkSession for the module."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pyspark = pytest.importorskip("pyspark")

from analytics_jobs.icd10 import analyses as A  # noqa: E402
from analytics_jobs.icd10 import duckdb_sql as D  # noqa: E402
from analytics_jobs.icd10.generator import generate_visits  # noqa: E402
from analytics_jobs.icd10.hierarchy import resolve_codes  # noqa: E402
from pacs_hdfs.visit_schema import PARTITION_COLUMN, VISIT_SCHEMA  # noqa: E402

T = dt.datetime
PERIOD = ("2024-01-01", "2024-03-31")   # 91 days (2024 is a leap year)


def lab(interpretation):
    return {"code": "718-7", "name": "Hemoglobin", "value": 1.0, "unit": "g/dL", "low": 0.0,
            "high": 2.0, "interpretation": interpretation}


def visit(vid, pid, sex, age, admission, discharge, codes, labs):
    return {"visit_id": vid, "patient_id": pid, "sex": sex, "age": age, "city": "Łódź",
            "admission": admission, "discharge": discharge,
            "diagnoses": [{"system": "ICD10", "code": c, "display": None, "primary": i == 0}
                          for i, c in enumerate(codes)],
            "icd10": codes, "labs": None if labs is None else [lab(i) for i in labs], "exams": [],
            "visit_month": f"{admission:%Y-%m}"}


# Period 2024-01-01..2024-03-31. In the period: v1 v2 v4 v5 v7 v8 v9 v10. Not: v3 (admitted before,
# discharged inside), v6 (admitted exactly at the exclusive end 2024-04-01 00:00).
VISITS = [
    visit("v1", "p1", "F", 30, T(2024, 1, 10, 8), T(2024, 1, 12, 8), ["C50.9", "I10"], ["N", "H", "L"]),
    visit("v2", "p1", "F", 31, T(2024, 3, 5, 10), None, ["C50.1"], ["HH", None]),
    visit("v3", "p2", "M", 70, T(2023, 12, 30, 12), T(2024, 1, 3, 12), ["C50.9"], ["H"]),
    visit("v4", "p3", "M", 18, T(2024, 3, 31, 23), T(2024, 4, 2, 11), ["D05.1"], ["N"]),
    visit("v5", "p4", None, None, T(2024, 2, 15, 0), T(2024, 2, 15, 6), ["E11.9"], None),
    visit("v6", "p5", "F", 65, T(2024, 4, 1, 0), T(2024, 4, 2, 0), ["C50.9"], ["H"]),
    visit("v7", "p3", "M", 17, T(2024, 1, 20, 9), T(2024, 1, 21, 9), ["J18.9"], ["A", "N"]),
    visit("v8", "p6", "UN", 45, T(2024, 1, 1, 0), T(2024, 1, 1, 12), ["C00.0", "K35.8"], ["L"]),
    visit("v9", "p6", "UN", 45, T(2024, 2, 10, 10), T(2024, 2, 10, 8), ["K35.8"], []),
    visit("v10", "p4", "F", 50, T(2024, 3, 10, 12), T(2024, 3, 10, 13), ["Z00.0"], []),
]


def write_dataset(root, rows):
    table = pa.Table.from_pylist(rows, schema=VISIT_SCHEMA)
    for month in sorted(set(table.column(PARTITION_COLUMN).to_pylist())):
        part = table.filter(pa.compute.equal(table.column(PARTITION_COLUMN), month))
        folder = root / f"{PARTITION_COLUMN}={month}"
        folder.mkdir(parents=True)
        pq.write_table(part.drop_columns([PARTITION_COLUMN]), folder / "part-00000.parquet")
    return root


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession
    session = (SparkSession.builder.master("local[2]").appName("test-icd10")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.memory", "1g")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.host", "127.0.0.1").getOrCreate())
    yield session
    session.stop()


@pytest.fixture(scope="module")
def hand(tmp_path_factory, spark):
    root = write_dataset(tmp_path_factory.mktemp("hand"), VISITS)
    return A.read_visits(spark, root.as_uri()), D.parquet_source(str(root))


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def both(hand, con, name, *args):
    """Run one analysis in Spark and DuckDB; they must agree; return the Spark result."""
    df, source = hand
    spark_result = getattr(A, name)(df, *args)
    assert getattr(D, f"duckdb_{name}")(con, source, *args) == spark_result
    return spark_result


def test_age_groups_count_each_patient_once_at_first_visit(hand, con):
    r = both(hand, con, "age_groups", *PERIOD)
    # p1 first visit v1 age 30; p3 first visit v7 age 17 (not v4, 18);
    # p4 first visit v5 age unknown (not v10, 50); p6 age 45
    assert [(g["label"], g["patients"]) for g in r["groups"]] == [
        ("0-17", 1), ("18-39", 1), ("40-64", 1), ("65+", 0)]
    assert (r["unknown_age"], r["patients"]) == (1, 4)
    assert "first visit" in r["definitions"]["patient"]


def test_age_groups_custom_bins(hand, con):
    r = both(hand, con, "age_groups", *PERIOD, [18, 50])
    assert [g["patients"] for g in r["groups"]] == [2]      # p1 (30), p6 (45)
    assert r["unknown_age"] == 2                            # p3 (17) outside the bins, p4 unknown


def test_sex_distribution_maps_null_to_unknown(hand, con):
    r = both(hand, con, "sex_distribution", *PERIOD)
    assert r["counts"] == {"F": 1, "M": 1, "UN": 2}        # p1 F, p3 M, p4 null (v5, not F of v10), p6 UN
    assert r["patients"] == 4


def test_cases_over_time_three_subperiods_of_chapter(hand, con):
    r = both(hand, con, "cases_over_time", ["II"], *PERIOD, 3)
    # 91 days / 3 = 30 d 8 h: [Jan 1, Jan 31 08:00), [Jan 31 08:00, Mar 1 16:00), [Mar 1 16:00, Apr 1)
    assert [(s["start"], s["end_exclusive"]) for s in r["subperiods"]] == [
        ("2024-01-01T00:00:00", "2024-01-31T08:00:00"),
        ("2024-01-31T08:00:00", "2024-03-01T16:00:00"),
        ("2024-03-01T16:00:00", "2024-04-01T00:00:00")]
    # v8 (C00.0, exactly at start) + v1 (C50.9); nothing; v2 (C50.1) + v4 (D05.1, Mar 31 23:00)
    assert [(s["cases"], s["patients"]) for s in r["subperiods"]] == [(2, 2), (0, 0), (2, 2)]
    assert r["cases"] == 4


@pytest.mark.parametrize("spec, expected_cases, expected_patients", [
    (["C50"], 2, 1),            # v1, v2 of the same patient p1
    (["C50.9"], 1, 1),          # v1 only (v3 is before the period, v6 after)
    (["C00-C14"], 1, 1),        # block: v8
    (["C00-D48"], 4, 3),        # chapter as range: v1 v2 v4 v8
    (["breast"], 3, 2),         # description: C50 + D05 (carcinoma in situ of breast)
    (["Z99"], 0, 0),            # nothing matches: empty result
])
def test_cases_over_time_hierarchy_matching(hand, con, spec, expected_cases, expected_patients):
    r = both(hand, con, "cases_over_time", spec, *PERIOD, 1)
    assert (r["cases"], r["subperiods"][0]["patients"]) == (expected_cases, expected_patients)


def test_abnormal_labs_in_chapter(hand, con):
    r = both(hand, con, "abnormal_labs", ["II"], *PERIOD)
    # v1 [N,H,L], v2 [HH,null], v4 [N], v8 [L]
    assert (r["visits"], r["lab_results"], r["abnormal"], r["uninterpreted"], r["visits_with_abnormal"]) == \
        (4, 7, 4, 1, 3)
    assert r["abnormal_fraction"] == pytest.approx(4 / 6)
    assert json.loads(json.dumps(r)) == r          # JSON-ready for the job service


def test_abnormal_labs_null_labs_and_code_A(hand, con):
    diabetes = both(hand, con, "abnormal_labs", ["E11"], *PERIOD)      # v5 with labs null
    assert (diabetes["visits"], diabetes["lab_results"], diabetes["abnormal"]) == (1, 0, 0)
    assert diabetes["abnormal_fraction"] is None
    pneumonia = both(hand, con, "abnormal_labs", ["J18"], *PERIOD)     # v7 [A, N]
    assert (pneumonia["abnormal"], pneumonia["lab_results"]) == (1, 2)


def test_visit_duration_excludes_open_visits(hand, con):
    r = both(hand, con, "visit_duration", ["II"], *PERIOD)
    # v1 48 h, v2 open, v4 36 h (crosses the end, counted whole), v8 12 h -> (48+36+12)/3 = 32 h
    assert (r["visits"], r["visits_measured"], r["open_visits"], r["invalid_visits"]) == (4, 3, 1, 0)
    assert r["mean_hours"] == pytest.approx(32.0)
    assert r["mean_days"] == pytest.approx(32.0 / 24)


def test_visit_duration_invalid_and_empty(hand, con):
    appendicitis = both(hand, con, "visit_duration", ["K35"], *PERIOD)  # v8 12 h, v9 ends before it starts
    assert (appendicitis["visits_measured"], appendicitis["invalid_visits"]) == (1, 1)
    assert appendicitis["mean_hours"] == pytest.approx(12.0)
    empty = both(hand, con, "visit_duration", ["Z99"], "2024-01-01", "2024-01-31")
    assert (empty["visits"], empty["mean_hours"], empty["mean_days"]) == (0, None, None)


def test_period_boundaries_inclusive_days(hand, con):
    # one day only: v8 admitted 2024-01-01 00:00 is in; nothing else that day
    r = both(hand, con, "sex_distribution", "2024-01-01", "2024-01-01")
    assert r["counts"] == {"F": 0, "M": 0, "UN": 1}
    # last day 2024-03-31 includes v4 at 23:00
    last = both(hand, con, "cases_over_time", ["D05"], "2024-03-31", "2024-03-31", 2)
    assert [s["cases"] for s in last["subperiods"]] == [0, 1]


def test_spark_plan_prunes_partitions_columns_and_nested_fields(hand):
    df, _ = hand
    period = A.Period.of(*PERIOD)
    plan = A.in_period(df.select("admission", "visit_month"), period)._jdf.queryExecution() \
        .executedPlan().toString()
    assert "PartitionFilters: [isnotnull(visit_month" in plan and "(visit_month#" in plan and "2024-03" in plan
    assert "PushedFilters: [IsNotNull(admission), GreaterThanOrEqual(admission" in plan
    assert "ReadSchema: struct<admission:timestamp_ntz>" in plan
    labs = A._matching(df, resolve_codes(["II"]), period, "labs").select("labs.interpretation")
    labs_plan = labs._jdf.queryExecution().executedPlan().toString()
    assert "labs:array<struct<interpretation:string>>" in labs_plan   # only one leaf of labs is read


@pytest.fixture(scope="module")
def generated(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("gen")
    generate_visits(root, 200_000, n_patients=30_000, first_month="2023-01", months=12, seed=7)
    return A.read_visits(spark, root.as_uri()), D.parquet_source(str(root))


@pytest.mark.parametrize("name, args", [
    ("age_groups", ("2023-02-15", "2023-09-30")),
    ("sex_distribution", ("2023-02-15", "2023-09-30")),
    ("cases_over_time", (["IX", "E10-E14", "C50"], "2023-01-01", "2023-12-31", 12)),
    ("abnormal_labs", (["J00-J99", "diabetes"], "2023-03-01", "2023-06-30")),
    ("visit_duration", (["I10", "C00-D48"], "2023-01-10", "2023-11-20")),
])
def test_spark_equals_duckdb_on_generated_data(generated, con, name, args):
    r = both(generated, con, name, *args)
    total = {"age_groups": "patients", "sex_distribution": "patients", "cases_over_time": "cases",
             "abnormal_labs": "abnormal", "visit_duration": "visits_measured"}[name]
    assert r[total] > 1000       # a real workload, not two empty results agreeing


def test_resolved_selection_is_reused(generated, con):
    codes = resolve_codes(["C50"])
    r = both(generated, con, "cases_over_time", codes, "2023-01-01", "2023-12-31", 4)
    assert r["codes"]["ranges"] == [["C50", "C50"]] and r["cases"] > 0
