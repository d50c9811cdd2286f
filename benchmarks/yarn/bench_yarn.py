"""Jobs on YARN (the multi-host namespace topology) vs the embedded standalone warm runner, same
data, same run (issue 16: "job timings on YARN vs the standalone warm runner").

1. Builds the topology of tests/multihost/topology.py (master, two workers, service host) and
   times its start: network, each daemon stage, `pacs init` and the MDC services.
2. Generates one visits data set and uploads it to both clusters (the topology's HDFS and the
   tests' embedded cluster at $PACS_TEST_HOME, default .pacs-test, which must be up).
3. Runs each job kind `--reps` times on both, alternating, timing submit -> result from the
   client's side (`pacs job submit --wait --json`): on YARN every job is its own Spark
   application (AM + executors started per job); standalone, the warm runner's session is
   reused. The first standalone run of a kind also warms it; both medians are reported.
4. Writes results.json and a row of RESULTS.md (load average included), deletes the data it
   uploaded and tears the topology down.

    .venv/bin/python benchmarks/yarn/bench_yarn.py [--visits 50000] [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.common import record  # noqa: E402
from tests.multihost.topology import PACS, SERVICE, Topology  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
TEST_HOME = Path(os.environ.get("PACS_TEST_HOME") or REPO / ".pacs-test")
PERIOD = ["--date-from", "2023-01-01", "--date-to", "2023-12-31"]
KINDS = {
    "spark-selftest": lambda src: ["--n", "100000", "--partitions", "4"],
    "icd10-age": lambda src: [*PERIOD, "--source", src, "--bins", "0,18,40,65,200"],
    "icd10-cases": lambda src: [*PERIOD, "--source", src, "--codes", "E11,J18.9",
                                "--subperiods", "4"],
}


def timed_submit(run, kind: str, args: list[str]) -> float:
    t0 = time.monotonic()
    r = run(["job", "submit", kind, *args, "--wait", "--json"])
    took = time.monotonic() - t0
    if r.returncode != 0 or json.loads(r.stdout)["state"] != "succeeded":
        raise RuntimeError(f"{kind}: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    return round(took, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--visits", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    from analytics_jobs.icd10.generator import generate_visits
    from analytics_jobs.icd10.upload import upload_dataset
    from pacs_hdfs import clients
    from pacs_hdfs.settings import Settings

    embedded = Settings(home=TEST_HOME)
    env_embedded = {**os.environ, "PACS_HOME": str(TEST_HOME)}

    def run_embedded(cmd):
        return subprocess.run([PACS, *cmd], env=env_embedded, capture_output=True, text=True,
                              timeout=1800)

    topo = Topology(Path(tempfile.mkdtemp(prefix="pacs-bench-yarn-")))
    load_before = os.getloadavg()
    src = f"tmp/bench-yarn-{uuid.uuid4().hex[:8]}"
    out: dict = {"visits": args.visits, "reps": args.reps, "load_before": load_before}
    try:
        t0 = time.monotonic()
        topo.create()
        topo.start_cluster()
        out["topology_up_s"] = round(time.monotonic() - t0, 1)
        topo.start_services()
        out["topology_and_services_s"] = round(time.monotonic() - t0, 1)
        out["startup"] = dict(topo.timings)

        def run_yarn(cmd):
            return topo.pacs(SERVICE, *cmd, check=False, timeout=1800)

        with tempfile.TemporaryDirectory() as local:
            generate_visits(Path(local), args.visits, months=12, seed=3)
            upload_dataset(clients.hdfs(topo.settings(SERVICE)), Path(local), src)
            upload_dataset(clients.hdfs(embedded), Path(local), src)

        times: dict[str, dict[str, list[float]]] = {}
        for kind, make in KINDS.items():
            times[kind] = {"yarn": [], "standalone": []}
            for _ in range(args.reps):
                times[kind]["yarn"].append(timed_submit(run_yarn, kind, make(src)))
                times[kind]["standalone"].append(timed_submit(run_embedded, kind, make(src)))
            print(kind, times[kind], flush=True)
        out["times_s"] = times
        out["median_s"] = {k: {m: statistics.median(v) for m, v in t.items()}
                           for k, t in times.items()}
        out["yarn_over_standalone"] = {k: round(m["yarn"] / m["standalone"], 1)
                                       for k, m in out["median_s"].items()}
    finally:
        for s in (embedded, topo.settings(SERVICE)):
            try:
                clients.hdfs(s).delete(src, recursive=True)
            except Exception:  # noqa: BLE001 - the topology may be gone already
                pass
        topo.destroy()
        out["load_after"] = os.getloadavg()
    out["summary"] = ", ".join(f"{k} {m['yarn']:.0f}/{m['standalone']:.1f} s"
                               for k, m in out.get("median_s", {}).items())
    record(BENCH_DIR, out, ["topology_up_s", "topology_and_services_s", "summary",
                            "yarn_over_standalone"])
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
