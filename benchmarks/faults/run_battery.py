"""The storage core's fault battery, long form: every fault of tests/fault_battery.py `--runs`
times (default 10) with bigger objects than `make test` uses, in a scratch namespace that is
deleted afterwards. Writes results.json (every run) and one RESULTS.md row per fault.

    .venv/bin/python benchmarks/faults/run_battery.py [--runs 10] [--objects 120] [--size 512]

Needs the embedded cluster up (`pacs cluster up`); it stops and starts its daemons.
"""
from __future__ import annotations

import argparse
import json
import signal
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from benchmarks.common import drop_scratch, host_facts, scratch_settings  # noqa: E402
from tests.fault_battery import FAULTS, run_once  # noqa: E402
from tests.portal_support import free_port  # noqa: E402

COLUMNS = ["fault", "runs", "passed", "errors", "sent", "acknowledged", "retrievable", "lost",
           "failed_status", "no_answer", "unacked_stored", "orphan_files", "orphan_mb",
           "orphans_left", "max_recovery_s", "objects", "size"]


def failed_run(fault: str, seed: int, error: Exception) -> dict:
    """A run that did not finish (e.g. the cluster did not recover): counts as failed."""
    from tests.fault_battery import RunResult
    return {**RunResult(fault, seed).as_dict(), "ok": False, "error": str(error)[:500]}


def restore(cluster) -> None:
    """Start every daemon that is not running (a run that failed may leave one down)."""
    for d in cluster.status()["daemons"]:
        if not d["alive"]:
            print(f"  restarting {d['name']}", flush=True)
            cluster.start_daemon(d["name"])
    time.sleep(20)


def summarise(fault: str, runs: list[dict], objects: int, size: int) -> dict:
    total = lambda k: sum(r[k] for r in runs)  # noqa: E731
    return {"fault": fault, "runs": len(runs), "passed": sum(r["ok"] for r in runs),
            "errors": sum("error" in r for r in runs),
            "sent": total("sent"), "acknowledged": total("acknowledged"),
            "retrievable": total("retrievable"), "lost": sum(len(r["lost"]) for r in runs),
            "failed_status": total("failed_status"), "no_answer": total("no_answer"),
            "unacked_stored": total("unacked_stored"), "orphan_files": total("orphan_files"),
            "orphan_mb": round(total("orphan_bytes") / 2**20, 1),
            "orphans_left": total("orphans_left"),
            "max_recovery_s": round(max((r["recovery_s"] for r in runs), default=0), 1),
            "objects": objects, "size": size}


def main() -> None:
    # a stopped run still deletes its scratch namespace (the `finally` below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--objects", type=int, default=120)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--faults", default=",".join(FAULTS))
    args = ap.parse_args()

    from deploy.supervisor import Supervisor
    from pacs_hdfs.settings import get_settings
    from pacs_hdfs.storage import init_storage
    cluster = Supervisor(get_settings())
    scratch = scratch_settings("faults")
    init_storage(scratch)
    started, rows, every = time.time(), [], []
    try:
        for fault in args.faults.split(","):
            runs = []
            for i in range(args.runs):
                seed = random.SystemRandom().randrange(1 << 30)
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        r = run_once(FAULTS[fault], cluster, scratch, Path(tmp) / "run", seed,
                                     free_port(), objects=args.objects, size=args.size)
                except Exception as e:  # noqa: BLE001 - a run that could not finish fails
                    runs.append(failed_run(fault, seed, e))
                    print(f"{fault} {i + 1}/{args.runs}: FAILED {e}", flush=True)
                    restore(cluster)
                    continue
                runs.append(r.as_dict())
                print(f"{fault} {i + 1}/{args.runs}: ok={r.ok} sent={r.sent} "
                      f"acked={r.acknowledged} retrievable={r.retrievable} lost={len(r.lost)} "
                      f"orphans={r.orphan_files} recovery={r.recovery_s:.1f}s", flush=True)
            every += runs
            rows.append(summarise(fault, runs, args.objects, args.size))
    finally:
        drop_scratch(scratch)
    date = time.strftime("%Y-%m-%d %H:%M")
    host = host_facts()
    (HERE / "results.json").write_text(json.dumps(
        {"date": date, "host": host, "seconds": round(time.time() - started), "faults": rows,
         "runs": every}, indent=1) + "\n")
    md = HERE / "RESULTS.md"
    if not md.exists():
        md.write_text("| date | " + " | ".join(COLUMNS) + " | load avg |\n"
                      + "|---" * (len(COLUMNS) + 2) + "|\n")
    with md.open("a") as f:
        for row in rows:
            f.write("| " + " | ".join([date, *(str(row[c]) for c in COLUMNS),
                                       f"{host['load_avg']:.1f}"]) + " |\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
