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
from analytics_jobs.icd10 import stay_index  # noqa: E402
from analytics_jobs.icd10.hierarchy import resolve_codes  # noqa: E402
from analytics_jobs.icd10.period import Period  # noqa: E402
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


def both(hand, con, name, *args, rule="admitted", months=None):
    """Run one analysis in Spark and DuckDB under ``rule``; they must agree; return the Spark result.
    The hand-computed tests below were written for the ``admitted`` rule; overlap ones say so."""
    df, source = hand
    spark_result = getattr(A, name)(df, *args, rule=rule, months=months)
    assert getattr(D, f"duckdb_{name}")(con, source, *args, rule=rule) == spark_result
    assert spark_result["period"]["rule"] == rule
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
    plan = A.in_period(df.select("admission", "visit_month"), period, "admitted")._jdf.queryExecution() \
        .executedPlan().toString()
    assert "PartitionFilters: [isnotnull(visit_month" in plan and "(visit_month#" in plan and "2024-03" in plan
    assert "PushedFilters: [IsNotNull(admission), GreaterThanOrEqual(admission" in plan
    assert "ReadSchema: struct<admission:timestamp_ntz>" in plan
    labs = A._matching(df, resolve_codes(["II"]), period, "admitted", None, "labs").select("labs.interpretation")
    labs_plan = labs._jdf.queryExecution().executedPlan().toString()
    assert "labs:array<struct<interpretation:string>>" in labs_plan   # only one leaf of labs is read
    overlap = A.in_period(df.select("admission", "discharge", "visit_month"), period, "overlap",
                          ["2023-12", "2024-01"])._jdf.queryExecution().executedPlan().toString()
    assert "visit_month#" in overlap and "IN (2023-12,2024-01)" in overlap.replace("'", "")
    assert "PushedFilters: [IsNotNull(admission), LessThan(admission" in overlap
    assert "Or(Or(GreaterThanOrEqual(admission" in overlap       # (admitted inside or discharged after or open)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("gen")
    generate_visits(root, 200_000, n_patients=30_000, first_month="2023-01", months=12, seed=7)
    return A.read_visits(spark, root.as_uri()), D.parquet_source(str(root))


@pytest.fixture(scope="module")
def generated_root(generated):
    return generated[1].split("'")[1].rsplit("/*/*.parquet", 1)[0]


@pytest.mark.parametrize("rule", ["overlap", "admitted"])
@pytest.mark.parametrize("name, args", [
    ("age_groups", ("2023-02-15", "2023-09-30")),
    ("sex_distribution", ("2023-02-15", "2023-09-30")),
    ("cases_over_time", (["IX", "E10-E14", "C50"], "2023-01-01", "2023-12-31", 12)),
    ("cases_over_time", (["IX", "E10-E14", "C50"], "2023-06-01", "2023-06-30", 30)),
    ("abnormal_labs", (["J00-J99", "diabetes"], "2023-03-01", "2023-06-30")),
    ("visit_duration", (["I10", "C00-D48"], "2023-01-10", "2023-11-20")),
])
def test_spark_equals_duckdb_on_generated_data(generated, generated_root, con, name, args, rule):
    """Spark reads only the months the stay index keeps; DuckDB scans every month (no index)."""
    period = Period.of(args[-3] if name == "cases_over_time" else args[-2],
                       args[-2] if name == "cases_over_time" else args[-1])
    index = stay_index.local_index(generated_root)
    months = stay_index.months_to_read(sorted(index), index, period, rule)
    r = both(generated, con, name, *args, rule=rule, months=months)
    total = {"age_groups": "patients", "sex_distribution": "patients", "cases_over_time": "cases",
             "abnormal_labs": "abnormal", "visit_duration": "visits_measured"}[name]
    assert r[total] > 1000       # a real workload, not two empty results agreeing


