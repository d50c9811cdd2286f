"""`pacs doctor`: check a configured cluster from this host and name what is wrong.

Each check asks the real service (no pid files): every NameNode's WebHDFS (which one is active),
the DataNodes the active NameNode knows (live vs expected, and whether each one's HTTP address
answers from here: WebHDFS sends reads and writes there), a write/read/delete under hdfs_root,
HBase Thrift and our tables, the Spark master or the YARN ResourceManager(s) and queue, the
driver address executors must reach, and the Python archive shipped to executors.

Facts are gathered by small fetchers and judged by pure functions (`judge_*`), so every rule is
unit-tested on recorded answers (tests/unit/test_doctor.py). A failing check carries `fix`:
what to do about it.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import requests

from pacs_hdfs.settings import Settings

TIMEOUT = 5.0
STALE_CONTACT_S = 30      # a DataNode silent for longer is stale (HDFS's default interval)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# --- small fetchers ---------------------------------------------------------------------------

def http_json(url: str, timeout: float = TIMEOUT) -> dict:
    r = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
    r.raise_for_status()
    return r.json()


def tcp_reachable(addr: str, timeout: float = TIMEOUT) -> str | None:
    """None when host:port accepts a connection from here, else why not."""
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"[:200]


def _bean(url: str, name: str, fetch=http_json) -> dict:
    beans = fetch(f"{url}/jmx?qry=Hadoop:service=NameNode,name={name}")["beans"]
    if not beans:
        raise ValueError(f"no {name} bean")
    return beans[0]


# --- judges (pure) ----------------------------------------------------------------------------

def judge_namenodes(states: dict[str, str]) -> Check:
    """states: WebHDFS URL -> 'active' | 'standby' | an error text."""
    active = [u for u, st in states.items() if st == "active"]
    others = {u: st for u, st in states.items() if st not in ("active", "standby")}
    listing = ", ".join(f"{u} {st}" for u, st in states.items())
    if len(active) != 1:
        return Check("webhdfs", False, f"{len(active)} active NameNodes: {listing}",
                     "no active NameNode answers WebHDFS from this host: check dfs.webhdfs.enabled, "
                     "the NameNodes' HTTP ports and the firewall; with HA, the failover controller"
                     if not active else "more than one NameNode says active: check HA fencing")
    if others:
        return Check("webhdfs", False, f"active {active[0]}; not answering: {listing}",
                     "a NameNode of the nameservice does not answer: a failover would leave "
                     "this host without HDFS; check that host and its HTTP port")
    return Check("webhdfs", True, f"active {active[0]} ({len(states)} NameNode URL(s))")


def judge_datanodes(live: dict[str, dict], dead: dict[str, dict], expected: int | None,
                    unreachable: dict[str, str]) -> Check:
    """live/dead: the NameNode's LiveNodes/DeadNodes; unreachable: DataNode -> why its HTTP
    address does not answer from here."""
    problems, fixes = [], []
    stale = [n for n, d in live.items() if int(d.get("lastContact", 0)) > STALE_CONTACT_S]
    if dead:
        problems.append(f"dead: {', '.join(sorted(dead))}")
        fixes.append("start the DataNode on each dead host, or decommission it")
    if stale:
        problems.append(f"stale (no heartbeat for > {STALE_CONTACT_S} s): {', '.join(stale)}")
        fixes.append("check the network between these hosts and the NameNode")
    for name, why in sorted(unreachable.items()):
        problems.append(f"{name} HTTP {live.get(name, {}).get('infoAddr', '?')} not reachable "
                        f"from {platform.node()} ({why})")
    if unreachable:
        fixes.append("WebHDFS redirects every read and write to a DataNode's HTTP address: open "
                     "these from this host (routing, firewall, dfs.datanode.http.address), or "
                     "put an HttpFS gateway in webhdfs_url")
    want = expected if expected is not None else len(live) + len(dead)
    if len(live) < want:
        problems.append(f"{len(live)} live of {want} expected")
        fixes.append("bring the missing DataNodes up (expected = settings.datanodes)")
    detail = f"{len(live)} live, {len(dead)} dead" + (f"; {'; '.join(problems)}"
                                                       if problems else "")
    return Check("datanodes", not problems, detail, "; ".join(dict.fromkeys(fixes)))


def judge_tables(have: list[str], want: list[str], prefix: str) -> Check:
    missing = sorted(set(want) - set(have))
    if missing:
        return Check("hbase", False, f"Thrift answers; missing tables: "
                     f"{', '.join(f'{prefix}_{t}' for t in missing)}", "run `pacs init`")
    return Check("hbase", True, f"Thrift answers; {len(want)} tables of prefix {prefix!r}")


def judge_spark_master(doc: dict) -> Check:
    alive = int(doc.get("aliveworkers", 0) or 0)
    if doc.get("status") != "ALIVE":
        return Check("spark", False, f"master {doc.get('url')} status {doc.get('status')}",
                     "the standalone master is not ALIVE (recovering or standby): check it")
    if alive < 1:
        return Check("spark", False, f"master {doc.get('url')} has no live worker",
                     "start a Spark worker (jobs would wait forever)")
    return Check("spark", True, f"master {doc.get('url')} ALIVE, {alive} worker(s), "
                 f"{doc.get('cores', '?')} cores")


def judge_yarn(states: dict[str, str], metrics: dict | None, queues: dict[str, dict],
               queue: str) -> Check:
    """states: RM URL -> haState or an error; queues: the scheduler's queues by name."""
    active = [u for u, st in states.items() if st in ("ACTIVE", "NOT_ENABLED")]
    listing = ", ".join(f"{u} {st}" for u, st in states.items())
    if not active:
        return Check("yarn", False, f"no active ResourceManager: {listing}",
                     "check yarn_rm_url / yarn-site.xml (yarn.resourcemanager.webapp.address) "
                     "and that the RM runs and its web port is open from this host")
    nodes = int((metrics or {}).get("activeNodes", 0))
    if nodes < 1:
        return Check("yarn", False, f"RM {active[0]} has no active NodeManager",
                     "start NodeManagers (containers cannot run)")
    q = queues.get(queue)
    if q is None:
        return Check("yarn", False, f"RM {active[0]}: queue {queue!r} does not exist "
                     f"(queues: {', '.join(sorted(queues)) or 'none'})",
                     "set yarn_queue to an existing queue or ask the YARN admin to create it")
    if str(q.get("state", "RUNNING")).upper() != "RUNNING":
        return Check("yarn", False, f"queue {queue!r} is {q.get('state')}",
                     "the queue is stopped: ask the YARN admin to start it")
    return Check("yarn", True, f"RM {active[0]} active, {nodes} NodeManager(s), queue "
                 f"{queue!r} RUNNING")


