"""ICD-10 jobs on the embedded cluster: whole job (submit -> stored result) and its Spark work,
side by side with DuckDB over the same Parquet files (local copy of what is on HDFS).

    python benchmarks/icd10_jobs/bench_icd10_jobs.py --visits 10000000 [--data DIR]

Targets (issue 5), 10 M visits on 2 cores: Spark work <= 5 s and <= 10x DuckDB per analysis,
whole job <= 20 s.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import duckdb  # noqa: E402

from analytics_jobs.icd10 import duckdb_sql as D  # noqa: E402
from analytics_jobs.icd10.generator import generate_visits  # noqa: E402
from analytics_jobs.icd10.upload import upload_dataset  # noqa: E402
from analytics_jobs.service import JobService  # noqa: E402
from benchmarks.common import record  # noqa: E402
from pacs_hdfs import clients  # noqa: E402
from pacs_hdfs.settings import get_settings  # noqa: E402

HERE = Path(__file__).resolve().parent
PERIOD = {"date_from": "2023-04-01", "date_to": "2024-03-31"}
WORKLOAD = (  # kind, job params, duckdb runner, duckdb kwargs
    ("icd10-age", {}, D.duckdb_age_groups, {}),
    ("icd10-sex", {}, D.duckdb_sex_distribution, {}),
    ("icd10-cases", {"codes": "II", "subperiods": "12"}, D.duckdb_cases_over_time,
     {"codes": ["II"], "n_subperiods": 12}),
    ("icd10-abnormal-labs", {"codes": "I10,E10-E14"}, D.duckdb_abnormal_labs,
     {"codes": ["I10", "E10-E14"]}),
    ("icd10-visit-duration", {"codes": "C00-D48"}, D.duckdb_visit_duration,
     {"codes": ["C00-D48"]}),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--visits", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--only", default="", help="comma list of kinds")
    args = ap.parse_args()
    s = get_settings()
    data = args.data or HERE / "data" / f"visits-{args.visits}"
    if not (data / "_DONE").exists():
        generate_visits(data, args.visits, months=24, first_month="2023-01", seed=0)
        (data / "_DONE").write_text("ok")
    fs = clients.hdfs(s)
    root = f"visits/bench-{args.visits}"
    if not fs.exists(f"{root}/_DONE"):
        t0 = time.monotonic()
        upload_dataset(fs, data, root)
        fs.write(f"{root}/_DONE", b"ok", overwrite=True)
        print(f"uploaded in {time.monotonic() - t0:.1f} s", flush=True)
    svc = JobService(s)
    svc.wait(svc.submit("spark-selftest", {"n": "10"}).id, timeout=600)  # warm the runner
    con = duckdb.connect()
    source = D.parquet_source(str(data))
    only = set(args.only.split(",")) if args.only else None
    for kind, params, duck, duck_kw in WORKLOAD:
        if only and kind not in only:
            continue
        # one warm-up run each (JIT, file listing cache), then the measured run
        svc.wait(svc.submit(kind, {**PERIOD, "source": root, **params}).id, timeout=900)
        t0 = time.monotonic()
        rec = svc.wait(svc.submit(kind, {**PERIOD, "source": root, **params}).id, timeout=900)
        job_s = time.monotonic() - t0
        result = json.loads(svc.artifact(rec.id))
        t0 = time.monotonic()
        expected = duck(con, source, date_from=PERIOD["date_from"], date_to=PERIOD["date_to"], **duck_kw)
        duck_s = time.monotonic() - t0
        spark_s = result["provenance"]["spark_seconds"]
        row = {"visits": args.visits, "kind": kind, "job_s": round(job_s, 2),
               "spark_s": spark_s, "duckdb_s": round(duck_s, 3),
               "ratio": round(spark_s / duck_s, 1),
               "agree": json.loads(json.dumps(expected, default=str)) == result["numbers"],
               "job_id": rec.id}
        print(row, flush=True)
        record(HERE, row, ["visits", "kind", "job_s", "spark_s", "duckdb_s", "ratio", "agree"])


if __name__ == "__main__":
    main()
