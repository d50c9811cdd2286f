"""A real cluster's endpoints, read from its own client configuration directories.

A Hadoop administrator hands out `HADOOP_CONF_DIR` (core-site.xml, hdfs-site.xml, yarn-site.xml),
`HBASE_CONF_DIR` (hbase-site.xml) and `SPARK_CONF_DIR` (spark-defaults.conf); repeating their
addresses in pacs.toml would only let the two drift apart. With `embedded = false` the settings
take every endpoint they do not name themselves from here (pacs_hdfs/settings.py, section "YARN
and real clusters"): fs.defaultFS, the NameNodes' web addresses (all of an HA nameservice, for
the `hdfs` package's 'url1;url2' failover), the ResourceManager web address(es), the HBase
ZooKeeper/Thrift ports and the Spark master.

Pure functions on dicts of properties, so every rule is unit-tested without a cluster
(tests/unit/test_hadoop_conf.py). The embedded cluster never reads these: its own configuration
is generated from the settings (deploy/configs.py), the other way round.
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

WILDCARDS = ("0.0.0.0", "::", "[::]", "")
NAMENODE_HTTP_PORT, NAMENODE_HTTPS_PORT = 9870, 9871
RM_HTTP_PORT, RM_HTTPS_PORT = 8088, 8090
SPARK_MASTER_WEBUI_PORT = 8080
_VAR = re.compile(r"\$\{([^}$]+)\}")


# --- reading files ----------------------------------------------------------------------------

def read_site(path: Path) -> dict[str, str]:
    """The properties of a Hadoop-style XML file (`<configuration><property><name>/<value>`),
    with `${name}` references to other properties or environment variables expanded."""
    root = ET.parse(path).getroot()
    props: dict[str, str] = {}
    for prop in root.iter("property"):
        name, value = prop.findtext("name"), prop.findtext("value")
        if name:
            props[name.strip()] = (value or "").strip()
    return expand(props)


def expand(props: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Hadoop's variable expansion: `${x}` is property x, else environment variable x
    (`${env.X}` too); unknown references stay as written. A few passes cover chains."""
    env = os.environ if env is None else env
    out = dict(props)

    def one(m: re.Match) -> str:
        key = m.group(1)
        if key in out:
            return out[key]
        key = key[4:] if key.startswith("env.") else key
        return env.get(key, m.group(0))
    for _ in range(8):
        changed = False
        for k, v in out.items():
            if "${" in v:
                new = _VAR.sub(one, v)
                changed |= new != v
                out[k] = new
        if not changed:
            break
    return out


def read_spark_defaults(path: Path) -> dict[str, str]:
    """spark-defaults.conf: `key value` or `key=value` per line, `#` comments."""
    conf: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([^\s=:]+)\s*[\s=:]\s*(.*)$", line)
        if m:
            conf[m.group(1)] = m.group(2).strip()
        else:
            conf[line] = ""
    return conf


@dataclass
class ClusterConf:
    """What the configuration directories say, file by file (empty dicts for absent files)."""
    core: dict[str, str] = field(default_factory=dict)
    hdfs: dict[str, str] = field(default_factory=dict)
    yarn: dict[str, str] = field(default_factory=dict)
    hbase: dict[str, str] = field(default_factory=dict)
    spark: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)   # the files read, for `pacs doctor`

    @classmethod
    def load(cls, hadoop_dir: Path | None, hbase_dir: Path | None = None,
             spark_dir: Path | None = None) -> ClusterConf:
        c = cls()
        for attr, folder, name in (("core", hadoop_dir, "core-site.xml"),
                                   ("hdfs", hadoop_dir, "hdfs-site.xml"),
                                   ("yarn", hadoop_dir, "yarn-site.xml"),
                                   ("hbase", hbase_dir, "hbase-site.xml")):
            if folder and (Path(folder) / name).is_file():
                setattr(c, attr, read_site(Path(folder) / name))
                c.files.append(str(Path(folder) / name))
        if spark_dir and (Path(spark_dir) / "spark-defaults.conf").is_file():
            c.spark = read_spark_defaults(Path(spark_dir) / "spark-defaults.conf")
            c.files.append(str(Path(spark_dir) / "spark-defaults.conf"))
        return c


