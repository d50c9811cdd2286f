"""Generated Hadoop / HBase / ZooKeeper configuration for the embedded cluster.

Each daemon gets its own conf directory under `$PACS_HOME/conf/<daemon>/`, first on its
classpath, so DataNodes on one host can differ in ports and data directories. Values are
tuned for one small machine: fast heartbeats so a stopped DataNode is noticed in seconds, stale
nodes avoided for reads and writes, and best-effort pipelines so writes go on with one DataNode
down.

Every listener binds `Settings.cluster_bind` (127.0.0.1 by default), set explicitly for each
socket a daemon opens (`*-bind-host`, `*.ipc.address`, `clientPortAddress`, ...) rather than
left to a daemon's default, several of which are 0.0.0.0. Web UIs that nothing of ours uses are
off (HBase info ports, ZooKeeper's AdminServer, Spark's REST submission port); the Spark
master's web UI stays, on the bind address, because the health check reads its `/json/`.
`tests/security/test_binds.py` lists the running cluster's sockets and fails on any other.
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from pacs_hdfs.settings import Settings

NAMENODE_HTTP_PORT = 9870
SPARK_WORKER_WEBUI_PORT = 8081

#: ResourceManager ports (Hadoop's defaults); its web/REST port comes from `yarn_rm_url`
RM_PORTS = {"client": 8032, "scheduler": 8030, "tracker": 8031, "admin": 8033}
#: NodeManager ports: container manager (default 0 = random, fixed here so a host's listeners
#: are known in advance), localizer, web (container logs)
NM_PORTS = {"containers": 8041, "localizer": 8040, "web": 8042}
#: what one NodeManager offers YARN, sized for a small machine: a Spark executor of 512 MB asks
#: for 896 MB (its 384 MB overhead included), an application master in client mode for 896 MB,
#: so one NM holds a job's AM and two executors; vcores are advertised beyond the 2 real cores
#: (as the standalone worker's are) so that two jobs can run at once
NM_MEMORY_MB = 3072
NM_VCORES = 4


def datanode_ports(index: int) -> dict[str, int]:
    """Ports of DataNode `index` (1-based): data transfer, HTTP (WebHDFS redirects), IPC."""
    return {"data": 9800 + index, "http": 9810 + index, "ipc": 9820 + index}


def hadoop_xml(props: dict[str, object]) -> str:
    rows = "\n".join(
        f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>"
        for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}\n</configuration>\n'


def core_site(s: Settings) -> dict[str, object]:
    return {
        "fs.defaultFS": s.namenode_rpc,
        "hadoop.tmp.dir": s.path("data", "hadoop-tmp"),
        "hadoop.http.staticuser.user": s.hdfs_user,
        "hadoop.proxyuser.root.hosts": "*",
        "hadoop.proxyuser.root.groups": "*",
        "ipc.client.connect.max.retries": 3,
        "ipc.client.connect.retry.interval": 500,
    }


def hdfs_site(s: Settings, datanode: int | None = None) -> dict[str, object]:
    props: dict[str, object] = {
        "dfs.replication": s.effective_replication,
        "dfs.namenode.name.dir": s.path("data", "namenode"),
        "dfs.namenode.rpc-address": s.namenode_rpc.removeprefix("hdfs://"),
        "dfs.namenode.http-address": f"{s.cluster_host}:{NAMENODE_HTTP_PORT}",
        # the sockets bind here whatever the advertised addresses say
        **{f"dfs.namenode.{k}-bind-host": s.cluster_bind
           for k in ("rpc", "servicerpc", "lifeline.rpc", "http", "https")},
        "dfs.http.policy": "HTTP_ONLY",
        "dfs.webhdfs.enabled": "true",
        "dfs.permissions.enabled": "false",
        "dfs.namenode.safemode.extension": 0,
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        "dfs.heartbeat.interval": 1,
        "dfs.namenode.heartbeat.recheck-interval": 5000,
        "dfs.namenode.stale.datanode.interval": 3000,
        "dfs.namenode.avoid.read.stale.datanode": "true",
        "dfs.namenode.avoid.write.stale.datanode": "true",
        "dfs.namenode.redundancy.interval.seconds": 3,
        "dfs.client.block.write.replace-datanode-on-failure.best-effort": "true",
        "dfs.client.block.write.replace-datanode-on-failure.policy": "DEFAULT",
        "dfs.namenode.handler.count": 10,
        "dfs.namenode.service.handler.count": 4,
        "dfs.datanode.handler.count": 4,
        "dfs.datanode.max.transfer.threads": 512,
        "dfs.blocksize": 64 * 1024 * 1024,
        "dfs.namenode.fs-limits.min-block-size": 1024 * 1024,
    }
    if datanode is not None:
        ports = datanode_ports(datanode)
        props.update({
            "dfs.datanode.data.dir": s.path("data", f"datanode-{datanode}"),
            "dfs.datanode.address": f"{s.cluster_bind}:{ports['data']}",
            "dfs.datanode.http.address": f"{s.cluster_bind}:{ports['http']}",
            "dfs.datanode.ipc.address": f"{s.cluster_bind}:{ports['ipc']}",
            "dfs.datanode.hostname": s.cluster_host,
            # keep 1 GiB of the (shared) disk free: a full disk takes the OS and HBase down with it
            "dfs.datanode.du.reserved": 1 << 30,
            # re-read free space every 2 s (default 60 s): a filling disk is seen before the
            # DataNode accepts a block it cannot hold
            "fs.df.interval": 2000,
        })
    return props


def hbase_site(s: Settings) -> dict[str, object]:
    return {
        "hbase.rootdir": f"{s.namenode_rpc}/hbase",
        "hbase.cluster.distributed": "true",
        "hbase.zookeeper.quorum": s.cluster_host,
        "hbase.zookeeper.property.clientPort": s.zookeeper_port,
        "hbase.tmp.dir": s.path("data", "hbase-tmp"),
        "hbase.master.hostname": s.cluster_host,
        "hbase.regionserver.hostname": s.cluster_host,
        "hbase.master.ipc.address": s.cluster_bind,
        "hbase.regionserver.ipc.address": s.cluster_bind,
        "hbase.master.port": 16000,
        "hbase.regionserver.port": 16020,
        # web UIs off (-1); their bind addresses set all the same, in case a port is turned on
        "hbase.master.info.port": -1,
        "hbase.regionserver.info.port": -1,
        "hbase.thrift.info.port": -1,
        "hbase.master.info.bindAddress": s.cluster_bind,
        "hbase.regionserver.info.bindAddress": s.cluster_bind,
        "hbase.thrift.info.bindAddress": s.cluster_bind,
        "hbase.regionserver.thrift.ipaddress": s.cluster_bind,
        "hbase.regionserver.thrift.port": s.thrift_port,
        "hbase.regionserver.thrift.framed": "false",
        "hbase.regionserver.thrift.compact": "false",
        "hbase.thrift.minWorkerThreads": 8,
        "hbase.wal.provider": "filesystem",
        "hbase.unsafe.stream.capability.enforce": "false",
        "hbase.regionserver.handler.count": 16,
        "hbase.master.wait.on.regionservers.mintostart": 1,
        "hbase.master.wait.on.regionservers.timeout": 1000,
        "hbase.master.wait.on.regionservers.interval": 200,
        "hbase.balancer.period": 600000,
        "hbase.regionserver.global.memstore.size": 0.3,
        "hfile.block.cache.size": 0.25,
        "hbase.hregion.memstore.flush.size": 32 * 1024 * 1024,
        # HBase's own disk overhead (WALs, store files, their archive) kept small; it mattered
        # most when DICOM objects passed through an HBase staging table (removed):
        # - at most 8 live WALs (default 32 x 64 MiB roll size = 2 GiB);
        # - memstores whose oldest edit is 5 min old are flushed (default 1 h, delay up to 1 min
        #   instead of 5), so quiet tables do not pin WALs and staging's delete markers reach
        #   the store files;
        # - stores whose oldest file is over 1 h old are major-compacted (default 7 days, checked
        #   every 10 s x 30 instead of x 1000 = 2.8 h), dropping moved staging objects that minor
        #   compactions skip; a store that is one major-compacted file is left alone;
        # - compacted-away store files move to archive/ every 30 s (default 2 min);
        # - the master's cleaners run every minute (default 10 min) and delete archived WALs
        #   (oldWALs) and compacted-away store files (archive/) after 1 min (defaults 10 and
        #   5 min): nothing reads them without replication or backups; snapshots keep theirs.
        "hbase.regionserver.maxlogs": 8,
        "hbase.regionserver.optionalcacheflushinterval": 5 * 60 * 1000,
        "hbase.regionserver.periodicmemstoreflusher.rangeofdelayseconds": 60,
        "hbase.hregion.majorcompaction": 60 * 60 * 1000,
        "hbase.server.compactchecker.interval.multiplier": 30,
        "hbase.hfile.compaction.discharger.interval": 30 * 1000,
        "hbase.master.cleaner.interval": 60 * 1000,
        "hbase.master.logcleaner.ttl": 60 * 1000,
        "hbase.master.hfilecleaner.ttl": 60 * 1000,
        "hbase.client.retries.number": 5,
        "hbase.client.pause": 100,
        "zookeeper.session.timeout": 20000,
        "dfs.replication": s.effective_replication,
        # The region server's WAL is one long-lived HDFS pipeline. With policy NEVER a DataNode
        # that fails is dropped and never replaced, so after a few DataNode restarts the WAL
        # ran on one DataNode, and stopping that one aborted the region server ("All
        # datanodes are bad", seen in the fault battery). DEFAULT replaces a failed DataNode of
        # an hflushed stream with a live one; best-effort keeps writing if none is available.
        "dfs.client.block.write.replace-datanode-on-failure.best-effort": "true",
        "dfs.client.block.write.replace-datanode-on-failure.policy": "DEFAULT",
        # Roll to a fresh, full pipeline whenever the WAL is under-replicated (a restarted
        # DataNode can join again), without HBase's default limit of 5 consecutive rolls.
        "hbase.regionserver.hlog.lowreplication.rolllimit": 1000,
    }


def rm_address(s: Settings) -> tuple[str, int]:
    """Host and web/REST port of the ResourceManager (the first of `yarn_rm_url`)."""
    from urllib.parse import urlsplit
    url = urlsplit(s.yarn_rm_url.split(";")[0].strip())
    return url.hostname or s.cluster_host, url.port or 8088


def yarn_site(s: Settings) -> dict[str, object]:
    """ResourceManager and NodeManager settings (`yarn = true`).

    Addresses: the RM is where `yarn_rm_url` says (a NodeManager on another host must reach
    it); each NodeManager names itself by `cluster_host`; both bind `cluster_bind`. Sized for a
    small machine: one NM offers NM_MEMORY_MB, containers from 128 MB; no
    memory checks that kill a JVM for its virtual size; a silent NM is lost after 10 s instead of
    10 min, so a cut-off worker shows quickly. No spark_shuffle aux service: our jobs do not
    use dynamic allocation. No timeline service, log aggregation or recovery stores.
    """
    rm_host, rm_web = rm_address(s)
    nm_dir = s.path("data", "nodemanager")
    return {
        "yarn.resourcemanager.hostname": rm_host,
        **{f"yarn.resourcemanager.{key}": f"{rm_host}:{RM_PORTS[port]}" for key, port in (
            ("address", "client"), ("scheduler.address", "scheduler"),
            ("resource-tracker.address", "tracker"), ("admin.address", "admin"))},
        "yarn.resourcemanager.webapp.address": f"{rm_host}:{rm_web}",
        "yarn.resourcemanager.bind-host": s.cluster_bind,
        "yarn.resourcemanager.recovery.enabled": "false",
        "yarn.system-metrics-publisher.enabled": "false",
        "yarn.resourcemanager.max-completed-applications": 200,
        "yarn.nm.liveness-monitor.expiry-interval-ms": 10000,
        "yarn.resourcemanager.nodemanagers.heartbeat-interval-ms": 1000,
        "yarn.scheduler.minimum-allocation-mb": 128,
        "yarn.scheduler.maximum-allocation-mb": NM_MEMORY_MB,
        "yarn.scheduler.maximum-allocation-vcores": NM_VCORES,
        "yarn.nodemanager.hostname": s.cluster_host,
        "yarn.nodemanager.bind-host": s.cluster_bind,
        "yarn.nodemanager.address": f"{s.cluster_host}:{NM_PORTS['containers']}",
        "yarn.nodemanager.localizer.address": f"{s.cluster_host}:{NM_PORTS['localizer']}",
        "yarn.nodemanager.webapp.address": f"{s.cluster_host}:{NM_PORTS['web']}",
        "yarn.nodemanager.resource.memory-mb": NM_MEMORY_MB,
        "yarn.nodemanager.resource.cpu-vcores": NM_VCORES,
        "yarn.nodemanager.resource.detect-hardware-capabilities": "false",
        "yarn.nodemanager.vmem-check-enabled": "false",
        "yarn.nodemanager.pmem-check-enabled": "false",
        "yarn.nodemanager.local-dirs": nm_dir / "local",
        "yarn.nodemanager.log-dirs": nm_dir / "logs",
        "yarn.nodemanager.delete.debug-delay-sec": 0,
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": 99,
        "yarn.nodemanager.disk-health-checker.min-free-space-per-disk-mb": 1024,
        "yarn.nodemanager.aux-services": "",
        "yarn.nodemanager.recovery.enabled": "false",
        "yarn.log-aggregation-enable": "false",
        "yarn.timeline-service.enabled": "false",
        "yarn.webapp.ui2.enable": "false",
        "yarn.acl.enable": "false",
    }


def capacity_scheduler(s: Settings) -> dict[str, object]:
    """One queue (`yarn_queue`) with the whole cluster. Application masters may take half of
    it (default a tenth: on a small cluster that is less than one Spark AM, so a second job
    would wait); no delay scheduling for locality (a job here waits for nothing)."""
    q = f"yarn.scheduler.capacity.root.{s.yarn_queue}"
    return {
        "yarn.scheduler.capacity.root.queues": s.yarn_queue,
        f"{q}.capacity": 100,
        f"{q}.maximum-capacity": 100,
        f"{q}.user-limit-factor": 1,
        f"{q}.state": "RUNNING",
        "yarn.scheduler.capacity.maximum-am-resource-percent": 0.5,
        "yarn.scheduler.capacity.maximum-applications": 100,
        "yarn.scheduler.capacity.node-locality-delay": -1,
        "yarn.scheduler.capacity.resource-calculator":
            "org.apache.hadoop.yarn.util.resource.DefaultResourceCalculator",
    }


def zoo_cfg(s: Settings) -> str:
    return "\n".join([
        "tickTime=1000",
        "initLimit=10",
        "syncLimit=5",
        f"dataDir={s.path('data', 'zookeeper')}",
        f"clientPort={s.zookeeper_port}",
        f"clientPortAddress={s.cluster_bind}",
        "maxClientCnxns=200",
        # the AdminServer (Jetty, 0.0.0.0:8080 by default) stays off; bound here if turned on
        "admin.enableServer=false",
        f"admin.serverAddress={s.cluster_bind}",
        "4lw.commands.whitelist=ruok,srvr,stat",
        "",
    ])


LOG4J1 = """log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.out
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.hdfs.StateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.server.datanode.DataNode.clienttrace=WARN
log4j.logger.BlockStateChange=WARN
"""

LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_OUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %-5p [%t] %c{2}: %m%n
rootLogger = INFO,console
logger.zk.name = org.apache.zookeeper
logger.zk.level = WARN
logger.hadoop.name = org.apache.hadoop.hdfs
logger.hadoop.level = WARN
"""


