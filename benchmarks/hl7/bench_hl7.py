"""HL7 gateway throughput: visits/s over HTTPS (mTLS), acknowledged only after durable storage.

Starts `pacs gateway` on port 8445 (own dev certificates in a temp dir), then POSTs pre-built
bodies (the HAS-side build cost is not measured here): ``--single`` visits one per request
(sequential, one keep-alive connection) and ``--batched`` visits in batches of ``--batch``
(``--clients`` concurrent connections, HTTP 503 retried). Visits are synthetic (fresh random keys, so new visit
ids every run) with admissions in one recent month, as a live HIS feed sends them. Every answer
must be AA. Runs in a scratch namespace of the test cluster (`$PACS_HOME`'s), dropped at the end.
Writes results.json and a RESULTS.md row.

    .venv/bin/python -m benchmarks.hl7.bench_hl7 [--single 200 --batched 5000 --batch 100]
"""
from __future__ import annotations

import argparse
import re
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import record  # noqa: E402
from hl7_gateway.ack import build_ack
from hl7_gateway.builder import build_batch
from hl7_gateway.hospital.deidentify_visit import HasKeys
from hl7_gateway.hospital.has_client import GatewayClient
from hl7_gateway.parser import parse_request
from hl7_gateway.hospital.samples import sample_visits
from hl7_gateway.visit_parquet import month_files

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.integration.hl7_support import Gateway  # noqa: E402
from tests.namespace_support import scratch_namespace  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
PORT = 8445


def live_feed(count: int, seed: int) -> list:
    """Synthetic visits re-dated into the last four weeks (one or two visit_month partitions)."""
    keys = HasKeys(visit_key=secrets.token_bytes(64), pseudonym_key=secrets.token_bytes(32))
    base = datetime.now().replace(microsecond=0) - timedelta(days=28)
    visits = []
    for i, v in enumerate(sample_visits(count, seed=seed, keys=keys)):
        admission = base + timedelta(minutes=i * 7 % (27 * 24 * 60))
        stay = (v.discharge - v.admission) if v.discharge else None
        visits.append(v.model_copy(update={
            "admission": admission, "birth_year": None,
            "discharge": admission + min(stay, timedelta(hours=12)) if stay else None}))
    return visits


def run(gw: Gateway, bodies: list[bytes], clients: int) -> float:
    """Seconds to get AA for every body, with ``clients`` concurrent connections."""
    def send(chunk: list[bytes]) -> None:
        client = GatewayClient(gw.url, gw.certs)  # retries 503 (storage briefly down)
        for body in chunk:
            ack = client.post(body)
            if ack.type_code != "AA":
                raise RuntimeError(f"not accepted: {ack.messages[0].details}")
        client.close()
    chunks = [bodies[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    return time.perf_counter() - started


_COMMIT = re.compile(r"stored (\d+) visits of (\d+) requests: HDFS (\d+) ms .* HBase (\d+) ms"
                     r"(?:; (.*))?")
_PHASE = re.compile(r"([a-z+ ]+?) (\d+) ms")
_CLAIM = re.compile(r"owner and index reads (\d+) ms for (\d+) requests")


def commit_stats(log: str) -> dict:
    """Group commits of the batched phase from the gateway log: size and where time went
    (per-phase averages of the commits' profile, and the commits' owner reads)."""
    found = [m for m in _COMMIT.finditer(log) if int(m.group(1)) > 1]
    if not found:
        return {}
    big = [tuple(map(int, m.groups()[:4])) for m in found]
    stats = {"commits": len(big), "visits_per_commit": round(sum(c[0] for c in big) / len(big)),
             "requests_per_commit": round(sum(c[1] for c in big) / len(big), 1),
             "commit_hdfs_ms_avg": round(sum(c[2] for c in big) / len(big)),
             "commit_hbase_ms_avg": round(sum(c[3] for c in big) / len(big))}
    phases: dict[str, list[int]] = {}
    for m in found:
        for name, ms in _PHASE.findall(m.group(5) or ""):
            phases.setdefault(name.strip(), []).append(int(ms))
    stats.update({f"commit_{name.replace(' ', '_').replace('+', '_')}_ms_avg":
                  round(sum(v) / len(v)) for name, v in phases.items()})
    claims = [int(m.group(1)) for m in _CLAIM.finditer(log)]
    if claims:  # one read per table per commit, before its writes (`VisitStore._claim`)
        stats["commit_owner_index_reads_ms_avg"] = round(sum(claims) / len(claims))
    return stats


def cpu_ms_per_visit(visits: list) -> float:
    """Gateway CPU per visit without I/O: parse + rebuild for the archive + Parquet + ack."""
    body = build_batch(visits)
    started = time.process_time()
    for _ in range(5):
        outcome = parse_request(body)
        build_batch(outcome.visits)
        month_files(outcome.visits, datetime.now())
        build_ack(outcome)
    return round((time.process_time() - started) * 1000 / (5 * len(visits)), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--batched", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    # a scratch namespace (own HDFS root and HBase tables), dropped afterwards: the benchmark
    # leaves nothing of the thousands of visits it stores
    with tempfile.TemporaryDirectory() as tmp, \
            scratch_namespace("hl7bench", Path(tmp) / "home") as (_settings, env):
        gw = Gateway(Path(tmp), PORT, env).start()
        try:
            warm = live_feed(20, seed=1)
            run(gw, [build_batch(warm[i:i + 10]) for i in (0, 10)], 1)
            singles = live_feed(args.single, seed=2)
            single_s = run(gw, [build_batch([v]) for v in singles], 1)
            many = live_feed(args.batched, seed=3)
            bodies = [build_batch(many[i:i + args.batch]) for i in range(0, len(many), args.batch)]
            batched_s = run(gw, bodies, args.clients)
        finally:
            gw.stop()
        commits = commit_stats(gw.log_file.read_text())
    result = {
        "single_visits": args.single, "single_seconds": round(single_s, 2),
        "single_visits_per_s": round(args.single / single_s, 1),
        "batched_visits": args.batched, "batch_size": args.batch, "clients": args.clients,
        "batched_seconds": round(batched_s, 2),
        "batched_visits_per_s": round(args.batched / batched_s, 1),
        "target_visits_per_s": 1000,
        **commits,
        "cpu_ms_per_visit": cpu_ms_per_visit(many[:args.batch]),
    }
    record(BENCH_DIR, result, ["single_visits_per_s", "batched_visits_per_s", "batch_size",
                               "clients", "single_visits", "batched_visits"])
    print(result)


if __name__ == "__main__":
    main()