def conf_dirs(hadoop: Path | None = None, hbase: Path | None = None, spark: Path | None = None,
              env: Mapping[str, str] | None = None) -> tuple[Path | None, Path | None,
                                                             Path | None]:
    """The three directories: the settings' own when given, else the standard variables
    (HBase and Spark fall back to the Hadoop directory, as their launchers do not, but an
    administrator's single client-config folder usually holds all four files)."""
    env = os.environ if env is None else env

    def pick(given, var):
        return Path(given) if given else (Path(env[var]) if env.get(var) else None)
    h = pick(hadoop, "HADOOP_CONF_DIR") or pick(None, "YARN_CONF_DIR")
    return h, pick(hbase, "HBASE_CONF_DIR") or h, pick(spark, "SPARK_CONF_DIR")


# --- endpoints --------------------------------------------------------------------------------

def _host_port(addr: str) -> tuple[str, int | None]:
    addr = addr.strip()
    if "://" in addr:
        u = urlsplit(addr)
        return u.hostname or "", u.port
    host, _, port = addr.rpartition(":")
    if not host:                       # no colon
        return addr, None
    return host.strip("[]"), int(port) if port.isdigit() else None


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def nameservice(core: Mapping[str, str], hdfs: Mapping[str, str]) -> str | None:
    """The HA nameservice fs.defaultFS names (`hdfs://mdc-ns` -> 'mdc-ns'), if it is one."""
    default_fs = core.get("fs.defaultFS") or core.get("fs.default.name") or ""
    host = urlsplit(default_fs).hostname if default_fs.startswith("hdfs://") else None
    services = [s.strip() for s in hdfs.get("dfs.nameservices", "").split(",") if s.strip()]
    if host and (host in services or f"dfs.ha.namenodes.{host}" in hdfs):
        return host
    if not host and len(services) == 1:
        return services[0]
    return None


def webhdfs_urls(core: Mapping[str, str], hdfs: Mapping[str, str]) -> list[str]:
    """The NameNodes' WebHDFS base URLs: every NameNode of the HA nameservice fs.defaultFS
    names (dfs.ha.namenodes.NS -> dfs.namenode.http[s]-address.NS.NN), else the one
    dfs.namenode.http[s]-address (a wildcard host replaced by the NameNode's RPC host)."""
    https = hdfs.get("dfs.http.policy", "HTTP_ONLY").upper() == "HTTPS_ONLY"
    scheme, key = ("https", "dfs.namenode.https-address") if https \
        else ("http", "dfs.namenode.http-address")
    default_port = NAMENODE_HTTPS_PORT if https else NAMENODE_HTTP_PORT
    ns = nameservice(core, hdfs)
    if ns:
        urls = []
        for nn in (n.strip() for n in hdfs.get(f"dfs.ha.namenodes.{ns}", "").split(",")):
            if not nn:
                continue
            host, port = _host_port(hdfs.get(f"{key}.{ns}.{nn}", ""))
            rpc_host, _ = _host_port(hdfs.get(f"dfs.namenode.rpc-address.{ns}.{nn}", ""))
            host = rpc_host if host in WILDCARDS else host
            if host:
                urls.append(_url(scheme, host, port or default_port))
        return urls
    rpc = core.get("fs.defaultFS") or hdfs.get("dfs.namenode.rpc-address") or ""
    rpc_host, _ = _host_port(rpc)
    host, port = _host_port(hdfs.get(key, ""))
    host = rpc_host if host in WILDCARDS else host
    return [_url(scheme, host, port or default_port)] if host else []


