"""The one place where HDFS, HBase and Spark clients are built from the settings."""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

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


def yarn_rm(settings: Settings | None = None):
    """The ResourceManager REST client (HA: every RM URL, the active one remembered)."""
    from pacs_hdfs.yarn_rm import YarnRM
    return _cached("yarn", settings or get_settings(),
                   lambda s: YarnRM(s.yarn_rm_urls, user=s.hdfs_user))


# --- Spark ------------------------------------------------------------------------------------
_spark_lock = threading.Lock()

#: settings fields that, when set explicitly (pacs.toml, PACS_*, arguments), are Spark
#: properties of their own and override spark-defaults.conf
EXPLICIT_SPARK_FIELDS = {
    "spark_executor_memory": ("spark.executor.memory", lambda s: s.spark_executor_memory),
    "yarn_queue": ("spark.yarn.queue", lambda s: s.yarn_queue),
    "replication": ("spark.hadoop.dfs.replication", lambda s: str(s.effective_replication)),
    "spark_driver_host": ("spark.driver.host", lambda s: s.spark_driver_host),
    "spark_driver_bind": ("spark.driver.bindAddress", lambda s: s.spark_driver_bind),
}


def spark_master(s: Settings) -> str:
    """The master of our sessions: "yarn" when jobs run on YARN (with `yarn = true`,
    spark_master still names the embedded standalone master), else spark_master."""
    return "yarn" if s.on_yarn else s.spark_master


def admin_spark_conf(s: Settings) -> dict[str, str]:
    """What the cluster's administrator set in spark-defaults.conf (SPARK_CONF_DIR)."""
    from pacs_hdfs.hadoop_conf import read_spark_defaults
    spark_dir = s.cluster_conf_dirs[2]
    f = spark_dir / "spark-defaults.conf" if spark_dir else None
    return read_spark_defaults(f) if f and f.is_file() else {}


def cluster_target(s: Settings) -> tuple[str, int]:
    """A (host, port) of the cluster the driver talks to: the Spark master, else the first
    ResourceManager, else the NameNode; used to find our address on the route to it."""
    from urllib.parse import urlsplit
    if not s.on_yarn and s.spark_master.startswith("spark://"):
        first = s.spark_master[len("spark://"):].split(",")[0]
        u = urlsplit(f"spark://{first}")
        return u.hostname or "127.0.0.1", u.port or 7077
    for url in (s.yarn_rm_urls if s.on_yarn else []) + s.webhdfs_urls:
        u = urlsplit(url)
        if u.hostname:
            return u.hostname, u.port or 80
    return "127.0.0.1", 7077


