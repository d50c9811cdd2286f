"""Benchmark the five ICD-10 analyses: Spark vs the equivalent DuckDB SQL on the same Parquet.

    python benchmarks/icd10/bench_icd10.py --visits 1000000 --master local[2]
    python benchmarks/icd10/bench_icd10.py --visits 10000000 --master spark://host:7077 \
        --data /tmp/visits-10m --spark-path hdfs://host:9000/mdc/visits   # after uploading --data

Generates (or reuses) ``--visits`` synthetic visits under ``--data``, runs each analysis once to
warm up, then times the best of ``--repeat`` runs in Spark and in DuckDB, checks that both give the
same result, writes ``results.json`` next to this file and appends rows to ``RESULTS.md``.
The Spark timing is the analysis call (plan, job, collect) on an already started session.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import duckdb

from analytics_jobs.icd10 import analyses as A
from analytics_jobs.icd10 import duckdb_sql as D
from analytics_jobs.icd10 import stay_index
from analytics_jobs.icd10.period import Period
from analytics_jobs.icd10.generator import generate_visits

HERE = Path(__file__).resolve().parent
PERIOD = ("2023-04-01", "2024-03-31")
WORKLOAD = (   # (analysis, arguments after the DataFrame / source)
    ("age_groups", PERIOD),
    ("sex_distribution", PERIOD),
    ("cases_over_time", (["II"], *PERIOD, 12)),
    ("abnormal_labs", (["I10", "E10-E14"], *PERIOD)),
    ("visit_duration", (["C00-D48", "pneumonia"], *PERIOD)),
)


def best_of(repeat: int, call) -> tuple[float, dict]:
    """Fastest wall time of ``repeat`` calls and the (last) result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), result


def ensure_data(root: Path, visits: int, seed: int) -> float:
    """Generate the dataset unless a matching one is there; returns generation seconds (0 if reused)."""
    marker = root / "_GENERATED.json"
    wanted = {"visits": visits, "seed": seed, "open": "export"}   # generator: open = still in at export
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return 0.0
    start = time.perf_counter()
    generate_visits(root, visits, months=24, first_month="2023-01", seed=seed)
    marker.write_text(json.dumps(wanted))
    return time.perf_counter() - start


def spark_session(master: str, shuffle_partitions: int):
    from pyspark.sql import SparkSession
    return (SparkSession.builder.master(master).appName("bench-icd10")
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
            .config("spark.driver.memory", "2g")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1").getOrCreate())


def run(visits: int, master: str, data: Path, repeat: int, seed: int, shuffle_partitions: int,
        spark_path: str | None = None, rules: tuple[str, ...] = ("overlap", "admitted")) -> dict:
    """``spark_path``: where Spark reads the same dataset (e.g. its hdfs:// copy); default ``data``."""
    generation_s = ensure_data(data, visits, seed)
    spark = spark_session(master, shuffle_partitions)
    spark.sparkContext.setLogLevel("ERROR")
    con = duckdb.connect()
    try:
        df, source = A.read_visits(spark, spark_path or str(data)), D.parquet_source(str(data))
        rows = []
        index = stay_index.local_index(data)
        months = {rule: stay_index.months_to_read(sorted(index), index, Period.of(*PERIOD), rule)
                  for rule in rules}
        for rule, (name, args) in ((r, w) for r in rules for w in WORKLOAD):
            spark_call = lambda: getattr(A, name)(df, *args, rule=rule, months=months[rule])  # noqa: E731
            duck_call = lambda: getattr(D, f"duckdb_{name}")(con, source, *args, rule=rule)  # noqa: E731
            spark_call(), duck_call()                          # warm-up: JIT, metadata caches
            spark_s, spark_result = best_of(repeat, spark_call)
            duck_s, duck_result = best_of(repeat, duck_call)
            rows.append({"analysis": f"{name} ({rule})", "spark_s": round(spark_s, 3), "duckdb_s": round(duck_s, 3),
                         "ratio": round(spark_s / duck_s, 1), "agree": spark_result == duck_result})
            print(f"{name:18s} {rule:8s} spark {spark_s:7.3f} s  duckdb {duck_s:7.3f} s  "
                  f"ratio {spark_s / duck_s:5.1f}  agree {rows[-1]['agree']}", flush=True)
    finally:
        con.close()
        spark.stop()
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "visits": visits,
            "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1),
            "master": master, "spark_path": spark_path or str(data), "repeat": repeat, "generation_s": round(generation_s, 1), "results": rows}


def append_markdown(path: Path, result: dict) -> None:
    header = "| date | n visits | master | load avg | analysis | spark s | duckdb s | ratio | agree |\n" \
             "|---|---:|---|---:|---|---:|---:|---:|---|\n"
    lines = [f"| {result['date']} | {result['visits']:,} | {result['master']} | {result['load_avg_1m']} | "
             f"{r['analysis']} | {r['spark_s']:.3f} | {r['duckdb_s']:.3f} | {r['ratio']:.1f} | {r['agree']} |\n"
             for r in result["results"]]
    with path.open("a") as out:
        if path.stat().st_size == 0:
            out.write("# ICD-10 analyses: Spark vs DuckDB\n\n"
                      "Best-of-`repeat` wall time of each analysis call; `load avg` is the 1-minute load of "
                      "the (shared) machine when the run ended. Written by `bench_icd10.py`.\n\n" + header)
        out.writelines(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]", help="Spark master URL, e.g. spark://host:7077")
    parser.add_argument("--data", type=Path, default=None, help="dataset directory (default /tmp/icd10-bench-N)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--rules", default="overlap,admitted")
    parser.add_argument("--spark-path", default=None,
                        help="Spark reads this copy of --data instead, e.g. hdfs://namenode:9000/mdc/visits")
    args = parser.parse_args()
    data = args.data or Path(f"/tmp/icd10-bench-{args.visits}")
    result = run(args.visits, args.master, data, args.repeat, args.seed, args.shuffle_partitions,
                 args.spark_path, tuple(args.rules.split(",")))
    (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    md = HERE / "RESULTS.md"
    md.touch()
    append_markdown(md, result)


if __name__ == "__main__":
    main()
