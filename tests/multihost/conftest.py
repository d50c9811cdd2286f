"""The multi-host topology as a session fixture: built, started and torn down by the test run
itself (`make test-multihost`). A machine that cannot build it fails the stage with the reason
(never a silent skip): the stage exists to show that nothing assumes one host."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.multihost.topology import Topology, TopologyUnavailable, require

REPO = Path(__file__).resolve().parents[2]
#: where the run's timings go (read by benchmarks/yarn/ and quoted in the report)
TIMINGS = Path(os.environ.get("PACS_MULTIHOST_TIMINGS", REPO / ".cache" / "multihost-timings.json"))


@pytest.fixture(scope="session")
def topology():
    try:
        require()
    except TopologyUnavailable as e:
        pytest.fail(f"multi-host stage cannot run on this machine: {e}", pytrace=False)
    reuse = os.environ.get("PACS_MULTIHOST_REUSE")   # development: a topology left running
    if reuse:                                          # by PACS_MULTIHOST_KEEP=1
        yield Topology(Path(reuse))
        return
    topo = Topology(Path(tempfile.mkdtemp(prefix="pacs-multihost-")))
    t0 = time.monotonic()
    try:
        topo.create()
        topo.start_cluster()
        topo.timings["topology_up_s"] = round(time.monotonic() - t0, 1)
        topo.start_services()
        topo.timings["topology_and_services_s"] = round(time.monotonic() - t0, 1)
        yield topo
    finally:
        t1 = time.monotonic()
        if os.environ.get("PACS_MULTIHOST_KEEP") != "1":
            topo.destroy()
        topo.timings["teardown_s"] = round(time.monotonic() - t1, 1)
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text(json.dumps({"load_avg": os.getloadavg(), **topo.timings}, indent=1))