def judge_driver(driver_host: str, target_host: str) -> Check:
    loop = ("127.", "::1", "localhost")
    if driver_host.startswith(loop) and not target_host.startswith(loop):
        return Check("driver-address", False, f"the Spark driver would listen on {driver_host}, "
                     f"but the cluster ({target_host}) is remote: executors could not connect",
                     "set spark_driver_host to this host's address on the cluster network")
    return Check("driver-address", True, f"driver at {driver_host} (cluster at {target_host})")


# --- checks (fetch, then judge) ---------------------------------------------------------------

def check_config(s: Settings) -> Check:
    dirs = [str(d) for d in s.cluster_conf_dirs if d]
    if s.embedded:
        return Check("config", True, "embedded cluster (conf directories are not read)")
    if not s.from_conf_dirs and not (s.model_fields_set & {"webhdfs_url", "namenode_rpc"}):
        return Check("config", False, "embedded = false, but no conf directory and no "
                     "endpoints in pacs.toml: the defaults point at 127.0.0.1",
                     "set HADOOP_CONF_DIR (and HBASE_CONF_DIR, SPARK_CONF_DIR) or name the "
                     "endpoints in pacs.toml (deploy/cluster/README.md)")
    return Check("config", True, f"conf dirs {', '.join(dirs) or 'none'}; from them: "
                 f"{', '.join(sorted(s.from_conf_dirs)) or 'nothing'}")


def namenode_states(s: Settings, fetch=http_json) -> dict[str, str]:
    states = {}
    for url in s.webhdfs_urls:
        try:
            states[url] = str(_bean(url, "NameNodeStatus", fetch).get("State", "?")).lower()
        except (requests.RequestException, ValueError, KeyError) as e:
            states[url] = f"unreachable ({type(e).__name__})"
    return states


def check_datanodes(s: Settings, active_url: str, fetch=http_json) -> Check:
    try:
        info = _bean(active_url, "NameNodeInfo", fetch)
        live, dead = json.loads(info["LiveNodes"]), json.loads(info["DeadNodes"])
    except (requests.RequestException, ValueError, KeyError) as e:
        return Check("datanodes", False, f"NameNodeInfo from {active_url}: {e}"[:300],
                     "the active NameNode's /jmx must answer from this host")
    unreachable = {}
    for name, d in live.items():
        why = tcp_reachable(d.get("infoAddr", ""))
        if why:
            unreachable[name] = why
    expected = s.datanodes if (s.embedded or "datanodes" in s.model_fields_set) else None
    return judge_datanodes(live, dead, expected, unreachable)


def check_hdfs_write(s: Settings) -> Check:
    from pacs_hdfs import clients
    from pacs_hdfs.hdfs_store import StorageError
    store = clients.hdfs(s)
    path = f"{s.hdfs_root}/tmp/doctor-{platform.node()}-{os.getpid()}-{int(time.time())}"
    data = os.urandom(4096)
    try:
        if store.info(s.hdfs_root) is None:
            return Check("hdfs-write", False, f"{s.hdfs_root} does not exist", "run `pacs init`")
        store.write(path, data, overwrite=True)
        back = store.read(path)
        store.delete(path)
    except StorageError as e:
        denied = "AccessControlException" in str(e) or "Permission denied" in str(e)
        return Check("hdfs-write", False, str(e)[:300],
                     f"let user {s.hdfs_user!r} write under {s.hdfs_root}: `hdfs dfs -chown -R "
                     f"{s.hdfs_user} {s.hdfs_root}`" if denied else
                     "a write goes through a DataNode: see the datanodes check")
    if back != data:
        return Check("hdfs-write", False, f"{path}: read back {len(back)} bytes differing",
                     "check the DataNodes' disks")
    return Check("hdfs-write", True, f"user {s.hdfs_user!r} wrote, read and deleted 4 KiB "
                 f"under {s.hdfs_root}")


