"""The one place where HDFS, HBase and Spark clients are built from the settings."""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from pacs_hdfs.settings import Settings, get_settings


_stores: dict[tuple[str, int], object] = {}
_stores_lock = threading.Lock()


def _cached(kind: str, settings: Settings, build):
    with _stores_lock:
        key = (kind, id(settings))
        if key not in _stores:
            _stores[key] = build(settings)
        return _stores[key]


def hdfs(settings: Settings | None = None):
    """The process-wide HDFS store (WebHDFS) for these settings."""
    from pacs_hdfs.hdfs_store import HdfsStore
    return _cached("hdfs", settings or get_settings(), HdfsStore)


def hbase(settings: Settings | None = None):
    """The process-wide HBase store (Thrift connection pool) for these settings."""
    from pacs_hdfs.hbase_store import HBaseStore
    return _cached("hbase", settings or get_settings(), HBaseStore)


_spark_lock = threading.Lock()


def spark_session(settings: Settings | None = None, app_name: str = "pacs", **conf: str):
    """A SparkSession on the configured master, with HDFS and the venv's Python wired in.

    The driver listens on `cluster_bind` only (its RPC and block manager), and has no web UI
    (4040): nothing of ours reads it, and it would show and kill jobs unauthenticated. A
    caller that turns the UI on with `spark.ui.enabled` gets it bound to `cluster_bind`
    (SPARK_LOCAL_IP, read by the driver JVM this call starts) and without kill links.
    """
    import sys

    from pyspark.sql import SparkSession
    import os
    s = settings or get_settings()
    # Executors must run the venv's Python (numpy, numba, our packages); PySpark honours the
    # environment variable even where it ignores spark.pyspark.python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", s.cluster_bind)
    with _spark_lock:
        builder = (SparkSession.builder.master(s.spark_master).appName(app_name)
                   .config("spark.pyspark.python", sys.executable)
                   .config("spark.pyspark.driver.python", sys.executable)
                   .config("spark.executor.memory", s.spark_executor_memory)
                   .config("spark.driver.memory", "1g")
                   .config("spark.hadoop.fs.defaultFS", s.namenode_rpc)
                   .config("spark.hadoop.dfs.replication", str(s.effective_replication))
                   .config("spark.hadoop.dfs.client.use.datanode.hostname", "false")
                   .config("spark.sql.shuffle.partitions", "8")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.killEnabled", "false")
                   .config("spark.driver.host", s.cluster_host)
                   .config("spark.driver.bindAddress", s.cluster_bind))
        for k, v in conf.items():
            builder = builder.config(k, v)
        return builder.getOrCreate()


@contextmanager
def executor_python(sc):
    """Build Python RDDs with this interpreter (the venv: numba, ducc0, the project).

    A driver started as plain Python (the job runner) hands executors PYSPARK_PYTHON or
    "python3"; `spark.pyspark.python` only counts under spark-submit. Restored afterwards.
    """
    previous = sc.pythonExec
    sc.pythonExec = sys.executable
    try:
        yield
    finally:
        sc.pythonExec = previous