def test_resolved_selection_is_reused(generated, con):
    codes = resolve_codes(["C50"])
    r = both(generated, con, "cases_over_time", codes, "2023-01-01", "2023-12-31", 4)
    assert r["codes"]["ranges"] == [["C50", "C50"]] and r["cases"] > 0


# --- the overlap rule (issue 19): patients *treated* in the period, the default -----------------

def test_overlap_is_the_default_and_adds_the_patient_admitted_before(hand, con):
    df, source = hand
    assert A.sex_distribution(df, *PERIOD)["period"]["rule"] == "overlap"
    assert D.duckdb_sex_distribution(con, source, *PERIOD)["period"]["rule"] == "overlap"
    # v3 (p2, M, 70, C50.9, labs [H], 2023-12-30 12:00 .. 2024-01-03 12:00) is treated in January
    assert both(hand, con, "sex_distribution", *PERIOD, rule="overlap")["counts"] == {"F": 1, "M": 2, "UN": 2}
    ages = both(hand, con, "age_groups", *PERIOD, rule="overlap")
    assert [g["patients"] for g in ages["groups"]] == [1, 1, 1, 1] and ages["patients"] == 5
    c50 = both(hand, con, "cases_over_time", ["C50.9"], *PERIOD, 1, rule="overlap")
    assert (c50["cases"], c50["subperiods"][0]["patients"]) == (2, 2)       # v1 and v3
    labs = both(hand, con, "abnormal_labs", ["II"], *PERIOD, rule="overlap")
    assert (labs["visits"], labs["lab_results"], labs["abnormal"]) == (5, 8, 5)
    duration = both(hand, con, "visit_duration", ["II"], *PERIOD, rule="overlap")
    assert (duration["visits_measured"], duration["mean_hours"]) == (4, pytest.approx((48 + 36 + 12 + 96) / 4))
    one_day = both(hand, con, "sex_distribution", "2024-01-02", "2024-01-02", rule="overlap")
    assert one_day["counts"] == {"F": 0, "M": 1, "UN": 0}                   # only v3 is in hospital
    assert "overlaps" in one_day["definitions"]["period"]


# Period February 2024 (29 days). In it under overlap: s1 s2 s4 s6 s7; under admitted: s4 s6 s7.
FEB = ("2024-02-01", "2024-02-29")
SPANS = [
    visit("s1", "pA", "F", 40, T(2024, 1, 20), T(2024, 2, 3), ["C50.9"], ["H", "N"]),   # spans the start
    visit("s2", "pB", "M", 60, T(2023, 11, 15), None, ["I10"], ["N"]),                # open since November
    visit("s3", "pC", "F", 30, T(2024, 1, 30), T(2024, 2, 1), ["C50.9"], []),         # leaves at the start
    visit("s4", "pA", "F", 41, T(2024, 2, 10), T(2024, 3, 5), ["C50.1"], ["L"]),      # spans the end
    visit("s5", "pD", "M", 80, T(2023, 12, 1), T(2023, 12, 10), ["C50.9"], ["H"]),    # December only
    visit("s6", "pE", "F", 20, T(2024, 2, 1), T(2024, 2, 1), ["Z00.0"], []),          # zero length at the start
    visit("s7", "pF", "M", 50, T(2024, 2, 20), T(2024, 2, 19), ["Z00.0"], []),        # invalid, admitted inside
    visit("s8", "pG", "F", 10, T(2024, 1, 31, 20), T(2024, 1, 31), ["Z00.0"], []),    # invalid, before
    visit("s9", "pH", "UN", 70, T(2024, 3, 1), T(2024, 3, 2), ["C50.9"], []),         # at the exclusive end
]


@pytest.fixture(scope="module")
def spans_root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("spans"), SPANS)


@pytest.fixture(scope="module")
def spans(spans_root, spark):
    return A.read_visits(spark, spans_root.as_uri()), D.parquet_source(str(spans_root))


