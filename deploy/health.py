"""Real health probes of the embedded cluster (each asks the daemon itself, never a pid file)."""
from __future__ import annotations

import socket
from dataclasses import dataclass

import requests

from deploy.configs import NAMENODE_HTTP_PORT
from pacs_hdfs.rows import health_probe
from pacs_hdfs.settings import Settings


@dataclass
class HdfsHealth:
    reachable: bool
    safemode: bool = True
    live_datanodes: int = 0
    dead_datanodes: int = 0


def hdfs_health(s: Settings, timeout: float = 2.0) -> HdfsHealth:
    """NameNode's own view: safe mode and live/dead DataNodes (JMX over HTTP). With several
    NameNode URLs (HA), the first that answers speaks for the cluster."""
    bases = s.webhdfs_urls if not s.embedded else [
        f"http://{s.cluster_host}:{NAMENODE_HTTP_PORT}"]
    for base in bases:
        try:
            r = requests.get(f"{base}/jmx", params={
                "qry": "Hadoop:service=NameNode,name=FSNamesystemState"}, timeout=timeout)
            state = r.json()["beans"][0]
            r = requests.get(f"{base}/jmx", params={
                "qry": "Hadoop:service=NameNode,name=NameNodeInfo"}, timeout=timeout)
            info = r.json()["beans"][0]
            break
        except (requests.RequestException, KeyError, IndexError, ValueError):
            continue
    else:
        return HdfsHealth(reachable=False)
    return HdfsHealth(
        reachable=True,
        safemode=bool(info.get("Safemode")),
        live_datanodes=int(state.get("NumLiveDataNodes", 0)),
        dead_datanodes=int(state.get("NumDeadDataNodes", 0)),
    )


def zookeeper_ok(s: Settings, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((s.cluster_host, s.zookeeper_port),
                                      timeout=timeout) as c:
            c.sendall(b"ruok")
            return c.recv(16) == b"imok"
    except OSError:
        return False


HEALTH_TABLE = b"pacs_health"


def hbase_ok(s: Settings, timeout_ms: int = 5000) -> bool:
    """True when Thrift answers, the master is initialised and a region serves writes.

    Listing tables succeeds while the master is still initialising, so the probe writes and
    reads a row of its own table (created on first use, which needs an initialised master).
    """
    import happybase
    try:
        conn = happybase.Connection(s.thrift_host, s.thrift_port, timeout=timeout_ms,
                                    autoconnect=True)
        try:
            if HEALTH_TABLE not in conn.tables():
                conn.create_table(HEALTH_TABLE, health_probe.FAMILIES)
            table = conn.table(HEALTH_TABLE)
            table.put(health_probe.ROW, {health_probe.COLUMN: health_probe.VALUE})
            if table.row(health_probe.ROW).get(health_probe.COLUMN) != health_probe.VALUE:
                return False
        finally:
            conn.close()
        return True
    except Exception:  # thrift raises many transport/IO error types; all mean "not yet"
        return False


def spark_workers(s: Settings, timeout: float = 2.0) -> int:
    """Number of ALIVE workers registered with the standalone master (-1 if unreachable)."""
    try:
        r = requests.get(f"{s.spark_master_webui}/json/", timeout=timeout)
        return int(r.json().get("aliveworkers", 0))
    except (requests.RequestException, ValueError):
        return -1


def yarn_nodemanagers(s: Settings, timeout: float = 2.0) -> dict[str, int] | None:
    """NodeManagers the ResourceManager knows, by state (RUNNING, LOST, UNHEALTHY, ...), from
    its REST API (`/ws/v1/cluster/nodes`); None when no ResourceManager answers. A NodeManager
    whose host is cut off turns LOST once it misses heartbeats for
    `yarn.nm.liveness-monitor.expiry-interval-ms` (10 s in the embedded configuration)."""
    for url in (u.strip() for u in s.yarn_rm_url.split(";") if u.strip()):
        try:
            r = requests.get(f"{url.rstrip('/')}/ws/v1/cluster/nodes",
                             params={"states": "NEW,RUNNING,UNHEALTHY,DECOMMISSIONING,"
                                               "DECOMMISSIONED,LOST,SHUTDOWN"},
                             headers={"Accept": "application/json"}, timeout=timeout)
            if r.status_code != 200:  # a standby RM redirects or refuses: try the next one
                continue
            nodes = ((r.json().get("nodes") or {}).get("node")) or []
        except (requests.RequestException, ValueError, AttributeError):
            continue
        states: dict[str, int] = {}
        for n in nodes:
            states[n.get("state", "?")] = states.get(n.get("state", "?"), 0) + 1
        return states
    return None


def yarn_running_nodemanagers(s: Settings, timeout: float = 2.0) -> int:
    """RUNNING NodeManagers (-1 if no ResourceManager answers)."""
    states = yarn_nodemanagers(s, timeout)
    return -1 if states is None else states.get("RUNNING", 0)
