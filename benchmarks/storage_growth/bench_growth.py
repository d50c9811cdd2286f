"""HDFS disk growth per byte of DICOM ingested: how much DFS space (all replicas) one stored byte
costs right after ingest, after the staging mover has drained, and after the cleanup (a
compaction request for `staging`, standing in for the periodic one of deploy/configs.py, then
`--settle` seconds for the store-file discharger and the master's cleaners). Ideal: the
container alone, i.e. the replication factor (3.0). `ratio_*` is the growth of the paths this
ingest writes to (containers, staging store files and their archive, WALs, oldWALs, trash) per
stored byte; `ns_ratio_*` that of the whole namespace (exact, but other writers on the shared
cluster add to it); `dfs_used` (NameNode JMX CapacityUsed) is recorded too, but DataNodes
refresh it lazily.

    .venv/bin/python -m benchmarks.storage_growth.bench_growth [--mb 200] [--parallel 2]

Runs its own `pacs scp` (free port) with its own HDFS root and HBase table prefix, sends
synthetic 512x512 CT with dcmtk `storescu`, reads DFS used from the NameNode JMX
(FSNamesystem CapacityUsed) and the space of the places the excess can live from WebHDFS
GETCONTENTSUMMARY, then deletes its HDFS root and its own tables. The cluster is shared, so
CapacityUsed also moves with other writers: the per-path breakdown says where the bytes are.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import drop_scratch, record, scratch_env, scratch_settings  # noqa: E402
from pacs_hdfs import clients  # noqa: E402
from pacs_hdfs.dicom.synthetic import ct_series, write_files  # noqa: E402
from pacs_hdfs.schema import table_name  # noqa: E402
from pacs_hdfs.settings import Settings  # noqa: E402
from pacs_hdfs.storage import init_storage  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def dfs_used(s: Settings) -> int:
    """Bytes used by HDFS block replicas on all DataNodes (NameNode JMX)."""
    bean = requests.get(f"{s.webhdfs_url}/jmx",
                        params={"qry": "Hadoop:service=NameNode,name=FSNamesystem"},
                        timeout=10).json()["beans"][0]
    return int(bean["CapacityUsed"])


def space(s: Settings, path: str) -> int:
    """spaceConsumed (all replicas) under `path`; 0 if it does not exist."""
    r = requests.get(f"{s.webhdfs_url}/webhdfs/v1{path}",
                     params={"op": "GETCONTENTSUMMARY", "user.name": s.hdfs_user}, timeout=30)
    return r.json()["ContentSummary"]["spaceConsumed"] if r.status_code == 200 else 0


def watched_paths(s: Settings) -> dict[str, str]:
    """The places a stored byte can occupy: containers, staging store files (live and archived
    after compaction), the write-ahead logs (shared by all tables) and the trash."""
    staging = table_name(s.hbase_table_prefix, "staging")
    return {"containers": s.hdfs_root,
            "staging_hfiles": f"/hbase/data/default/{staging}",
            "staging_archive": f"/hbase/archive/data/default/{staging}",
            "wals": "/hbase/WALs", "old_wals": "/hbase/oldWALs",
            "archive_all": "/hbase/archive", "trash": f"/user/{s.hdfs_user}/.Trash"}


def snapshot(s: Settings) -> dict[str, int]:
    """DFS used (DataNode reports, lag behind), the whole namespace's space (exact) and each
    watched path; `attributed` sums the paths this ingest writes to (WALs are shared, so other
    writers move it too), `own` only those no one else writes to (containers, staging)."""
    paths = {k: space(s, p) for k, p in watched_paths(s).items()}
    attributed = sum(v for k, v in paths.items() if k != "archive_all")
    own = sum(paths[k] for k in ("containers", "staging_hfiles", "staging_archive"))
    return {"dfs_used": dfs_used(s), "namespace": space(s, "/"), "attributed": attributed,
            "own": own, **paths}


def growth(now: dict[str, int], before: dict[str, int], stored: int) -> dict:
    """Each measure's growth since `before`, in MB and per stored byte."""
    return {k: {"mb": round((now[k] - before[k]) / 1e6, 1),
                "per_byte": round((now[k] - before[k]) / stored, 2)} for k in now}


