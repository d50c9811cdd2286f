"""Several hosts on one machine: Linux network namespaces on a private bridge (issue 16 item 3).

    bridge pmh-br 10.77.0.1/24 (this namespace: the tests, playing the hospital and the user)
      |- master    10.77.0.10  NameNode, ZooKeeper, ResourceManager, HBase master, RegionServer,
      |                        Thrift
      |- worker-1  10.77.0.11  DataNode 1 + NodeManager
      |- worker-2  10.77.0.12  DataNode 2 + NodeManager
      '- service   10.77.0.20  the MDC services with embedded = false: gateway (HL7, STOW-RS),
                               MDC DIMSE, portal, job runner (Spark driver of YARN jobs)

Each host is a namespace with its own loopback and one veth into the bridge, its own
`$PACS_HOME` and `pacs.toml` (cluster_bind = its address), and runs its share of the embedded
daemon table with the ordinary Supervisor (`python -m tests.multihost.topology start NAME...`
inside the namespace). Every daemon then listens on its host's address only, so anything that
assumed 127.0.0.1 (a WebHDFS redirect, the Spark driver's address, an HBase hostname) fails here.
`ip netns exec` bind-mounts /etc/netns/<ns>/hosts and resolv.conf over /etc: the hosts know
each other by name, and a reverse lookup never waits for a DNS server they cannot reach.

The service host is an ordinary client of a real cluster: `embedded = false`, endpoints from
the client configuration written to its HADOOP_CONF_DIR / SPARK_CONF_DIR (16A's
pacs_hdfs/hadoop_conf.py reads them), jobs on YARN.

`require()` says plainly why a machine cannot build the topology (not root, no `ip`, no netns);
`Topology.destroy()` kills what runs in the namespaces (by the pids `ip netns pids` lists: only
ours), deletes namespaces, veths and the bridge, and removes the hosts' data.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
PACS = str(REPO / ".venv" / "bin" / "pacs")

SUBNET = "10.77.0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
PREFIX = "pmh"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    daemons: tuple[str, ...]     # its share of the embedded daemon table (deploy/daemons.py)


MASTER = Host("master", f"{SUBNET}.10", ("namenode", "zookeeper", "resourcemanager",
                                          "hbase-master", "hbase-regionserver", "hbase-thrift"))
WORKERS = (Host("worker-1", f"{SUBNET}.11", ("datanode-1", "nodemanager")),
           Host("worker-2", f"{SUBNET}.12", ("datanode-2", "nodemanager")))
SERVICE = Host("service", f"{SUBNET}.20", ())
HOSTS = (MASTER, *WORKERS, SERVICE)

GATEWAY_PORT, PORTAL_PORT, MDC_DIMSE_PORT = 8443, 8000, 11114

#: lean heaps for the master (the machine also runs the shared test cluster)
MASTER_HEAPS = {"namenode": 256, "datanode": 128, "zookeeper": 64, "hbase-master": 256,
                "hbase-regionserver": 512, "hbase-thrift": 256, "resourcemanager": 256,
                "nodemanager": 192, "spark-master": 128, "spark-worker": 128}

#: the order daemons start in, and what each stage waits for (checked from this namespace)
STAGES = (
    (MASTER, ("namenode", "zookeeper", "resourcemanager")),
    *((w, w.daemons) for w in WORKERS),
    (MASTER, ("hbase-master", "hbase-regionserver", "hbase-thrift")),
)


class TopologyUnavailable(RuntimeError):
    """This machine cannot build the namespace topology; the message says why."""


def require() -> None:
    """Fail with a clear reason when namespaces cannot be made here (never skip silently)."""
    if os.geteuid() != 0:
        raise TopologyUnavailable("the multi-host stage needs root (it creates network "
                                  "namespaces, veth pairs and a bridge); run it as root")
    if not shutil.which("ip"):
        raise TopologyUnavailable("the multi-host stage needs `ip` (iproute2): "
                                  "apt-get install iproute2")
    probe = f"{PREFIX}-probe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        raise TopologyUnavailable(f"`ip netns add` failed here: {r.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise TopologyUnavailable(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Topology:
    def __init__(self, base: Path):
        self.base = Path(base)
        self.timings: dict[str, float] = {}
        self.services: dict[str, subprocess.Popen] = {}

    # --- names ---------------------------------------------------------------------------
    @staticmethod
    def ns(host: Host) -> str:
        return f"{PREFIX}-{host.name}"

    @staticmethod
    def veth(host: Host) -> str:
        """The bridge end of the host's cable (the host end is `<veth>p`, renamed eth0)."""
        return f"{PREFIX}-{host.name.replace('worker-', 'w')}"[:15]

    bridge = f"{PREFIX}-br"

    def home(self, host: Host) -> Path:
        return self.base / host.name

    def config_file(self, host: Host) -> Path:
        return self.home(host) / "pacs.toml"

    # --- settings ------------------------------------------------------------------------
    def cluster_fields(self) -> dict:
        """Endpoints every host shares: the master's addresses."""
        m = MASTER.address
        return {"datanodes": len(WORKERS), "namenode_rpc": f"hdfs://{m}:9000",
                "webhdfs_url": f"http://{m}:9870", "thrift_host": m,
                "yarn_rm_url": f"http://{m}:8088", "yarn": True, "spark_master": "yarn",
                "hdfs_user": "pacs"}

    def host_fields(self, host: Host) -> dict:
        fields = {"home": str(self.home(host)), **self.cluster_fields()}
        if host is SERVICE:
            fields.update({
                "embedded": False, "cluster_bind": host.address,
                "hadoop_conf_dir": str(self.client_conf_dir()),
                "spark_conf_dir": str(self.client_conf_dir()),
                "hbase_conf_dir": str(self.client_conf_dir()),
                "mdc_dimse_bind": host.address, "spark_driver_host": host.address,
                "spark_driver_bind": host.address, "spark_executor_memory": "512m",
                # Executors use the venv at its path (the same filesystem on every simulated
                # host) instead of the venv-pack archive: a NodeManager without Hadoop's native
                # library forks one `chmod` per file when it localizes an archive (FSDownload),
                # and the venv's ~14,000 files took >10 min per worker here. The archive path
                # itself is 16A's and is tested on the embedded cluster.
                "spark_ship_python": False,
                "mdc_dimse_port": MDC_DIMSE_PORT, "gateway_port": GATEWAY_PORT,
                "portal_port": PORTAL_PORT})
        else:
            fields.update({"embedded": True, "cluster_bind": host.address,
                           "heap_mb": MASTER_HEAPS})
        return fields

    def settings(self, host: Host = MASTER):
        """Settings of one host, for checks made from this namespace."""
        from pacs_hdfs.settings import Settings
        f = self.host_fields(host)
        return Settings(**{k: v for k, v in f.items() if k != "home"}, home=Path(f["home"]))

    def env(self, host: Host) -> dict[str, str]:
        """Environment of a process on `host`: its own home and pacs.toml, nothing inherited
        that names another cluster."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PACS_", "HADOOP_", "HBASE_", "SPARK_", "YARN_",
                                    "PYSPARK_"))}
        env.update(PACS_HOME=str(self.home(host)), PACS_CONFIG=str(self.config_file(host)),
                   PYTHONPATH=str(REPO), NO_PROXY="*", no_proxy="*")
        if host is SERVICE:
            env.update(HADOOP_CONF_DIR=str(self.client_conf_dir()),
                       SPARK_CONF_DIR=str(self.client_conf_dir()))
        return env

    def client_conf_dir(self) -> Path:
        return self.base / "client-conf"

    # --- commands on a host -----------------------------------------------------------------
    def cmd(self, host: Host, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host), *args]

    def run(self, host: Host, *args: str, timeout: float = 600, check: bool = True,
            **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(self.cmd(host, *args), env=self.env(host), capture_output=True,
                           text=True, timeout=timeout, cwd=self.home(host), **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"on {host.name}: {' '.join(args)} exited {r.returncode}\n"
                               f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def popen(self, host: Host, *args: str, log: Path, extra_env: dict | None = None
              ) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(self.cmd(host, *args), env={**self.env(host),
                                                            **(extra_env or {})},
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.home(host),
                                start_new_session=True)

    def pacs(self, host: Host, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(host, PACS, *args, **kw)

    # --- build ---------------------------------------------------------------------------
    def create(self) -> None:
        """Bridge, namespaces, cables, addresses, name files, per-host homes."""
        require()
        self.kill_all()                 # leftovers of an interrupted run
        self.destroy_network()
        t0 = time.monotonic()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        hosts_file = "127.0.0.1 localhost\n" + "".join(
            f"{h.address} {h.name}\n" for h in HOSTS) + f"{BRIDGE_ADDRESS} hospital\n"
        for h in HOSTS:
            ns, veth = self.ns(h), self.veth(h)
            _ip("netns", "add", ns)
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            # this machine's own name resolves to the host's address inside it
            (etc / "hosts").write_text(hosts_file + f"{h.address} {os.uname().nodename}\n")
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            _ip("link", "set", f"{veth}p", "netns", ns)
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", f"{veth}p", "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{h.address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "via", BRIDGE_ADDRESS)
        for h in HOSTS:
            self.write_home(h)
        self.write_client_conf()
        self.timings["network_s"] = round(time.monotonic() - t0, 2)

    def write_home(self, host: Host) -> None:
        home = self.home(host)
        for sub in ("run", "logs", "conf", "data"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        fields = {k: v for k, v in self.host_fields(host).items() if k != "home"}
        self.config_file(host).write_text(
            f"# {host.name} ({host.address}) of the multi-host test topology\n"
            + "".join(f"{k} = {_toml_value(v)}\n" for k, v in fields.items()
                      if not isinstance(v, dict))
            + "".join(f"{k} = {_toml_value(v)}\n" for k, v in fields.items()
                      if isinstance(v, dict)))

    def write_client_conf(self) -> None:
        """What an administrator would hand a client host: core-, hdfs-, yarn-, hbase-site and
        spark-defaults.conf naming the master's addresses."""
        from deploy.configs import NAMENODE_HTTP_PORT, hadoop_xml, yarn_site
        s = self.settings(MASTER)
        conf = self.client_conf_dir()
        conf.mkdir(parents=True, exist_ok=True)
        m = MASTER.address
        (conf / "core-site.xml").write_text(hadoop_xml({"fs.defaultFS": s.namenode_rpc}))
        (conf / "hdfs-site.xml").write_text(hadoop_xml({
            "dfs.namenode.rpc-address": f"{m}:9000",
            "dfs.namenode.http-address": f"{m}:{NAMENODE_HTTP_PORT}",
            "dfs.replication": s.effective_replication}))
        yarn = {k: v for k, v in yarn_site(s).items() if k.startswith("yarn.resourcemanager")
                and "bind-host" not in k}
        (conf / "yarn-site.xml").write_text(hadoop_xml(yarn))
        (conf / "hbase-site.xml").write_text(hadoop_xml({
            "hbase.zookeeper.quorum": m, "hbase.zookeeper.property.clientPort": s.zookeeper_port,
            "hbase.regionserver.thrift.ipaddress": m,
            "hbase.regionserver.thrift.port": s.thrift_port}))
        # Spark's jars as `local:` (already at this path on every simulated host, as on a
        # cluster with Spark installed on its nodes): else every application uploads and every
        # NodeManager localizes ~400 MB of jars (the shared file system makes this honest here
        # for the same reason as spark_ship_python = false above)
        from deploy.daemons import pyspark_home
        (conf / "spark-defaults.conf").write_text(
            "spark.master yarn\nspark.executor.memory 512m\nspark.executor.instances 2\n"
            "spark.yarn.am.memory 384m\nspark.driver.memory 768m\n"
            f"spark.yarn.jars local:{pyspark_home() / 'jars'}/*\n")

    # --- start ---------------------------------------------------------------------------
    def start_daemons(self, host: Host, names: tuple[str, ...]) -> None:
        self.run(host, PYTHON, "-m", "tests.multihost.topology", "start", *names, timeout=300)

    def start_cluster(self, timeout: float = 420.0) -> dict[str, float]:
        """Start every host's daemons stage by stage, waiting for real health after each;
        returns seconds per stage."""
        from deploy import health
        s = self.settings(MASTER)
        t0 = time.monotonic()
        waits = {
            0: lambda: (health.hdfs_health(s).reachable and health.zookeeper_ok(s)
                        and health.yarn_running_nodemanagers(s) >= 0),
            len(STAGES) - 2: lambda: (self._hdfs_ready(s)
                                      and health.yarn_running_nodemanagers(s) >= len(WORKERS)),
            len(STAGES) - 1: lambda: health.hbase_ok(s),
        }
        for i, (host, names) in enumerate(STAGES):
            ts = time.monotonic()
            self.start_daemons(host, names)
            ready = waits.get(i)
            while ready is not None and not ready():
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError(f"stage {i} ({host.name}: {', '.join(names)}) not "
                                       f"healthy in time; logs in {self.home(host)}/logs\n"
                                       + self.log_tails(host, names))
                time.sleep(1.0)
            self.timings[f"stage{i}_{host.name}_s"] = round(time.monotonic() - ts, 1)
        self.timings["cluster_s"] = round(time.monotonic() - t0, 1)
        return self.timings

    # --- the MDC services on the service host ---------------------------------------------
    def certs_dir(self) -> Path:
        return self.base / "certs"

    def start_services(self, timeout: float = 240.0) -> dict[str, float]:
        """`pacs init`, then gateway, MDC DIMSE, portal and job runner on the service host,
        each listening on the service host's address; waits until each answers."""
        import socket

        from hl7_gateway.certs import create_dev_pki
        t0 = time.monotonic()
        self.pacs(SERVICE, "init", timeout=600)
        self.timings["init_s"] = round(time.monotonic() - t0, 1)
        create_dev_pki(self.certs_dir(), hosts=(SERVICE.address, SERVICE.name))
        logs = self.home(SERVICE) / "logs"
        a = SERVICE.address
        self.services = {
            "gateway": self.popen(SERVICE, PACS, "gateway", "--host", a, "--port",
                                  str(GATEWAY_PORT), "--certs", str(self.certs_dir()),
                                  "--log-file", str(logs / "gateway.log"),
                                  log=logs / "gateway.out"),
            "scp": self.popen(SERVICE, PACS, "scp", log=logs / "scp.out",
                              extra_env={"PACS_MDC_DIMSE_QR_AES": "FINDSCU"}),
            "portal": self.popen(SERVICE, PACS, "portal", "--host", a, "--port",
                                 str(PORTAL_PORT), log=logs / "portal.out"),
            "job-runner": self.popen(SERVICE, PACS, "job", "runner", log=logs / "job-runner.out"),
        }
        for name, port in (("gateway", GATEWAY_PORT), ("scp", MDC_DIMSE_PORT),
                           ("portal", PORTAL_PORT)):
            deadline = time.monotonic() + timeout
            while True:
                proc = self.services[name]
                if proc.poll() is not None:
                    out = (logs / f"{name}.out").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} on the service host exited:\n{out}")
                try:
                    with socket.create_connection((a, port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not listen on {a}:{port}") from None
                    time.sleep(0.5)
        self.timings["services_s"] = round(time.monotonic() - t0, 1)
        return self.timings

    @staticmethod
    def _hdfs_ready(s) -> bool:
        from deploy import health
        h = health.hdfs_health(s)
        return h.reachable and not h.safemode and h.live_datanodes >= len(WORKERS)

    def log_tails(self, host: Host, names, lines: int = 15) -> str:
        out = []
        for n in names:
            p = self.home(host) / "logs" / f"{n}.log"
            if p.exists():
                out.append(f"--- {host.name}/{n} ---\n"
                           + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    # --- faults --------------------------------------------------------------------------
    def cut(self, host: Host) -> None:
        """Cut a host off the network (its cable's bridge end down)."""
        _ip("link", "set", self.veth(host), "down")

    def heal(self, host: Host) -> None:
        _ip("link", "set", self.veth(host), "up")

    # --- tear down -----------------------------------------------------------------------
    def kill_all(self) -> None:
        """SIGTERM then SIGKILL every process in our namespaces (all of them ours)."""
        pids = []
        for h in HOSTS:
            r = _ip("netns", "pids", self.ns(h), check=False)
            pids += [int(p) for p in r.stdout.split() if p.strip().isdigit()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 15
            while sig == signal.SIGTERM and time.monotonic() < deadline and any(
                    _alive(p) for p in pids):
                time.sleep(0.3)

    def destroy_network(self) -> None:
        for h in HOSTS:
            _ip("netns", "del", self.ns(h), check=False)
            _ip("link", "del", self.veth(h), check=False)
            shutil.rmtree(Path("/etc/netns") / self.ns(h), ignore_errors=True)
        _ip("link", "del", self.bridge, check=False)
        try:
            Path("/etc/netns").rmdir()      # only when empty (another user's stays)
        except OSError:
            pass

    def destroy(self) -> None:
        self.kill_all()
        self.destroy_network()
        shutil.rmtree(self.base, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return Path(f"/proc/{pid}").exists()


def _start_here(names: list[str]) -> None:
    """Inside a host's namespace: start these daemons with the ordinary Supervisor."""
    from deploy.supervisor import Supervisor
    from pacs_hdfs.settings import get_settings
    sup = Supervisor(get_settings())
    for name in names:
        pid = sup.start_daemon(name)
        print(f"{name}: pid {pid}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "start":
        _start_here(sys.argv[2:])
    else:
        sys.exit("usage: python -m tests.multihost.topology start DAEMON...")
