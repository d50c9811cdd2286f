"""The fault battery (tests/fault_battery.py) against the real cluster, through the real path
(modality -> hospital edge -> STOW-RS -> gateway -> HDFS/HBase), in a scratch namespace: each
fault `PACS_FAULT_RUNS` times (default 2 here; `benchmarks/faults/run_battery.py` runs 10),
randomised (seeded, the seed is in the failure message). Every acknowledged object must be
retrievable by sha256, every other one absent or intact, and orphaned bytes reclaimed; after
the whole battery `pacs fsck` (the Spark job) must find the namespace clean."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from tests.fault_battery import FAULTS, run_once
from tests.namespace_support import scratch_namespace
from tests.portal_support import free_port

pytestmark = pytest.mark.cluster
RUNS = int(os.environ.get("PACS_FAULT_RUNS", "2"))


@pytest.fixture(scope="module")
def namespace(cluster, tmp_path_factory):
    with scratch_namespace("faults", tmp_path_factory.mktemp("faults-home")) as ns:
        yield ns


@pytest.mark.timeout(900)
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_acknowledged_objects_survive(fault, run, cluster, namespace, tmp_path):
    seed = random.SystemRandom().randrange(1 << 30)
    result = run_once(FAULTS[fault], cluster, namespace[0], tmp_path / "run", seed, free_port())
    report = os.environ.get("PACS_FAULT_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps(result.as_dict()) + "\n")
    summary = json.dumps(result.as_dict())
    assert result.acknowledged + result.failed_status + result.no_answer == result.sent, summary
    assert result.forwarded, summary
    assert not result.lost, summary
    assert not result.bad_unacked, summary
    assert result.orphans_left == 0, summary
    assert result.retrievable == result.acknowledged, summary


@pytest.mark.timeout(900)
def test_fsck_finds_the_archive_clean_after_the_battery(namespace):
    """Every index row of the battery's namespace against its bytes, orphans, unfinished
    files and commits: nothing to report (grace 0: every file counts). The derived counters
    may be over by an increment whose answer was lost; `--repair` recounts them, then clean."""
    _s, env = namespace
    found = json.loads(fsck(env).stdout)
    assert found["totals"]["objects_checked"] > 0
    problems = {k: v for k, v in found["problems"].items() if v}
    if set(problems) == {"counter_mismatches"}:
        # Known gap, not a loss: an increment whose answer was lost (Thrift/RegionServer
        # stopped, gateway killed before its l:counted mark) may have been applied, and the
        # re-send counts again. Every object and index row checked out; the derived counters
        # are recounted by --repair, after which the archive must be clean.
        print("counter mismatches repaired:", json.dumps(problems)[:2000])
        fsck(env, "--repair")
        found = json.loads(fsck(env).stdout)
        problems = {k: v for k, v in found["problems"].items() if v}
    assert found["clean"], json.dumps({"problems": problems, "totals": found["totals"]})[:4000]


def fsck(env, *flags: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "fsck", "--json", "--grace", "0",
                          *flags], capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode in (0, 1), out.stderr[-3000:]
    return out
