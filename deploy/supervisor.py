"""A small process supervisor for the embedded cluster: start, wait for health, stop, status.

Each daemon is a separate JVM started in its own session (it outlives the `pacs` command), with
its pid in `$PACS_HOME/run/NAME.pid` and its output in `$PACS_HOME/logs/NAME.log`. A daemon's
command line carries `-Dpacs.daemon=NAME` so a recycled pid is never mistaken for it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from deploy import health
from deploy.configs import write_conf_dir
from deploy.daemons import Daemon, by_name, daemon_table, pyspark_home
from deploy.jvm import jvm_options
from pacs_hdfs.settings import Settings

SCALA_VERSION = "2.13"  # of the pyspark 4.x wheel's jars
Progress = Callable[[str], None]


class ClusterError(RuntimeError):
    """A daemon failed to start or become healthy; names it and carries its log tail."""

    def __init__(self, daemon: str, reason: str, log_tail: str = ""):
        self.daemon, self.reason, self.log_tail = daemon, reason, log_tail
        super().__init__(f"{daemon}: {reason}\n--- last lines of its log ---\n{log_tail}")


def _noop(_: str) -> None:
    pass


#: the service that restarts crashed daemons (`Supervisor.watch`, `pacs cluster watch`)
WATCHDOG = "watchdog"


class Supervisor:
    def __init__(self, settings: Settings):
        if not settings.embedded:
            raise ClusterError("cluster", "settings say embedded = false: manage the real "
                                          "cluster with its own tools")
        self.s = settings
        for sub in ("run", "logs", "conf", "data"):
            settings.path(sub).mkdir(parents=True, exist_ok=True)

    # --- files -----------------------------------------------------------------------------
    def pid_file(self, name: str) -> Path:
        return self.s.path("run", f"{name}.pid")

    def log_file(self, name: str) -> Path:
        return self.s.path("logs", f"{name}.log")

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            with open(self.log_file(name), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- processes -------------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        """The daemon's pid if it is running (and really is that daemon)."""
        try:
            pid = int(self.pid_file(name).read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if f"pacs.daemon={name}\0".encode() in cmdline + b"\0" else None

    def classpath(self, d: Daemon, conf: Path) -> str:
        if d.classpath == "spark":
            return f"{conf}:{pyspark_home() / 'jars'}/*"
        jars = self.s.jars_dir / d.classpath
        if not jars.is_dir():
            raise ClusterError(d.name, f"jars not found in {jars}: run `make jars`")
        return f"{conf}:{jars}/*"

    def command(self, d: Daemon) -> tuple[list[str], Path]:
        conf = write_conf_dir(self.s, d.name, d.datanode)
        args = [a.format(conf=conf) for a in d.args]
        cmd = ["java", f"-Dpacs.daemon={d.name}", *jvm_options(self.s.heap_mb[d.kind]),
               f"-Dhadoop.log.dir={self.s.path('logs')}", f"-Dhbase.log.dir={self.s.path('logs')}",
               "-Dzookeeper.jmx.log4j.disable=true",
               f"-Dlog4j.configuration=file:{conf}/log4j.properties",
               f"-Dlog4j2.configurationFile=file:{conf}/log4j2.properties",
               "-cp", self.classpath(d, conf), d.main, *args]
        return cmd, conf

    def env(self, d: Daemon, conf: Path) -> dict[str, str]:
        env = dict(os.environ, HADOOP_CONF_DIR=str(conf), HBASE_CONF_DIR=str(conf),
                   HADOOP_USER_NAME=self.s.hdfs_user, **d.extra_env)
        if d.classpath == "spark":
            # The wheel has no RELEASE file; the launcher then needs the Scala version spelled out
            # to find `jars/` when the worker builds executor command lines.
            env["SPARK_HOME"] = str(pyspark_home())
            env["SPARK_SCALA_VERSION"] = SCALA_VERSION
        return env

    def format_namenode_if_new(self) -> None:
        if (self.s.path("data", "namenode", "current", "VERSION")).exists():
            return
        d = by_name(self.s, "namenode")
        cmd, conf = self.command(d)
        cmd = cmd[:-len(d.args) or None] if d.args else cmd
        cmd += ["-format", "-nonInteractive", "-force", "-clusterid", "pacs-embedded"]
        with open(self.log_file("namenode-format"), "ab") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT,
                                 env=self.env(d, conf))
        if rc != 0:
            raise ClusterError("namenode", f"format failed (exit {rc})",
                               self.log_tail("namenode-format"))

    def start_daemon(self, name: str) -> int:
        """Start one daemon unless already running; return its pid."""
        running = self.pid(name)
        if running:
            return running
        d = by_name(self.s, name)
        if name == "namenode":
            self.format_namenode_if_new()
        cmd, conf = self.command(d)
        with open(self.log_file(name), "ab") as log:
            log.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env(d, conf),
                                    cwd=self.s.home_abs, start_new_session=True)
        self.pid_file(name).write_text(str(proc.pid))
        # Until exec() the child's cmdline is ours; wait for the daemon marker to show.
        for _ in range(50):
            if self.pid(name) or proc.poll() is not None:
                break
            time.sleep(0.05)
        return proc.pid

    def start_python_service(self, name: str, module: str, *args: str) -> int:
        """Start one of our Python services (scp, gateway, portal, job runner) in the background.

        `-X pacs.daemon=NAME` marks its command line the way `-Dpacs.daemon` marks the JVMs.
        """
        running = self.pid(name)
        if running:
            return running
        cmd = [sys.executable, "-X", f"pacs.daemon={name}", "-m", module, *args]
        with open(self.log_file(name), "ab") as log:
            log.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=dict(os.environ, PACS_HOME=str(self.s.home_abs)))
        self.pid_file(name).write_text(str(proc.pid))
        return proc.pid

    def stop_daemon(self, name: str, timeout: float = 20.0) -> bool:
        """SIGTERM (graceful: HBase flushes, HDFS closes), SIGKILL after `timeout`.

        The pid file goes first: a daemon without one was stopped on purpose, and the
        watchdog (`watch`) restarts only daemons whose pid file outlived their process."""
        pid = self.pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if not pid:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_daemon(pid, name):
            time.sleep(0.2)
            _reap(pid)
        if _is_daemon(pid, name):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
            _reap(pid)
        return True

    def crashed(self) -> list[str]:
        """Daemons and services that died without being stopped: their pid file is still
        there but no such process runs."""
        from deploy.services import SERVICES
        names = [d.name for d in daemon_table(self.s)] + [n for n, _ in SERVICES]
        return [n for n in names if self.pid_file(n).exists() and not self.pid(n)]

    def restart(self, name: str) -> int:
        """Start a crashed daemon or service again, the way it was started."""
        from deploy.services import SERVICES
        args = dict(SERVICES).get(name)
        if args is not None:
            return self.start_python_service(name, "pacs_cli", *args)
        return self.start_daemon(name)

    def watch(self, interval: float = 3.0, max_restarts: int = 5, window_s: float = 600.0,
              log: Callable[[str], None] = _noop) -> None:
        """Restart what crashes (as systemd's Restart=on-failure would), forever: a region
        server that aborts on a failed WAL roll, a DataNode killed by the kernel. A daemon that
        crashes `max_restarts` times within `window_s` is left down (and logged): restarting it
        again would only hide the problem."""
        restarts: dict[str, list[float]] = {}
        while True:
            for name in self.crashed():
                now = time.monotonic()
                recent = [t for t in restarts.get(name, []) if now - t < window_s]
                if len(recent) >= max_restarts:
                    if len(recent) == max_restarts:
                        log(f"{name} crashed {max_restarts} times in {window_s:.0f} s: left "
                            f"down; last log lines:\n{self.log_tail(name, 10)}")
                        recent.append(now)
                    restarts[name] = recent
                    continue
                log(f"{name} is not running (crashed): restarting; last log lines:\n"
                    f"{self.log_tail(name, 5)}")
                try:
                    self.restart(name)
                except Exception as e:  # noqa: BLE001 - keep watching the others
                    log(f"{name}: restart failed: {e}")
                restarts[name] = recent + [now]
            time.sleep(interval)

    # --- the whole cluster -----------------------------------------------------------------
    def up(self, progress: Progress = _noop, timeout: float = 240.0) -> dict:
        """Start every daemon stage by stage, waiting for real health after each stage."""
        t0 = time.monotonic()
        table = daemon_table(self.s)
        checks = {0: self._stage0_ready, 1: self._stage1_ready, 2: self._stage2_ready}
        for stage in sorted({d.stage for d in table}):
            members = [d for d in table if d.stage == stage]
            for d in members:
                progress(f"starting {d.name}")
                self.start_daemon(d.name)
            self._wait(checks[stage], members, progress, t0 + timeout)
        progress("starting the watchdog")
        self.start_python_service(WATCHDOG, "pacs_cli", "cluster", "watch")
        return {"seconds": round(time.monotonic() - t0, 1)}

    def _wait(self, ready: Callable[[], str | None], members: list[Daemon],
              progress: Progress, deadline: float) -> None:
        """Poll `ready` (None = ready, else what is awaited) until deadline; fail fast on death."""
        last = ""
        while True:
            for d in members:
                if not self.pid(d.name):
                    raise ClusterError(d.name, "process exited during start-up",
                                       self.log_tail(d.name))
            waiting = ready()
            if waiting is None:
                return
            if waiting != last:
                progress(f"waiting: {waiting}")
                last = waiting
            if time.monotonic() > deadline:
                culprit = next((d.name for d in members if d.name in waiting), members[0].name)
                raise ClusterError(culprit, f"not healthy in time ({waiting})",
                                   self.log_tail(culprit))
            time.sleep(0.5)

    def _stage0_ready(self) -> str | None:
        if not health.hdfs_health(self.s).reachable:
            return "namenode web endpoint"
        if not health.zookeeper_ok(self.s):
            return "zookeeper ruok"
        if self.s.yarn:
            if health.yarn_running_nodemanagers(self.s) < 0:
                return "resourcemanager REST endpoint"
        elif health.spark_workers(self.s) < 0:
            return "spark-master web endpoint"
        return None

    def _stage1_ready(self) -> str | None:
        h = health.hdfs_health(self.s)
        if h.live_datanodes < self.s.datanodes:
            return f"datanode registration ({h.live_datanodes}/{self.s.datanodes} live)"
        if h.safemode:
            return "namenode leaving safe mode"
        if self.s.yarn:
            if health.yarn_running_nodemanagers(self.s) < 1:
                return "nodemanager registration"
        elif health.spark_workers(self.s) < 1:
            return "spark-worker registration"
        return None

    def _stage2_ready(self) -> str | None:
        if not health.hbase_ok(self.s):
            return "hbase-master initialisation / hbase-thrift answering"
        return None

    def down(self, progress: Progress = _noop) -> None:
        """Stop our Python services (they use the cluster), then every daemon."""
        from deploy.services import SERVICES
        self.stop_daemon(WATCHDOG)  # first: it would restart what is being stopped
        for name, _ in reversed(SERVICES):
            if self.pid(name):
                progress(f"stopping {name}")
                self.stop_daemon(name)
        for d in reversed(daemon_table(self.s)):
            if self.pid(d.name):
                progress(f"stopping {d.name}")
                self.stop_daemon(d.name)

    def status(self) -> dict:
        """Machine-readable status (the `pacs cluster status --json` contract)."""
        h = health.hdfs_health(self.s)
        daemons = []
        for d in daemon_table(self.s):
            pid = self.pid(d.name)
            daemons.append({"name": d.name, "pid": pid, "alive": pid is not None,
                            "ports": list(d.ports), "rss_mb": _rss_mb(pid)})
        workers = (health.yarn_running_nodemanagers(self.s) if self.s.yarn
                   else health.spark_workers(self.s))
        hbase = health.hbase_ok(self.s) if any(
            x["alive"] for x in daemons if x["name"] == "hbase-thrift") else False
        hdfs = {"reachable": h.reachable, "safemode": h.safemode,
                "live_datanodes": h.live_datanodes, "dead_datanodes": h.dead_datanodes,
                "expected_datanodes": self.s.datanodes,
                "replication": self.s.effective_replication}
        healthy = (all(x["alive"] for x in daemons) and h.reachable and not h.safemode
                   and h.live_datanodes == self.s.datanodes and hbase and workers >= 1)
        out = {"healthy": healthy, "home": str(self.s.home_abs), "daemons": daemons,
               "hdfs": hdfs, "hbase": {"thrift_ok": hbase},
               "spark": {"master": self.s.spark_master, "alive_workers": max(workers, 0)},
               "total_rss_mb": round(sum(x["rss_mb"] or 0 for x in daemons), 1)}
        if self.s.yarn:  # jobs run on YARN: its NodeManagers are the workers
            out["spark"] = {"master": "yarn", "alive_workers": max(workers, 0)}
            out["yarn"] = {"resourcemanager": self.s.yarn_rm_url,
                           "running_nodemanagers": max(workers, 0)}
        return out


def _is_daemon(pid: int, name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return f"pacs.daemon={name}\0".encode() in cmdline + b"\0"


def _reap(pid: int) -> None:
    """Collect a child we started in this process (no zombie keeping the pid alive)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
