"""Shared fixtures. The real embedded cluster is started once per session, only when a test
marked `cluster` asks for it; a cluster of the tests' own home that is already healthy is reused
and left running.

The tests have their own `$PACS_HOME` (`.pacs-test`, or `$PACS_TEST_HOME`), never the demo's
(`.pacs`): a test run must not mix its users, jobs and data into a demo. The embedded cluster's
ports are fixed, so the demo's cluster and the tests' cannot run at once; the `cluster` fixture
says so instead of talking to the demo's daemons.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_HOME = Path(os.environ.get("PACS_TEST_HOME") or REPO / ".pacs-test")
os.environ["PACS_HOME"] = str(TEST_HOME)


@pytest.fixture(scope="session")
def settings():
    from pacs_hdfs.settings import get_settings
    return get_settings()


@pytest.fixture(scope="session")
def cluster(settings):
    """A healthy embedded cluster with `pacs init` done; yields the Supervisor."""
    from deploy.supervisor import Supervisor
    from pacs_hdfs.storage import init_storage

    sup = Supervisor(settings)
    status = sup.status()
    _refuse_a_foreign_cluster(sup, status)
    # Tear down at the end only a cluster this session started from nothing: a cluster that is
    # merely unhealthy for a moment (another run's fault test) belongs to someone else.
    started_here = not any(d["alive"] for d in status["daemons"])
    if not status["healthy"]:
        sup.up(progress=lambda m: print(f"[cluster] {m}", flush=True))
    init_storage(settings, upgrade=True)   # the tests' own archive follows the code
    yield sup
    if started_here and os.environ.get("PACS_KEEP_CLUSTER") != "1":
        sup.down()


def _refuse_a_foreign_cluster(sup, status: dict) -> None:
    """The cluster ports answer but none of the daemons is ours: another home's cluster (the
    demo's) holds them. Say which, rather than writing into it or failing on port clashes."""
    from deploy.health import hdfs_health
    if any(d["alive"] for d in status["daemons"]) or not hdfs_health(sup.s).reachable:
        return
    pytest.exit(f"the embedded cluster's ports are taken by a cluster that is not the tests' "
                f"(tests use $PACS_HOME={sup.s.home_abs}); stop the other one first, e.g. "
                f"`PACS_HOME=.pacs .venv/bin/pacs down`", returncode=3)