def start_scp(s: Settings, tmp: Path, port: int) -> subprocess.Popen:
    env = {**scratch_env(s),
           "PACS_SCP_VAULT": str(tmp / "vault.bin"), "PACS_SCP_MASTER_KEY_FILE": str(tmp / "k"),
           "PACS_SCP_LOG": str(tmp / "scp.log"), "PACS_SCP_BIND": HOST,
           "PACS_SCP_PORT": str(port), "PACS_SCP_AE_TITLE": "PACS"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "pacs"), "scp"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while subprocess.run(["echoscu", "-aec", "PACS", HOST, str(port)],
                         capture_output=True).returncode != 0:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("SCP did not answer C-ECHO")
        time.sleep(0.5)
    return proc


def send(port: int, parts: list[Path]) -> float:
    def one(d: Path) -> subprocess.CompletedProcess:
        return subprocess.run(["storescu", "-aec", "PACS", HOST, str(port), "+sd", str(d)],
                              capture_output=True, text=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(parts)) as pool:
        results = list(pool.map(one, parts))
    for r in results:
        if r.returncode != 0 or "Store Failed" in r.stderr:
            raise RuntimeError(f"storescu failed: {r.stderr[-500:]}")
    return time.perf_counter() - t0


def wait_drained(hbase, timeout: float = 900) -> float:
    t0 = time.perf_counter()
    while hbase.scan("staging", columns=[b"d:dir"], limit=1):
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("staging did not drain")
        time.sleep(0.5)
    return round(time.perf_counter() - t0, 1)


def wait_staging_shrinks(s: Settings, before: int, timeout: float) -> float:
    """Seconds until the staging store files are below a tenth of `before` (compacted and
    discharged), at most `timeout`."""
    t0 = time.perf_counter()
    path = watched_paths(s)["staging_hfiles"]
    while space(s, path) > before / 10 and time.perf_counter() - t0 < timeout:
        time.sleep(2)
    return round(time.perf_counter() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200, help="synthetic CT to send (~0.5 MB each)")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--settle", type=float, default=120,
                    help="max seconds to wait for compaction and the master's cleaners")
    ap.add_argument("--no-record", action="store_true", help="print only (smoke runs)")
    args = ap.parse_args()
    s = scratch_settings("growth")
    tag = s.hbase_table_prefix
    tmp = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    hbase = clients.hbase(s)
    proc = None
    try:
        n = max(2, args.mb * 2)
        series = ct_series(n, patient_id=f"GROWTH-{tag}", patient_name="Growth^Bench")
        per = -(-n // args.parallel)
        parts = [write_files(series[i * per:(i + 1) * per], tmp / f"p{i}").pop().parent
                 for i in range(args.parallel)]
        sent = sum(p.stat().st_size for d in parts for p in d.iterdir())
        init_storage(s)
        port = free_port()
        proc = start_scp(s, tmp, port)
        before = snapshot(s)
        send_s = send(port, parts)
        after_ingest = snapshot(s)
        drain_s = wait_drained(hbase)
        after_drain = snapshot(s)
        stored = after_drain["containers"] // s.effective_replication or sent
        hbase.compact("staging")  # merges >= 3 store files: moved objects' cells go
        compact_s = wait_staging_shrinks(s, after_drain["staging_hfiles"], args.settle)
        time.sleep(max(0.0, args.settle - compact_s))  # the master's cleaners (TTL + period)
        after_cleanup = snapshot(s)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
        drop_scratch(s)
    stages = {"after_ingest": growth(after_ingest, before, stored),
              "after_drain": growth(after_drain, before, stored),
              "after_cleanup": growth(after_cleanup, before, stored)}
    result = {"mb_sent": round(sent / 1e6, 1), "mb_stored": round(stored / 1e6, 1),
              "images": n, "parallel": args.parallel, "send_s": round(send_s, 1),
              "drain_s": drain_s, "compact_s": compact_s, "settle_s": args.settle,
              "replication": s.effective_replication,
              **{f"ratio_{k}": stages[f"after_{k}"]["attributed"]["per_byte"]
                 for k in ("ingest", "drain", "cleanup")},
              **{f"ns_ratio_{k}": stages[f"after_{k}"]["namespace"]["per_byte"]
                 for k in ("ingest", "drain", "cleanup")},
              **{f"own_ratio_{k}": stages[f"after_{k}"]["own"]["per_byte"]
                 for k in ("drain", "cleanup")},
              "stages": stages, "before": before}
    print(json.dumps(result, indent=2))
    if not args.no_record:
        record(BENCH_DIR, result, ["mb_stored", "parallel", "send_s", "drain_s", "ratio_ingest",
                                   "ratio_drain", "ratio_cleanup", "ns_ratio_cleanup",
                                   "own_ratio_drain", "own_ratio_cleanup"])


if __name__ == "__main__":
    main()