#: Spark master and worker settings (`--properties-file`): the REST submission server (6066)
#: off, and nothing on the web UIs that changes state or dumps a JVM. The UIs bind
#: SPARK_LOCAL_IP (`deploy.daemons`), i.e. the cluster's bind address.
SPARK_DAEMON_CONF = {
    "spark.master.rest.enabled": "false",
    "spark.ui.killEnabled": "false",
    "spark.ui.threadDumpsEnabled": "false",
    "spark.ui.heapHistogramEnabled": "false",
    "spark.ui.prometheus.enabled": "false",
}


def spark_defaults(conf: dict[str, str]) -> str:
    return "".join(f"{k} {v}\n" for k, v in conf.items())


EMPTY_WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="3.1"/>
"""


def write_conf_dir(s: Settings, daemon: str, datanode: int | None = None) -> Path:
    """Write the full config set for one daemon and return its directory."""
    conf = s.path("conf", daemon)
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "core-site.xml").write_text(hadoop_xml(core_site(s)))
    (conf / "hdfs-site.xml").write_text(hadoop_xml(hdfs_site(s, datanode)))
    (conf / "hbase-site.xml").write_text(hadoop_xml(hbase_site(s)))
    (conf / "zoo.cfg").write_text(zoo_cfg(s))
    (conf / "spark-defaults.conf").write_text(spark_defaults(SPARK_DAEMON_CONF))
    if s.yarn:
        (conf / "yarn-site.xml").write_text(hadoop_xml(yarn_site(s)))
        (conf / "capacity-scheduler.xml").write_text(hadoop_xml(capacity_scheduler(s)))
    (conf / "log4j.properties").write_text(LOG4J1)
    (conf / "log4j2.properties").write_text(LOG4J2)
    # Hadoop's HTTP servers look up `webapps/<name>` on the classpath; the Maven jars don't carry
    # the web UI, so give them empty web apps (WebHDFS and /jmx are servlets added in code).
    for app in ("hdfs", "datanode", "static"):
        web_inf = conf / "webapps" / app / "WEB-INF"
        web_inf.mkdir(parents=True, exist_ok=True)
        (web_inf / "web.xml").write_text(EMPTY_WEB_XML)
    return conf
