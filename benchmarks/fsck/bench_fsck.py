"""`pacs fsck` at 100 k objects: the check, and the repair of a little damage, on the cluster.

Stores `--objects` synthetic objects (2-8 KB, random bytes) in `--series` series through the
real commit path (`Committer`, large group commits) into a scratch namespace, in `--rounds`
rounds so that each series gets one batch file per round (an uncompacted archive, the harder
case: many files), then runs the `fsck` job through the job service in this process (the real
`Runner.run_one` on a warm SparkSession; the shared job runner never sees the scratch
namespace):

1. `fsck` on the intact archive (the headline: objects/s);
2. damage: `--damage` rows with a moved offset, as many unfinished commits (sop row deleted),
   orphan files and wrong series counters;
3. `fsck --repair --grace 0` (check, repair, check again), which must end clean.

Waits for a quiet machine (1-minute load <= `--max-load`) before the timed runs. Writes
results.json and a RESULTS.md row; the scratch namespace is deleted at the end.

    .venv/bin/python benchmarks/fsck/bench_fsck.py [--objects 100000 --series 200 --rounds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import drop_scratch, record, scratch_settings  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent


def synthetic_archive(n_objects: int, n_series: int, rng: random.Random):
    """(series list, objects) with 2-8 KB random payloads, round-robin over the series."""
    from pacs_hdfs.dicom.commit import Prepared
    series = [(f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}") for _ in range(n_series)]
    series = [(series[i - i % 2][0], s) for i, (_, s) in enumerate(series)]  # 2 series per study
    objs = []
    for i in range(n_objects):
        study, ser = series[i % n_series]
        attrs = {"StudyInstanceUID": study, "SeriesInstanceUID": ser,
                 "SOPInstanceUID": f"2.25.{uuid.uuid4().int}",
                 "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT",
                 "PatientID": f"BENCH-{i % n_series // 2}", "InstanceNumber": str(i // n_series),
                 "TransferSyntaxUID": "1.2.840.10008.1.2.1"}
        objs.append(Prepared(b"DICM" + rng.randbytes(rng.randint(2048, 8192) - 4), attrs))
    return series, objs


def store(settings, objs, rounds: int) -> float:
    """Commit the objects in `rounds` rounds (one batch file per series and round)."""
    from pacs_hdfs import clients
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import Committer
    committer = Committer(clients.hbase(settings),
                          ContainerWriter(clients.hdfs(settings), writer="bench"),
                          max_objects=20_000, max_bytes=256 << 20, parallel=2)
    t0 = time.monotonic()
    per_round = -(-len(objs) // rounds)
    for r in range(rounds):
        part = objs[r * per_round:(r + 1) * per_round]
        outcomes = committer.store_many(part)
        bad = [o for o in outcomes if not o.acknowledged]
        if bad:
            raise SystemExit(f"{len(bad)} object(s) not stored: {bad[0]}")
        print(f"  round {r + 1}/{rounds}: {len(part)} objects, {time.monotonic() - t0:.0f} s",
              flush=True)
    return time.monotonic() - t0


def damage(settings, series, objs, n: int, rng: random.Random) -> dict:
    """n moved offsets, n unfinished commits, n orphan files, n wrong series counters."""
    from pacs_hdfs import clients
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import container_dir
    from pacs_hdfs.dicom.fsck_checks import encode_counter
    from pacs_hdfs.schema import row_key
    hbase, hdfs = clients.hbase(settings), clients.hdfs(settings)
    picked = rng.sample(objs, 2 * n)
    moved, unfinished = picked[:n], picked[n:]
    rows = hbase.get_many("instance", [o.key for o in moved], columns=[b"l:offset"])
    hbase.put_many("instance", [(k, {b"l:offset": str(int(r[b"l:offset"]) + 1).encode()})
                                for k, r in rows.items()])
    for o in unfinished:
        hbase.delete("sop", row_key(o.sop))
    writer = ContainerWriter(hdfs, writer="bench-orphan")
    for study, ser in rng.sample(series, n):
        writer.write(container_dir(study, ser), [("orphan", rng.randbytes(4096))])
    hbase.put_many("series", [(row_key(study, ser), {b"c:instances": encode_counter(7)})
                              for study, ser in rng.sample(series, n)])
    return {"moved_offsets": n, "unfinished_commits": n, "orphan_files": n,
            "wrong_counters": n}


def wait_for_quiet(max_load: float, tries: int, pause_s: float) -> float:
    for attempt in range(tries):
        load = os.getloadavg()[0]
        if load <= max_load:
            return load
        print(f"  load {load:.2f} > {max_load}: waiting {pause_s:.0f} s "
              f"({attempt + 1}/{tries})", flush=True)
        time.sleep(pause_s)
    return os.getloadavg()[0]


def run_job(service, runner, kind: str, params: dict) -> tuple[dict, float]:
    """Submit and run one job in this process; (result document, job runtime s)."""
    rec = service.submit(kind, params, start_runner=False)
    runner.run_one(rec.id)
    rec = service.status(rec.id)
    if rec.state != "succeeded":
        raise SystemExit(f"{kind} job {rec.id} {rec.state}: {rec.error}")
    return json.loads(service.artifact(rec.id)), rec.runtime_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--damage", type=int, default=20)
    ap.add_argument("--max-load", type=float, default=1.5)
    ap.add_argument("--wait-tries", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="leave the scratch namespace")
    ap.add_argument("--no-record", action="store_true", help="a trial run: print only")
    args = ap.parse_args()

    from analytics_jobs.runner import Runner
    from analytics_jobs.service import JobService
    from pacs_hdfs.storage import init_storage
    rng = random.Random(12)
    settings = scratch_settings("fsck")
    print(f"scratch namespace {settings.hdfs_root} / {settings.hbase_table_prefix}", flush=True)
    init_storage(settings)
    try:
        series, objs = synthetic_archive(args.objects, args.series, rng)
        payload = sum(len(o.data) for o in objs)
        print(f"storing {len(objs)} objects ({payload / 1e6:.0f} MB) in {args.series} series",
              flush=True)
        store_s = store(settings, objs, args.rounds)
        service, runner = JobService(settings), Runner(settings)
        run_job(service, runner, "spark-selftest", {"n": 10})       # warm the SparkSession
        load = wait_for_quiet(args.max_load, args.wait_tries, 60)
        print(f"fsck (load {load:.2f})", flush=True)
        check, check_job_s = run_job(service, runner, "fsck", {"grace_s": 0})
        t = check["totals"]
        assert check["clean"] and t["objects_ok"] == args.objects, check["totals"]
        hurt = damage(settings, series, objs, args.damage, rng)
        load_repair = wait_for_quiet(args.max_load, args.wait_tries, 60)
        print(f"fsck --repair (load {load_repair:.2f})", flush=True)
        fixed, repair_job_s = run_job(service, runner, "fsck", {"repair": True, "grace_s": 0})
        if not fixed["clean"]:
            print(json.dumps(fixed["problems"], indent=1)[:3000])
    finally:
        if not args.keep:
            drop_scratch(settings)
    result = {
        "objects": t["objects_checked"], "files": t["files"], "bytes": t["bytes"],
        "series": args.series, "store_s": round(store_s, 1),
        "check_s": check["timing"]["total_s"], "check_job_s": check_job_s,
        "objects_per_s": round(t["objects_checked"] / check["timing"]["total_s"]),
        "check_stages_s": check["timing"]["stages_s"],
        "damage": hurt, "problems_before_repair": fixed["before"]["totals"]["problems"],
        "problems_after_repair": fixed["totals"]["problems"], "clean_after_repair": fixed["clean"],
        "repair_total_s": fixed["timing"]["total_s"], "repair_job_s": repair_job_s,
        "repair_timing_s": {k: fixed["timing"][k] for k in ("check_s", "repair_s", "recheck_s")},
        "repair": {k: {kk: v for kk, v in fixed["repair"][k].items() if not kk.endswith("_list")}
                   for k in fixed["repair"]},
        "load_at_check": round(load, 2), "load_at_repair": round(load_repair, 2),
        "spark_cores": runner.spark().sparkContext.defaultParallelism,
    }
    if not args.no_record:
            record(BENCH_DIR, result, ["objects", "files", "bytes", "check_s", "objects_per_s",
                                   "repair_total_s", "problems_before_repair",
                                   "problems_after_repair", "load_at_check"])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