def test_stay_index_keeps_the_months_that_may_still_be_in_hospital(spans_root):
    index = stay_index.local_index(spans_root)
    assert index["2023-11"].open_visits == 1
    assert index["2023-12"].latest_discharge == T(2023, 12, 10) and index["2023-12"].open_visits == 0
    assert index["2024-01"].latest_discharge == T(2024, 2, 3)
    months, period = sorted(index), Period.of(*FEB)
    assert stay_index.months_to_read(months, index, period, "overlap") == ["2023-11", "2024-01", "2024-02"]
    assert stay_index.months_to_read(months, index, period, "admitted") == ["2024-02"]
    assert stay_index.months_to_read(months, {}, period, "overlap") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    # the footer alone (the last bytes of a file, as read over WebHDFS) gives the same answer
    f = next((spans_root / "visit_month=2024-01").glob("*.parquet")).read_bytes()
    assert stay_index.tail_stays(f[-stay_index.footer_length(f):]) == index["2024-01"]


@pytest.mark.parametrize("rule, pruned", [("overlap", True), ("overlap", False), ("admitted", True)])
def test_overlap_rule_by_hand(spans, spans_root, con, rule, pruned):
    months = None
    if pruned:
        index = stay_index.local_index(spans_root)
        months = stay_index.months_to_read(sorted(index), index, Period.of(*FEB), rule)
    run = lambda name, *args: both(spans, con, name, *args, rule=rule, months=months)  # noqa: E731
    overlap = rule == "overlap"
    sex = run("sex_distribution", *FEB)
    assert sex["counts"] == ({"F": 2, "M": 2, "UN": 0} if overlap else {"F": 2, "M": 1, "UN": 0})
    ages = run("age_groups", *FEB, [0, 41, 200])     # pA: 40 at s1 (first under overlap), 41 at s4
    assert [g["patients"] for g in ages["groups"]] == ([2, 2] if overlap else [1, 2])
    cases = run("cases_over_time", ["II", "I10"], *FEB, 2)     # sub-periods split at Feb 15 12:00
    if overlap:   # s1 [0], s4 [0, 1], s2 (open) [0, 1]
        assert [(s["cases"], s["patients"]) for s in cases["subperiods"]] == [(3, 2), (2, 2)]
        assert cases["cases"] == 3
    else:         # s4 [0]
        assert [(s["cases"], s["patients"]) for s in cases["subperiods"]] == [(1, 1), (0, 0)]
        assert cases["cases"] == 1
    odd = run("cases_over_time", ["Z00"], *FEB, 2)             # s6 zero length, s7 invalid: at admission
    assert [s["cases"] for s in odd["subperiods"]] == [1, 1] and odd["cases"] == 2
    labs = run("abnormal_labs", ["II"], *FEB)
    assert (labs["visits"], labs["lab_results"], labs["abnormal"]) == ((2, 3, 2) if overlap else (1, 1, 1))
    duration = run("visit_duration", ["II", "I10"], *FEB)      # s1 14 d, s4 24 d, s2 open
    if overlap:
        assert (duration["visits"], duration["open_visits"], duration["mean_hours"]) == (3, 1, (14 + 24) * 12)
    else:
        assert (duration["visits"], duration["open_visits"], duration["mean_hours"]) == (1, 0, 24 * 24)


def test_the_given_schema_is_the_stored_one(spark, spans_root):
    """The job reads only the months it needs with ``VISIT_DDL`` instead of inferring the schema:
    both must be the same (``pacs_hdfs.visit_schema`` as Spark reads it)."""
    inferred = A.read_visits(spark, spans_root.as_uri()).schema
    given = A.read_visits(spark, spans_root.as_uri(), ["2024-01", "2024-02"])
    assert given.schema.simpleString() == inferred.simpleString()
    assert given.count() == 6 and sorted(r[0] for r in given.select("visit_month").distinct().collect()) == \
        ["2024-01", "2024-02"]
    assert sum(s.rows for s in stay_index.local_index(spans_root).values()) == len(SPANS)