def route_address(host: str, port: int) -> str:
    """This host's address on the route to host:port (no packet is sent: a UDP socket's
    connect only picks the source address)."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            return sock.getsockname()[0]
    except OSError:
        return socket.gethostbyname(socket.gethostname())


def driver_addresses(s: Settings, admin: dict[str, str]) -> tuple[str, str]:
    """(spark.driver.host, spark.driver.bindAddress) our own layer proposes.

    Embedded: the cluster's bind address (loopback by default). A real cluster: the address
    of the interface that routes to its master / ResourceManager, so executors on other hosts
    can connect back; spark-defaults' or the settings' explicit values win over this."""
    if s.embedded:
        return s.spark_driver_host or s.cluster_host, s.spark_driver_bind or s.cluster_bind
    host = s.spark_driver_host or admin.get("spark.driver.host") or route_address(
        *cluster_target(s))
    return host, s.spark_driver_bind or admin.get("spark.driver.bindAddress") or host


def spark_conf(s: Settings, app_name: str, explicit: dict[str, str] | None = None,
               admin: dict[str, str] | None = None,
               shipping: dict[str, str] | None = None) -> dict[str, str]:
    """The Spark properties of our sessions, in layers (later wins):

    1. ours: sensible values for this product (no UI, few shuffle partitions, driver address);
    2. the administrator's spark-defaults.conf;
    3. settings named explicitly (executor memory, queue, driver host...) and the caller's
       own properties (the runner's cores, scheduler mode);
    4. what must hold for our code to work: master, app name, fs.defaultFS (settings already
       took these from the conf directories unless pacs.toml named them), and the shipped
       environment (spark.archives is appended to, not replaced).
    """
    from pacs_hdfs.hadoop_conf import ClusterConf, hdfs_client_conf
    admin = admin_spark_conf(s) if admin is None else admin
    host, bind = driver_addresses(s, admin)
    ours = {
        "spark.executor.memory": s.spark_executor_memory,
        "spark.driver.memory": "1g",
        "spark.hadoop.dfs.replication": str(s.effective_replication),
        "spark.hadoop.dfs.client.use.datanode.hostname": "false",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.killEnabled": "false",
        "spark.driver.host": host,
        "spark.driver.bindAddress": bind,
        "spark.pyspark.python": _PYSPARK_PYTHON_AT_START or sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if not s.embedded:   # executors without the client configuration still resolve HA names
        dirs = s.cluster_conf_dirs
        c = ClusterConf.load(dirs[0])
        ours.update({f"spark.hadoop.{k}": v for k, v in hdfs_client_conf(c.core, c.hdfs).items()})
    if s.on_yarn:
        ours["spark.yarn.queue"] = s.yarn_queue
        ours["spark.executor.instances"] = "2"
    set_here = {key: value(s) for f, (key, value) in EXPLICIT_SPARK_FIELDS.items()
                if f in s.model_fields_set and value(s) is not None}
    merged = {**ours, **admin, **set_here, **(explicit or {})}
    merged.update({"spark.master": spark_master(s), "spark.app.name": app_name,
                   "spark.hadoop.fs.defaultFS": s.namenode_rpc})
    if shipping:
        for key, value in shipping.items():
            if key == "spark.archives" and merged.get(key):
                merged[key] = f"{merged[key]},{value}"
            elif key == "spark.yarn.archive" and (merged.get(key) or merged.get("spark.yarn.jars")):
                continue                        # the administrator's Spark jars win
            else:
                merged[key] = value
        merged["spark.pyspark.python"] = SHIPPED_PYTHON
        merged["spark.executorEnv.PYSPARK_PYTHON"] = SHIPPED_PYTHON
    return merged


#: an interpreter the environment named before we set PYSPARK_PYTHON ourselves
_PYSPARK_PYTHON_AT_START = os.environ.get("PYSPARK_PYTHON")
#: the interpreter of the shipped environment, relative to an executor's working directory
SHIPPED_PYTHON = "./env/bin/python"


def _client_conf_dir(s: Settings) -> Path:
    """A minimal Hadoop client configuration for YARN when the settings name no conf dir
    (spark-submit insists on HADOOP_CONF_DIR for master 'yarn'): fs.defaultFS and the RM host
    of the settings, standard RM ports."""
    from urllib.parse import urlsplit
    folder = s.path("conf", "pacs-client")
    folder.mkdir(parents=True, exist_ok=True)
    rm = urlsplit(s.yarn_rm_urls[0]) if s.yarn_rm_urls else None
    props = {"core-site.xml": {"fs.defaultFS": s.namenode_rpc},
             "yarn-site.xml": ({"yarn.resourcemanager.hostname": rm.hostname,
                                "yarn.resourcemanager.webapp.address": rm.netloc}
                               if rm else {})}
    for name, kv in props.items():
        body = "".join(f"  <property><name>{k}</name><value>{v}</value></property>\n"
                       for k, v in kv.items())
        (folder / name).write_text(f"<?xml version=\"1.0\"?>\n<configuration>\n{body}"
                                   f"</configuration>\n")
    return folder


def spark_session(settings: Settings | None = None, app_name: str = "pacs", **conf: str):
    """A SparkSession on the configured master (standalone or YARN), with HDFS wired in.

    Properties: `spark_conf` (ours < spark-defaults.conf < explicit settings and `conf` <
    master/fs). Embedded, the driver listens on `cluster_bind` only and has no web UI (4040):
    nothing of ours reads it, and it would show and kill jobs unauthenticated; a caller or an
    administrator that turns the UI on gets it bound to the driver's bind address
    (SPARK_LOCAL_IP) and without kill links unless they say otherwise. On a remote cluster the
    driver listens on the address that routes to it. When the environment is shipped
    (`ships_python`: on YARN by default), executors run `./env/bin/python` from the packed venv
    (`spark.archives`) and import our code from a zip (`addPyFile`); else this venv's Python,
    which must then exist at the same path on every node.
    """
    from pyspark.sql import SparkSession
    s = settings or get_settings()
    dirs = s.cluster_conf_dirs
    if dirs[0] and not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
        os.environ["HADOOP_CONF_DIR"] = str(dirs[0])     # the driver JVM's classpath (HA, YARN)
    if s.on_yarn and not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
        os.environ["HADOOP_CONF_DIR"] = str(_client_conf_dir(s))
    if dirs[2] and not os.environ.get("SPARK_CONF_DIR"):
        os.environ["SPARK_CONF_DIR"] = str(dirs[2])
    shipping, code_zip = None, None
    if s.ships_python:
        from pacs_hdfs.python_env import shipping_conf
        shipping, code_zip = shipping_conf(s)
    merged = spark_conf(s, app_name, conf, shipping=shipping)
    # PySpark hands executors PYSPARK_PYTHON, whatever spark.pyspark.python says
    os.environ["PYSPARK_PYTHON"] = merged["spark.pyspark.python"]
    os.environ.setdefault("SPARK_LOCAL_IP", merged["spark.driver.bindAddress"])
    with _spark_lock:
        builder = SparkSession.builder.master(merged["spark.master"]).appName(app_name)
        for k, v in merged.items():
            builder = builder.config(k, v)
        session = builder.getOrCreate()
        if code_zip is not None:
            _add_code(session.sparkContext, code_zip)
        return session


def _add_code(sc, code_zip) -> None:
    """Ship our packages to the executors without putting the copy on the driver's path
    (the driver keeps importing this checkout)."""
    before = list(sys.path)
    sc.addPyFile(str(code_zip))
    sys.path[:] = before


@contextmanager
def executor_python(sc):
    """Build Python RDDs with the executors' interpreter: this venv's Python, or the shipped
    environment's (`./env/bin/python`) when the environment travels with the job.

    A driver started as plain Python (the job runner) hands executors PYSPARK_PYTHON or
    "python3"; `spark.pyspark.python` only counts under spark-submit. Restored afterwards.
    """
    previous = sc.pythonExec
    sc.pythonExec = sc.getConf().get("spark.pyspark.python", None) or sys.executable
    try:
        yield
    finally:
        sc.pythonExec = previous
