"""The embedded cluster's daemons as a table: what each runs, its heap, ports and start stage.

`stage` orders start-up: everything in one stage starts together, and the supervisor waits for
that stage's health check before starting the next. ZooKeeper and Spark do not depend on HDFS,
so they start with the NameNode.

Addresses: the Hadoop, HBase and ZooKeeper sockets are bound by their generated configuration
(`deploy.configs`); Spark's and Thrift's by the arguments and environment here: `--host` (RPC),
SPARK_LOCAL_IP (the web UIs, which otherwise bind 0.0.0.0), `-b` (Thrift). All of them are
`Settings.cluster_bind`.

With `yarn = true` a ResourceManager (with the NameNode) and a NodeManager (with the
DataNodes) take the place of the Spark standalone master and worker: jobs then run on YARN.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deploy.configs import (
    NAMENODE_HTTP_PORT,
    NM_PORTS,
    RM_PORTS,
    SPARK_WORKER_WEBUI_PORT,
    datanode_ports,
    rm_address,
)
from deploy.jvm import java_home
from pacs_hdfs.settings import Settings


@dataclass(frozen=True)
class Daemon:
    name: str            # unique, used by stop-node/start-node and for log/pid files
    kind: str            # key into Settings.heap_mb
    classpath: str       # "hadoop" | "hbase" | "spark"
    main: str            # Java main class
    args: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    stage: int = 0
    datanode: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


def daemon_table(s: Settings) -> list[Daemon]:
    """All daemons of the embedded cluster for these settings, in start order."""
    nn_rpc_port = int(s.namenode_rpc.rsplit(":", 1)[1])
    # spark_master may say "yarn" (then no standalone daemons are run)
    spark_port = int(s.spark_master.rsplit(":", 1)[1]) if not s.yarn else 0
    spark_webui_port = int(s.spark_master_webui.rsplit(":", 1)[1])
    host = s.cluster_host
    spark_env = {"SPARK_LOCAL_IP": s.cluster_bind}
    spark_conf = ("--properties-file", "{conf}/spark-defaults.conf")
    table = [
        Daemon("namenode", "namenode", "hadoop",
               "org.apache.hadoop.hdfs.server.namenode.NameNode",
               ports=(nn_rpc_port, NAMENODE_HTTP_PORT), stage=0),
        Daemon("zookeeper", "zookeeper", "hbase",
               "org.apache.zookeeper.server.quorum.QuorumPeerMain",
               args=("{conf}/zoo.cfg",), ports=(s.zookeeper_port,), stage=0),
    ]
    if s.yarn:
        table.append(Daemon("resourcemanager", "resourcemanager", "hadoop",
                            "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
                            ports=(*RM_PORTS.values(), rm_address(s)[1]), stage=0))
    else:
        table.append(Daemon("spark-master", "spark-master", "spark",
                            "org.apache.spark.deploy.master.Master",
                            args=("--host", host, "--port", str(spark_port),
                                  "--webui-port", str(spark_webui_port), *spark_conf),
                            ports=(spark_port, spark_webui_port), stage=0,
                            extra_env=spark_env))
    for i in range(1, s.datanodes + 1):
        p = datanode_ports(i)
        table.append(Daemon(f"datanode-{i}", "datanode", "hadoop",
                            "org.apache.hadoop.hdfs.server.datanode.DataNode",
                            ports=(p["data"], p["http"], p["ipc"]), stage=1, datanode=i))
    if s.yarn:
        table.append(Daemon("nodemanager", "nodemanager", "hadoop",
                            "org.apache.hadoop.yarn.server.nodemanager.NodeManager",
                            ports=tuple(NM_PORTS.values()), stage=1,
                            extra_env={"JAVA_HOME": java_home()}))
    else:
        table.append(Daemon("spark-worker", "spark-worker", "spark",
                            "org.apache.spark.deploy.worker.Worker",
                            args=("--host", host, "--cores", str(s.spark_worker_cores),
                                  "--memory", s.spark_worker_memory,
                                  "--webui-port", str(SPARK_WORKER_WEBUI_PORT), *spark_conf,
                                  "--work-dir", str(s.path("data", "spark-work")),
                                  s.spark_master),
                            ports=(SPARK_WORKER_WEBUI_PORT,), stage=1, extra_env=spark_env))
    table += [
        Daemon("hbase-master", "hbase-master", "hbase",
               "org.apache.hadoop.hbase.master.HMaster", args=("start",),
               ports=(16000,), stage=2),
        Daemon("hbase-regionserver", "hbase-regionserver", "hbase",
               "org.apache.hadoop.hbase.regionserver.HRegionServer", args=("start",),
               ports=(16020,), stage=2),
        Daemon("hbase-thrift", "hbase-thrift", "hbase",
               "org.apache.hadoop.hbase.thrift.ThriftServer",
               args=("-p", str(s.thrift_port), "-b", s.cluster_bind, "start"),
               ports=(s.thrift_port,), stage=2),
    ]
    return table


def by_name(s: Settings, name: str) -> Daemon:
    for d in daemon_table(s):
        if d.name == name:
            return d
    names = ", ".join(d.name for d in daemon_table(s))
    raise KeyError(f"unknown daemon {name!r}; known: {names}")


def pyspark_home() -> Path:
    import pyspark
    return Path(pyspark.__file__).resolve().parent
