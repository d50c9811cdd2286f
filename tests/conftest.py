"""Shared fixtures. The real embedded cluster is started once per session, only when a test
marked `cluster` asks for it; a cluster that is already healthy (e.g. from `make demo`) is reused
and left running."""
from __future__ import annotations

import os

import pytest


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
    # Tear down at the end only a cluster this session started from nothing: a cluster that is
    # merely unhealthy for a moment (another run's fault test) belongs to someone else.
    started_here = not any(d["alive"] for d in status["daemons"])
    if not status["healthy"]:
        sup.up(progress=lambda m: print(f"[cluster] {m}", flush=True))
    init_storage(settings)
    yield sup
    if started_here and os.environ.get("PACS_KEEP_CLUSTER") != "1":
        sup.down()