def check_hbase(s: Settings) -> Check:
    from pacs_hdfs import clients
    from pacs_hdfs.hdfs_store import StorageError
    from pacs_hdfs.schema import TABLES
    try:
        have = clients.hbase(s).tables()
    except (StorageError, OSError) as e:
        return Check("hbase", False, f"Thrift {s.thrift_host}:{s.thrift_port}: {e}"[:300],
                     "start the HBase Thrift 1 server (`hbase thrift start`, binary protocol, "
                     "buffered transport) and open its port from this host")
    have = [t.removeprefix(f"{s.hbase_table_prefix}_") for t in have]
    return judge_tables(have, [t.name for t in TABLES], s.hbase_table_prefix)


def check_spark(s: Settings, fetch=http_json) -> Check:
    if s.on_yarn:
        from pacs_hdfs.yarn_rm import YarnError, YarnRM
        states = {}
        for url in s.yarn_rm_urls:
            try:
                states[url] = fetch(f"{url}/ws/v1/cluster/info")["clusterInfo"].get(
                    "haState", "NOT_ENABLED")
            except (requests.RequestException, ValueError, KeyError) as e:
                states[url] = f"unreachable ({type(e).__name__})"
        metrics, queues = None, {}
        try:
            rm = YarnRM(s.yarn_rm_urls)
            metrics, queues = rm.metrics(), rm.queues()
        except (YarnError, requests.RequestException, KeyError, ValueError):
            pass
        return judge_yarn(states, metrics, queues, s.yarn_queue)
    try:
        doc = fetch(f"{s.spark_master_webui.rstrip('/')}/json/")
    except (requests.RequestException, ValueError) as e:
        return Check("spark", False, f"master web UI {s.spark_master_webui}: "
                     f"{type(e).__name__}", "check spark_master_webui / the master's port "
                     "8080 from this host, and that the master runs")
    check = judge_spark_master(doc)
    rpc = s.spark_master[len("spark://"):].split(",")[0] if s.spark_master.startswith(
        "spark://") else ""
    why = tcp_reachable(rpc) if rpc else None
    if check.ok and why:
        return Check("spark", False, f"master RPC {rpc} not reachable: {why}",
                     "open the master's RPC port (7077) from this host")
    return check


def check_driver(s: Settings) -> Check:
    from pacs_hdfs.clients import admin_spark_conf, cluster_target, driver_addresses
    host, _ = driver_addresses(s, admin_spark_conf(s))
    return judge_driver(host, cluster_target(s)[0])


def check_python_archive(s: Settings) -> Check:
    from pacs_hdfs import clients
    from pacs_hdfs.python_env import env_archive_state, hdfs_archive_path
    path, fresh = env_archive_state(s)
    fix = "run `pacs job pack-env` (builds and uploads it; the first job would do it too)"
    if not path.is_file():
        return Check("python-archive", False, f"{path} missing", fix)
    if not fresh:
        return Check("python-archive", False, f"{path} is stale (the venv changed)", fix)
    remote = hdfs_archive_path(s)
    info = clients.hdfs(s).info(remote) if remote else None
    if info is None or info.length != path.stat().st_size:
        return Check("python-archive", False, f"{path} fresh, but not on HDFS at {remote}", fix)
    return Check("python-archive", True, f"{remote} ({info.length / 2**20:.0f} MiB)")


def run_checks(s: Settings, progress: Callable[[str], None] = lambda _: None) -> list[Check]:
    """Every check, in order; one that raises becomes a failing check naming the error."""
    checks: list[Check] = []

    def run(name: str, fn) -> Check | None:
        progress(name)
        try:
            c = fn()
        except Exception as e:  # noqa: BLE001 - the doctor reports, never dies
            c = Check(name, False, f"{type(e).__name__}: {e}"[:300], "see the error")
        checks.append(c)
        return c

    run("config", lambda: check_config(s))
    states = namenode_states(s)
    checks.append(judge_namenodes(states))
    active = [u for u, st in states.items() if st == "active"]
    if active:
        run("datanodes", lambda: check_datanodes(s, active[0]))
        run("hdfs-write", lambda: check_hdfs_write(s))
    run("hbase", lambda: check_hbase(s))
    run("spark", lambda: check_spark(s))
    run("driver-address", lambda: check_driver(s))
    if s.ships_python:
        run("python-archive", lambda: check_python_archive(s))
    return checks
