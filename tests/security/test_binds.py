"""Nothing listens beyond loopback unless the settings say so (issue 15, item 1).

The hostile tester found the Spark master and worker web UIs on 0.0.0.0:8080/8081 (`/json/`
answering, executor logs readable, kill enabled) and the SCP on 0.0.0.0. Here:

- the generated configuration binds every listener of the embedded cluster to
  `Settings.cluster_bind` (checked for a non-default address, so a hard-coded 127.0.0.1 or a
  daemon default would show);
- the running stack's listening sockets (TCP, and UDP sockets not connected to a peer), read
  from /proc for our processes (the pid files under `$PACS_HOME/run` and their children: Spark
  executors, the job runner's driver JVM), are on an address the settings name for that
  process, or loopback; never 0.0.0.0 or :: unless a setting asks for it;
- our services started as `pacs` commands (MDC DIMSE with its TLS listener, gateway, portal,
  hospital edge with its review page, a job runner with its Spark driver) likewise;
- the Spark UIs are not reachable on a non-loopback address of this host, the REST submission
  port is closed, and the master's UI no longer kills applications.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from deploy.configs import SPARK_DAEMON_CONF, hbase_site, hdfs_site, write_conf_dir, zoo_cfg
from deploy.daemons import daemon_table
from pacs_hdfs.settings import Settings
from tests.security.dicom_security_support import (can_make_interfaces, free_port,
                                                   non_loopback_address, stop_process, tls_pki,
                                                   wait_listening)

#: settings naming the listen addresses of each process (by pid-file name); processes not
#: listed here (gateway, portal, watchdog) have no bind setting and must stay on loopback
BIND_SETTINGS: dict[str, tuple[str, ...]] = {
    "scp": ("mdc_dimse_bind", "mdc_dimse_tls_bind"),
    "edge": ("edge_bind", "edge_review_bind"),
    "job-runner": ("cluster_bind",),
}
CLUSTER_BIND = ("cluster_bind",)
WILDCARDS = {"0.0.0.0", "::"}
PROC_NET = {"tcp": "/proc/net/tcp", "tcp6": "/proc/net/tcp6", "udp": "/proc/net/udp",
            "udp6": "/proc/net/udp6"}
TCP_LISTEN, UDP_UNCONNECTED = "0A", "07"


# --- the generated configuration ------------------------------------------------------------

ELSEWHERE = "10.11.12.13"

#: every bind-address key of the generated configuration: (file, key, expected value)
CONFIG_BINDS = [
    ("hdfs-site", "dfs.namenode.rpc-bind-host", ELSEWHERE),
    ("hdfs-site", "dfs.namenode.servicerpc-bind-host", ELSEWHERE),
    ("hdfs-site", "dfs.namenode.lifeline.rpc-bind-host", ELSEWHERE),
    ("hdfs-site", "dfs.namenode.http-bind-host", ELSEWHERE),
    ("hdfs-site", "dfs.namenode.https-bind-host", ELSEWHERE),
    ("hdfs-site", "dfs.datanode.address", f"{ELSEWHERE}:9801"),
    ("hdfs-site", "dfs.datanode.http.address", f"{ELSEWHERE}:9811"),
    ("hdfs-site", "dfs.datanode.ipc.address", f"{ELSEWHERE}:9821"),
    ("hbase-site", "hbase.master.ipc.address", ELSEWHERE),
    ("hbase-site", "hbase.regionserver.ipc.address", ELSEWHERE),
    ("hbase-site", "hbase.master.info.bindAddress", ELSEWHERE),
    ("hbase-site", "hbase.regionserver.info.bindAddress", ELSEWHERE),
    ("hbase-site", "hbase.thrift.info.bindAddress", ELSEWHERE),
    ("hbase-site", "hbase.regionserver.thrift.ipaddress", ELSEWHERE),
    ("zoo.cfg", "clientPortAddress", ELSEWHERE),
    ("zoo.cfg", "admin.serverAddress", ELSEWHERE),
]


def _config(s: Settings, name: str) -> dict[str, str]:
    if name == "hdfs-site":
        return {k: str(v) for k, v in hdfs_site(s, 1).items()}
    if name == "hbase-site":
        return {k: str(v) for k, v in hbase_site(s).items()}
    return dict(line.split("=", 1) for line in zoo_cfg(s).splitlines() if "=" in line)


@pytest.mark.parametrize("file,key,expected", CONFIG_BINDS)
def test_generated_config_binds_the_cluster_bind_address(file, key, expected):
    assert _config(Settings(cluster_bind=ELSEWHERE), file)[key] == expected


def test_default_config_has_no_wildcard_and_web_uis_off(tmp_path):
    s = Settings(home=tmp_path)
    configs = {name: _config(s, name) for name in ("hdfs-site", "hbase-site", "zoo.cfg")}
    for name, props in configs.items():
        assert not [k for k, v in props.items() if "0.0.0.0" in v], name
    hbase = configs["hbase-site"]
    assert all(hbase[f"hbase.{k}.info.port"] == "-1" for k in ("master", "regionserver", "thrift"))
    assert configs["zoo.cfg"]["admin.enableServer"] == "false"
    spark = (write_conf_dir(s, "spark-master") / "spark-defaults.conf").read_text()
    assert "spark.master.rest.enabled false" in spark and "spark.ui.killEnabled false" in spark


def test_daemon_table_binds_spark_and_thrift_to_the_cluster_bind_address():
    table = {d.name: d for d in daemon_table(Settings(cluster_bind=ELSEWHERE))}
    for name in ("spark-master", "spark-worker"):
        d = table[name]
        assert d.extra_env["SPARK_LOCAL_IP"] == ELSEWHERE      # the web UIs
        assert d.args[d.args.index("--host") + 1] == ELSEWHERE  # RPC
        assert "--properties-file" in d.args
    thrift = table["hbase-thrift"].args
    assert thrift[thrift.index("-b") + 1] == ELSEWHERE
    assert SPARK_DAEMON_CONF["spark.master.rest.enabled"] == "false"


def test_spark_driver_binds_the_cluster_bind_address(monkeypatch):
    """The Spark driver of our jobs (job runner): RPC on cluster_bind, no UI, kill off."""
    from pacs_hdfs import clients
    captured = {}

    class Builder:
        def master(self, _m):
            return self

        def appName(self, _n):  # noqa: N802 - pyspark's name
            return self

        def config(self, k, v):
            captured[k] = v
            return self

        def getOrCreate(self):  # noqa: N802
            return captured
    import pyspark.sql
    monkeypatch.setattr(pyspark.sql.SparkSession, "builder", Builder())
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    conf = clients.spark_session(Settings(cluster_bind=ELSEWHERE))
    assert conf["spark.driver.bindAddress"] == ELSEWHERE
    assert conf["spark.ui.enabled"] == "false" and conf["spark.ui.killEnabled"] == "false"
    assert os.environ["SPARK_LOCAL_IP"] == ELSEWHERE


# --- the running stack -------------------------------------------------------------------------

@dataclass(frozen=True)
class Listener:
    proto: str
    address: str
    port: int
    pid: int
    process: str

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto} {host}:{self.port} -> {self.process} (pid {self.pid})"


def _address(hex_addr: str) -> str:
    """/proc/net address field (host byte order words) to text."""
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    ip = ipaddress.IPv6Address(words)
    return str(ip.ipv4_mapped or ip)


def _listening_inodes() -> dict[str, tuple[str, str, int]]:
    """socket inode -> (proto, address, port) of every listening TCP / unconnected UDP socket."""
    out = {}
    for proto, path in PROC_NET.items():
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, remote, state, inode = f[1], f[2], f[3], f[9]
            addr, port = local.split(":")
            listening = state == TCP_LISTEN if proto.startswith("tcp") else (
                state == UDP_UNCONNECTED and set(remote.replace(":", "")) == {"0"})
            if listening and inode != "0":
                out[inode] = (proto, _address(addr), int(port, 16))
    return out


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def process_tree(roots: dict[int, str]) -> dict[int, str]:
    """pid -> the name of the process it belongs to (a root or a root's descendant)."""
    kids, out = _children(), {}
    stack = list(roots.items())
    while stack:
        pid, name = stack.pop()
        if pid not in out:
            out[pid] = name
            stack += [(k, name) for k in kids.get(pid, [])]
    return out


def listeners(pids: dict[int, str]) -> list[Listener]:
    inodes = _listening_inodes()
    found = set()
    for pid, name in pids.items():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                proto, addr, port = inodes[target[8:-1]]
                found.add(Listener(proto, addr, port, pid, name))
    return sorted(found, key=lambda x: (x.process, x.port, x.proto))


def stack_processes(s: Settings) -> dict[int, str]:
    """Our running daemons and services: pid files whose process carries its daemon marker."""
    from deploy.supervisor import Supervisor
    sup = Supervisor(s)
    roots = {}
    for pid_file in s.path("run").glob("*.pid"):
        pid = sup.pid(pid_file.stem)
        if pid:
            roots[pid] = pid_file.stem
    return process_tree(roots)


def allowed(s: Settings, process: str) -> set[str]:
    """Addresses `process` may listen on: those its settings name."""
    return {getattr(s, k) for k in BIND_SETTINGS.get(process, CLUSTER_BIND)}


def violations(s: Settings, found: list[Listener]) -> list[str]:
    bad = []
    for x in found:
        ok = allowed(s, x.process)
        if x.address in WILDCARDS:
            if x.address not in ok and not (x.address == "::" and "0.0.0.0" in ok):
                bad.append(str(x))
        elif x.address not in ok and not ipaddress.ip_address(x.address).is_loopback:
            bad.append(str(x))
    return bad


@pytest.mark.parametrize("hex_addr,text", [
    ("0100007F", "127.0.0.1"), ("00000000", "0.0.0.0"),
    ("00000000000000000000000001000000", "::1"), ("00000000000000000000000000000000", "::"),
    ("0000000000000000FFFF00000100007F", "127.0.0.1"),
])
def test_proc_net_addresses(hex_addr, text):
    assert _address(hex_addr) == text


def test_violations_are_wildcards_and_addresses_no_setting_names():
    s = Settings()
    found = [Listener("tcp", "0.0.0.0", 8080, 1, "spark-master"),
             Listener("tcp6", "::", 8000, 2, "portal"),
             Listener("tcp", "192.0.2.2", 8443, 3, "gateway"),
             Listener("tcp", "127.0.0.1", 9870, 4, "namenode"),
             Listener("tcp", "127.0.0.2", 11114, 5, "scp")]
    assert [v.split(" -> ")[1].split()[0] for v in violations(s, found)] == \
        ["spark-master", "portal", "gateway"]
    asked = Settings(edge_bind="0.0.0.0", mdc_dimse_bind="192.0.2.2")
    assert not violations(asked, [Listener("tcp", "0.0.0.0", 11112, 1, "edge"),
                                  Listener("tcp", "192.0.2.2", 11114, 2, "scp")])
    assert violations(asked, [Listener("tcp", "0.0.0.0", 11114, 2, "scp")])


@pytest.mark.cluster
def test_running_stack_listens_only_where_the_settings_say(cluster, settings):
    found = listeners(stack_processes(settings))
    print("\nlistening sockets of the running stack:\n" + "\n".join(map(str, found)))
    names = {x.process for x in found}
    assert {"namenode", "zookeeper", "spark-master", "spark-worker", "hbase-thrift"} <= names
    assert not violations(settings, found), violations(settings, found)


@pytest.mark.cluster
def test_spark_uis_are_loopback_only_and_do_not_kill(cluster, settings):
    """The tester's row reversed: not reachable beyond loopback, `/json/` only on loopback
    (the health check reads it there), no REST submission port, no kill."""
    if not can_make_interfaces():
        pytest.skip("needs root and iproute2 for a non-loopback test address")
    master_ui = int(settings.spark_master_webui.rsplit(":", 1)[1])
    rpc = int(settings.spark_master.rsplit(":", 1)[1])
    with non_loopback_address() as outside:
        for port in (master_ui, 8081, rpc, 6066):
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=3).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 6066), timeout=3).close()
    status = requests.get(f"http://127.0.0.1:{master_ui}/json/", timeout=5).json()
    assert status["aliveworkers"] >= 1
    kill = requests.post(f"http://127.0.0.1:{master_ui}/app/kill/",
                         data={"id": "app-none", "terminate": "true"}, timeout=5,
                         allow_redirects=False)
    assert kill.status_code in (404, 405), kill.status_code


