"""The fault battery (tests/fault_battery.py) against the real cluster, through the real path
(modality -> hospital edge -> STOW-RS -> gateway -> HDFS/HBase): each fault `PACS_FAULT_RUNS` times (default 2 here; `benchmarks/faults/run_battery.py`
runs 10), randomised (seeded, the seed is in the failure message). Every acknowledged object
must be retrievable by sha256, every other one absent or intact, and orphaned bytes reclaimed."""
from __future__ import annotations

import json
import os
import random

import pytest

from tests.fault_battery import FAULTS, run_once
from tests.portal_support import free_port

pytestmark = pytest.mark.cluster
RUNS = int(os.environ.get("PACS_FAULT_RUNS", "2"))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_acknowledged_objects_survive(fault, run, cluster, settings, tmp_path):
    seed = random.SystemRandom().randrange(1 << 30)
    result = run_once(FAULTS[fault], cluster, settings, tmp_path / "run", seed, free_port())
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
