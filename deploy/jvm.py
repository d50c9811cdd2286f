"""JVM options for the embedded daemons, in one place.

Java 17 closes JDK internals that Hadoop, HBase and ZooKeeper still reach into; these are the
`--add-opens`/`--add-exports` that Hadoop 3.4's and HBase 2.6's launcher scripts pass. The lean
flags keep a daemon's footprint close to its heap: serial GC (no GC threads per core), a small
code cache and metaspace cap, smaller thread stacks.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

JAVA17_OPENS = [
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.regex=ALL-UNNAMED",
    "--add-opens=java.base/java.util.zip=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
    "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
    "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
]

LEAN = [
    "-XX:+UseSerialGC",
    "-XX:ReservedCodeCacheSize=48m",
    "-XX:MaxMetaspaceSize=160m",
    "-XX:CICompilerCount=2",
    "-Xss512k",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
    "-Djava.awt.headless=true",
]


def jvm_options(heap_mb: int) -> list[str]:
    """Options for one daemon with an explicit heap."""
    return [f"-Xms{min(heap_mb, 64)}m", f"-Xmx{heap_mb}m", *LEAN, *JAVA17_OPENS]


def java_home() -> str:
    """JAVA_HOME as set, else the JDK of the `java` on PATH. A NodeManager hands it to the
    containers it launches (`{{JAVA_HOME}}/bin/java`), so it must name a real JDK."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if not java:
        raise FileNotFoundError("no `java` on PATH and JAVA_HOME unset")
    return str(Path(java).resolve().parent.parent)