def hdfs_client_conf(core: Mapping[str, str], hdfs: Mapping[str, str]) -> dict[str, str]:
    """The HDFS client keys a Spark executor needs to resolve an HA nameservice
    (spark.hadoop.* of these), for executors whose hosts lack the client configuration."""
    ns = nameservice(core, hdfs)
    if not ns:
        return {}
    keys = {"dfs.nameservices", f"dfs.ha.namenodes.{ns}",
            f"dfs.client.failover.proxy.provider.{ns}"}
    prefixes = tuple(f"dfs.namenode.{kind}-address.{ns}."
                     for kind in ("rpc", "http", "https", "servicerpc"))
    return {k: v for k, v in hdfs.items() if k in keys or k.startswith(prefixes)}


def yarn_rm_urls(yarn: Mapping[str, str]) -> list[str]:
    """The ResourceManager web/REST URLs: each RM of an HA pair
    (yarn.resourcemanager.ha.rm-ids -> webapp.address.ID or hostname.ID:8088), else the one."""
    if not yarn:
        return []
    https = yarn.get("yarn.http.policy", "HTTP_ONLY").upper() == "HTTPS_ONLY"
    scheme, key, port0 = (("https", "yarn.resourcemanager.webapp.https.address", RM_HTTPS_PORT)
                          if https else ("http", "yarn.resourcemanager.webapp.address",
                                         RM_HTTP_PORT))
    ha = yarn.get("yarn.resourcemanager.ha.enabled", "false").lower() == "true"
    ids = [i.strip() for i in yarn.get("yarn.resourcemanager.ha.rm-ids", "").split(",")
           if i.strip()] if ha else []
    urls = []
    for suffix in ([f".{i}" for i in ids] or [""]):
        host, port = _host_port(yarn.get(key + suffix, ""))
        if not host or host in WILDCARDS:
            host = yarn.get(f"yarn.resourcemanager.hostname{suffix}", "").strip()
        if host and host not in WILDCARDS:
            urls.append(_url(scheme, host, port or port0))
    return urls


def thrift_endpoint(hbase: Mapping[str, str]) -> tuple[str | None, int | None]:
    """HBase Thrift host and port when hbase-site names them (the Thrift server's bind
    address, if not a wildcard, and hbase.regionserver.thrift.port)."""
    host = hbase.get("hbase.regionserver.thrift.ipaddress", "").strip()
    port = hbase.get("hbase.regionserver.thrift.port", "").strip()
    return (host if host not in WILDCARDS else None), (int(port) if port.isdigit() else None)


def derived_settings(c: ClusterConf) -> dict[str, object]:
    """Settings fields (name -> value) the configuration directories determine. The caller
    applies only those pacs.toml / PACS_* / arguments did not set (settings.py)."""
    out: dict[str, object] = {}
    default_fs = c.core.get("fs.defaultFS") or c.core.get("fs.default.name")
    if default_fs and default_fs.startswith("hdfs://"):
        out["namenode_rpc"] = default_fs.rstrip("/")
    urls = webhdfs_urls(c.core, c.hdfs) if (c.core or c.hdfs) else []
    if urls:
        out["webhdfs_url"] = ";".join(urls)
    if c.hdfs.get("dfs.replication", "").isdigit():
        out["replication"] = int(c.hdfs["dfs.replication"])
    rms = yarn_rm_urls(c.yarn)
    if rms:
        out["yarn_rm_url"] = ";".join(rms)
    zk_port = c.hbase.get("hbase.zookeeper.property.clientPort", "")
    if zk_port.isdigit():
        out["zookeeper_port"] = int(zk_port)
    host, port = thrift_endpoint(c.hbase)
    if host:
        out["thrift_host"] = host
    if port:
        out["thrift_port"] = port
    master = c.spark.get("spark.master", "")
    if master:
        out["spark_master"] = master
        if master.startswith("spark://"):
            first = master[len("spark://"):].split(",")[0]
            mhost, _ = _host_port(first)
            out["spark_master_webui"] = _url("http", mhost, SPARK_MASTER_WEBUI_PORT)
    if c.spark.get("spark.executor.memory"):
        out["spark_executor_memory"] = c.spark["spark.executor.memory"]
    if c.spark.get("spark.yarn.queue"):
        out["yarn_queue"] = c.spark["spark.yarn.queue"]
    return out
