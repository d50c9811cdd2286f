"""A scratch namespace for integration tests that need exact totals: their own HDFS root, HBase
table prefix and `$PACS_HOME` (so also their own job runner, running this checkout's code).
Everything is removed afterwards."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch_namespace(name: str, home: Path):
    """Yields (Settings, environment for `pacs` subprocesses) of a fresh namespace."""
    from deploy.supervisor import Supervisor
    from pacs_hdfs.settings import Settings
    from pacs_hdfs.storage import drop_storage, init_storage
    tag = f"{name}{os.getpid()}{uuid.uuid4().hex[:4]}"
    for d in ("run", "logs"):
        (home / d).mkdir(parents=True, exist_ok=True)
    s = Settings(hdfs_root=f"/test-{tag}", hbase_table_prefix=f"test{tag}", home=home)
    env = {**os.environ, "PACS_HDFS_ROOT": s.hdfs_root, "PACS_HBASE_TABLE_PREFIX":
           s.hbase_table_prefix, "PACS_HOME": str(home)}
    init_storage(s)
    try:
        yield s, env
    finally:
        Supervisor(s).stop_daemon("job-runner")
        drop_storage(s)


@contextmanager
def scratch_namespace_env(name: str, home: Path):
    """`scratch_namespace` with its variables in os.environ while it lasts (so subprocesses:
    edge, gateway, portal, `pacs` commands, use it); yields (Settings, environment)."""
    with scratch_namespace(name, home) as (s, env), namespace_environ(env):
        yield s, env


@contextmanager
def environment(**values: str | None):
    """Set (None: unset) environment variables that subprocesses started meanwhile inherit;
    restore them after."""
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def namespace_environ(env: dict):
    """os.environ with the namespace variables of `env` (HDFS root, HBase prefix, $PACS_HOME,
    those it has) while it lasts, so subprocesses started meanwhile use that namespace."""
    keys = ("PACS_HDFS_ROOT", "PACS_HBASE_TABLE_PREFIX", "PACS_HOME")
    return environment(**{k: str(env[k]) for k in keys if k in env})