# --- our services ----------------------------------------------------------------------------

@pytest.mark.cluster
def test_services_listen_only_where_the_settings_say(cluster, settings, tmp_path):
    """`pacs scp` (plain and TLS), `pacs gateway`, `pacs portal`, `pacs edge` (and its review
    page) and a job runner's Spark driver, each started as under `pacs up` with default binds
    and test ports, in a scratch namespace."""
    from hl7_gateway.certs import issue_edge_cert
    from tests.namespace_support import scratch_namespace
    with scratch_namespace("binds", tmp_path / "home") as (s, env):
        pki = tls_pki(tmp_path / "certs", "127.0.0.1")
        edge = issue_edge_cert(pki.paths.directory, "binds-edge")
        ports = {k: free_port() for k in ("scp", "tls", "gateway", "portal", "edge", "review")}
        env = {**env, "PACS_MDC_DIMSE_PORT": str(ports["scp"]),
               "PACS_MDC_DIMSE_TLS_PORT": str(ports["tls"]),
               "PACS_MDC_DIMSE_TLS_CERT": str(pki.paths.server_cert),
               "PACS_MDC_DIMSE_TLS_KEY": str(pki.paths.server_key),
               "PACS_MDC_DIMSE_TLS_CA": str(pki.paths.ca_cert), "PACS_MDC_DIMSE_QR_AES": "X",
               "PACS_EDGE_PORT": str(ports["edge"]), "PACS_EDGE_REVIEW_PORT": str(ports["review"]),
               "PACS_EDGE_MDC_URL": f"https://127.0.0.1:{ports['gateway']}",
               "PACS_EDGE_CLIENT_CERT": str(edge.cert), "PACS_EDGE_CLIENT_KEY": str(edge.key),
               "PACS_EDGE_MDC_CA": str(edge.ca_cert)}
        commands = {
            "scp": (["scp"], [ports["scp"], ports["tls"]]),
            "gateway": (["gateway", "--port", str(ports["gateway"]), "--certs",
                         str(pki.paths.directory)], [ports["gateway"]]),
            "portal": (["portal", "--port", str(ports["portal"])], [ports["portal"]]),
            "edge": (["edge"], [ports["edge"], ports["review"]]),
        }
        procs: dict[str, subprocess.Popen] = {}
        try:
            for name, (args, _) in commands.items():
                log = tmp_path / f"{name}.log"
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "pacs_cli", *args], env=env,
                    stdout=open(log, "ab"), stderr=subprocess.STDOUT)
            for name, (_, wanted) in commands.items():
                for port in wanted:
                    wait_listening("127.0.0.1", port, procs[name], tmp_path / f"{name}.log")
            job = subprocess.run([str(Path(sys.executable).parent / "pacs"), "job", "submit",
                                  "spark-selftest", "--wait"], env=env, capture_output=True,
                                 text=True, timeout=300)
            assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
            roots = {p.pid: name for name, p in procs.items()}
            runner = int((s.path("run") / "job-runner.pid").read_text())
            roots[runner] = "job-runner"
            found = listeners(process_tree(roots))
            print("\nlistening sockets of the services:\n" + "\n".join(map(str, found)))
            for name, (_, wanted) in commands.items():
                assert set(wanted) <= {x.port for x in found if x.process == name}, name
            assert any(x.process == "job-runner" for x in found), "no Spark driver socket"
            assert not violations(s, found), violations(s, found)
            # the Spark executors of that job run under the worker: the cluster's check again
            assert not violations(settings, listeners(stack_processes(settings))), \
                violations(settings, listeners(stack_processes(settings)))
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                stop_process(p)
