"""ICD-10 jobs on the embedded cluster: whole job (submit -> stored result) and its Spark work,
side by side with DuckDB over the same Parquet files (the local copy of what is on HDFS), under
both period rules.

    PACS_HOME=.pacs-test python benchmarks/icd10_jobs/bench_icd10_jobs.py --visits 10000000 \
        [--data DIR] [--rules overlap,admitted] [--only icd10-age,...]

Targets (issue 19), 10 M visits on 2 cores, each of the five jobs under both rules: Spark work
<= 4 s, submit -> stored result <= 8 s, Spark <= 5x DuckDB in the same run.

What it stores and deletes: a scratch namespace (its own HDFS root with the uploaded visits and
the jobs' outputs, its own HBase tables for the job rows; `benchmarks.common.scratch_settings`),
dropped at the end, and a job runner of its own in this process (a thread running
`Runner.run_forever`, as `pacs job runner` does: same queue polling, same warm SparkSession on the
cluster), so the shared runner never sees these jobs. The local dataset under --data is kept
(generating 10 M visits takes minutes); without --data a temporary one is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import duckdb  # noqa: E402

from analytics_jobs.icd10 import duckdb_sql as D  # noqa: E402
from analytics_jobs.icd10.generator import generate_visits  # noqa: E402
from analytics_jobs.icd10.upload import upload_dataset  # noqa: E402
from benchmarks.common import drop_scratch, record, scratch_settings  # noqa: E402
from pacs_hdfs import clients  # noqa: E402

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
COLUMNS = ["visits", "rule", "kind", "job_s", "spark_s", "duckdb_s", "ratio", "agree"]


def ensure_data(data: Path, visits: int) -> None:
    marker = data / "_GENERATED.json"
    wanted = {"visits": visits, "months": 24, "first_month": "2023-01", "seed": 0, "open": "export"}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    t0 = time.monotonic()
    generate_visits(data, visits, months=24, first_month="2023-01", seed=0)
    marker.write_text(json.dumps(wanted))
    print(f"generated in {time.monotonic() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--visits", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None, help="local dataset (kept; reused if it matches)")
    ap.add_argument("--rules", default="overlap,admitted")
    ap.add_argument("--only", default="", help="comma list of kinds")
    ap.add_argument("--repeat", type=int, default=2, help="measured runs per job (best is reported)")
    ap.add_argument("--keep", action="store_true", help="leave the scratch namespace")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    from analytics_jobs.runner import Runner
    from analytics_jobs.service import JobService
    from pacs_hdfs.storage import init_storage

    temp = None if args.data else Path(tempfile.mkdtemp(prefix="icd10-jobs-"))
    data = args.data or temp
    settings = scratch_settings("icd10jobs")
    print(f"scratch namespace {settings.hdfs_root} / {settings.hbase_table_prefix}", flush=True)
    try:
        ensure_data(data, args.visits)
        init_storage(settings)
        t0 = time.monotonic()
        upload_dataset(clients.hdfs(settings), data, "visits/parquet")
        print(f"uploaded in {time.monotonic() - t0:.1f} s", flush=True)
        svc, runner = JobService(settings), Runner(settings)
        thread = threading.Thread(target=lambda: runner.run_forever(poll_s=0.3, idle_exit_s=3600),
                                  daemon=True)
        thread.start()

        def job(kind: str, params: dict):
            t = time.monotonic()
            rec = svc.wait(svc.submit(kind, params, start_runner=False).id, timeout=900)
            assert rec.state == "succeeded", rec.error
            return rec, time.monotonic() - t

        job("spark-selftest", {"n": "10"})                              # warm the session
        con = duckdb.connect()
        source = D.parquet_source(str(data))
        only = set(args.only.split(",")) if args.only else None
        for rule in args.rules.split(","):
            for kind, params, duck, duck_kw in WORKLOAD:
                if only and kind not in only:
                    continue
                full = {**PERIOD, **params, "period_rule": rule}
                job(kind, full)                      # warm-up: JIT, footer cache, file listing
                runs = [job(kind, full) for _ in range(args.repeat)]
                rec, job_s = min(runs, key=lambda r: r[1])
                result = json.loads(svc.artifact(rec.id))
                spark_s = min(json.loads(svc.artifact(r.id))["provenance"]["spark_seconds"]
                              for r, _ in runs)
                duck_times = []
                for _ in range(args.repeat):
                    t = time.monotonic()
                    expected = duck(con, source, date_from=PERIOD["date_from"],
                                    date_to=PERIOD["date_to"], rule=rule, **duck_kw)
                    duck_times.append(time.monotonic() - t)
                duck_s = min(duck_times)
                row = {"visits": args.visits, "rule": rule, "kind": kind, "job_s": round(job_s, 2),
                       "spark_s": spark_s, "duckdb_s": round(duck_s, 3),
                       "ratio": round(spark_s / duck_s, 1),
                       "agree": json.loads(json.dumps(expected, default=str)) == result["numbers"],
                       "months_read": len(result["provenance"]["months_read"]),
                       "load_avg_1m": round(os.getloadavg()[0], 1)}
                print(row, flush=True)
                if not args.no_record:
                    record(HERE, row, COLUMNS)
        con.close()
    finally:
        if not args.keep:
            drop_scratch(settings)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
