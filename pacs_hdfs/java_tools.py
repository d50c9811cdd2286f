"""Run Hadoop and HBase's own Java tools (and our single-file Java launchers) as clients of the
configured cluster: the Maven-resolved jars, a conf dir, and the Java 17 openings they need.

Used where the Python clients have no call for the job: HBase snapshots (Thrift 1 has none),
`DFSAdmin -allowSnapshot` on a cluster whose permissions make ALLOWSNAPSHOT superuser-only.

Conf dirs: the settings' `hadoop_conf_dir` / `hbase_conf_dir`, else `$HADOOP_CONF_DIR` /
`$HBASE_CONF_DIR` (a real cluster; `Settings.cluster_conf_dirs`, pacs_hdfs/hadoop_conf.py), else
the embedded cluster's generated ones under `$PACS_HOME/conf/<daemon>/` (deploy/configs.py).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.settings import Settings

JAVA_DIR = Path(__file__).resolve().parent / "java"

# What a Hadoop/HBase *client* reaches into on Java 17 (a subset of deploy/jvm.py's daemon list;
# the storage core does not import deploy).
CLIENT_JVM_OPTIONS = (
    "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
)

_EMBEDDED_CONF = {"hadoop": (0, "namenode"), "hbase": (1, "hbase-master")}


def conf_dir(settings: Settings, kind: str) -> Path:
    """The client conf dir for `kind` ("hadoop" or "hbase")."""
    index, daemon = _EMBEDDED_CONF[kind]
    given = settings.cluster_conf_dirs[index]
    return given if given else settings.path("conf", daemon)


def classpath(settings: Settings, kind: str) -> str:
    jars = settings.jars_dir / kind
    if not jars.is_dir():
        raise StorageError(f"{kind} jars not found in {jars}: run `make jars`")
    return f"{conf_dir(settings, kind)}:{jars}/*"


def run_java(settings: Settings, kind: str, main: str, *args: str,
             timeout: float = 600.0) -> subprocess.CompletedProcess:
    """Run a Java main class, or a single-file source under pacs_hdfs/java/ (`X.java`), with the
    `kind` jars and conf dir; raise StorageError with the tool's last lines when it fails."""
    target = str(JAVA_DIR / main) if main.endswith(".java") else main
    cmd = ["java", *CLIENT_JVM_OPTIONS, "-cp", classpath(settings, kind), target, *args]
    env = {**os.environ, "HADOOP_USER_NAME": os.environ.get("HADOOP_USER_NAME",
                                                             settings.hdfs_user)}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise StorageError(f"{main} {args[:1]} timed out after {timeout:.0f} s") from e
    if done.returncode != 0:
        tail = "\n".join(_tail(done.stderr))
        raise StorageError(f"{main} {' '.join(args[:2])} failed (exit {done.returncode}):\n{tail}")
    return done


def _tail(text: str, lines: int = 12) -> list[str]:
    """The last lines that say something (exception lines first), without stack frames."""
    kept = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("at ")]
    return kept[-lines:]
