"""Reading a real cluster's client configuration (pacs_hdfs/hadoop_conf.py), its precedence
under pacs.toml / PACS_* (settings.py), and the layers of our Spark properties (clients.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pacs_hdfs import clients
from pacs_hdfs.hadoop_conf import (ClusterConf, derived_settings, expand, hdfs_client_conf,
                                   read_spark_defaults, webhdfs_urls, yarn_rm_urls)
from pacs_hdfs.settings import Settings


def site(folder: Path, name: str, props: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"<property><name>{k}</name><value>{v}</value></property>\n"
                   for k, v in props.items())
    (folder / name).write_text(f"<?xml version='1.0'?>\n<configuration>\n{body}</configuration>\n")


HA_CORE = {"fs.defaultFS": "hdfs://mdc-ns"}
HA_HDFS = {
    "dfs.nameservices": "mdc-ns",
    "dfs.ha.namenodes.mdc-ns": "nn1, nn2",
    "dfs.namenode.rpc-address.mdc-ns.nn1": "master1.mdc:8020",
    "dfs.namenode.rpc-address.mdc-ns.nn2": "master2.mdc:8020",
    "dfs.namenode.http-address.mdc-ns.nn1": "master1.mdc:9870",
    "dfs.namenode.http-address.mdc-ns.nn2": "0.0.0.0:50070",
    "dfs.client.failover.proxy.provider.mdc-ns":
        "org.apache.hadoop.hdfs.server.namenode.ha.ConfiguredFailoverProxyProvider",
    "dfs.replication": "2",
}


def test_ha_nameservice_gives_every_namenode_url():
    assert webhdfs_urls(HA_CORE, HA_HDFS) == ["http://master1.mdc:9870",
                                              "http://master2.mdc:50070"]   # wildcard -> rpc host


def test_https_only_uses_the_https_addresses():
    hdfs = {**HA_HDFS, "dfs.http.policy": "HTTPS_ONLY",
            "dfs.namenode.https-address.mdc-ns.nn1": "master1.mdc:9871"}
    assert webhdfs_urls(HA_CORE, hdfs) == ["https://master1.mdc:9871", "https://master2.mdc:9871"]


def test_single_namenode_wildcard_http_address_takes_the_rpc_host():
    core = {"fs.defaultFS": "hdfs://nn.mdc:8020"}
    assert webhdfs_urls(core, {"dfs.namenode.http-address": "0.0.0.0:9870"}) == [
        "http://nn.mdc:9870"]
    assert webhdfs_urls(core, {}) == ["http://nn.mdc:9870"]


def test_ha_client_keys_for_executors():
    keys = hdfs_client_conf(HA_CORE, HA_HDFS)
    assert keys["dfs.ha.namenodes.mdc-ns"] == "nn1, nn2"
    assert "dfs.namenode.rpc-address.mdc-ns.nn2" in keys
    assert "dfs.replication" not in keys
    assert hdfs_client_conf({"fs.defaultFS": "hdfs://nn:8020"}, {}) == {}


def test_yarn_rm_urls_single_and_ha():
    assert yarn_rm_urls({"yarn.resourcemanager.hostname": "rm.mdc"}) == ["http://rm.mdc:8088"]
    assert yarn_rm_urls({"yarn.resourcemanager.webapp.address": "rm.mdc:18088"}) == [
        "http://rm.mdc:18088"]
    ha = {"yarn.resourcemanager.ha.enabled": "true", "yarn.resourcemanager.ha.rm-ids": "rm1,rm2",
          "yarn.resourcemanager.hostname.rm1": "m1", "yarn.resourcemanager.hostname.rm2": "m2",
          "yarn.resourcemanager.webapp.address.rm2": "m2:8188"}
    assert yarn_rm_urls(ha) == ["http://m1:8088", "http://m2:8188"]


def test_variables_expand():
    props = expand({"a": "${b}:1", "b": "${env.HOSTX}", "c": "${nope}"}, env={"HOSTX": "h"})
    assert props == {"a": "h:1", "b": "h", "c": "${nope}"}


def test_spark_defaults_forms(tmp_path):
    f = tmp_path / "spark-defaults.conf"
    f.write_text("# comment\nspark.master   yarn\nspark.executor.memory=2g\n\n"
                 "spark.driver.extraJavaOptions -Da=1 -Db=2\n")
    assert read_spark_defaults(f) == {"spark.master": "yarn", "spark.executor.memory": "2g",
                                      "spark.driver.extraJavaOptions": "-Da=1 -Db=2"}


@pytest.fixture
def conf_dirs(tmp_path, monkeypatch):
    hadoop, hbase, spark = tmp_path / "hadoop", tmp_path / "hbase", tmp_path / "spark"
    site(hadoop, "core-site.xml", HA_CORE)
    site(hadoop, "hdfs-site.xml", HA_HDFS)
    site(hadoop, "yarn-site.xml", {"yarn.resourcemanager.hostname": "rm.mdc"})
    site(hbase, "hbase-site.xml", {"hbase.zookeeper.property.clientPort": "2222",
                                   "hbase.regionserver.thrift.ipaddress": "thrift.mdc",
                                   "hbase.regionserver.thrift.port": "9099"})
    spark.mkdir()
    (spark / "spark-defaults.conf").write_text(
        "spark.master yarn\nspark.sql.shuffle.partitions 200\nspark.ui.enabled true\n")
    for var in ("PACS_WEBHDFS_URL", "PACS_NAMENODE_RPC", "PACS_THRIFT_HOST", "PACS_SPARK_MASTER",
                "PACS_EMBEDDED", "PACS_CONFIG", "PACS_REPLICATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HADOOP_CONF_DIR", str(hadoop))
    monkeypatch.setenv("HBASE_CONF_DIR", str(hbase))
    monkeypatch.setenv("SPARK_CONF_DIR", str(spark))
    monkeypatch.chdir(tmp_path)                         # no pacs.toml here
    return tmp_path


def test_derived_settings_from_all_three_dirs(conf_dirs):
    c = ClusterConf.load(conf_dirs / "hadoop", conf_dirs / "hbase", conf_dirs / "spark")
    d = derived_settings(c)
    assert d["namenode_rpc"] == "hdfs://mdc-ns"
    assert d["webhdfs_url"] == "http://master1.mdc:9870;http://master2.mdc:50070"
    assert d["replication"] == 2 and d["zookeeper_port"] == 2222
    assert (d["thrift_host"], d["thrift_port"]) == ("thrift.mdc", 9099)
    assert d["yarn_rm_url"] == "http://rm.mdc:8088" and d["spark_master"] == "yarn"


def test_embedded_false_takes_unset_fields_from_the_dirs(conf_dirs):
    s = Settings(embedded=False)
    assert s.webhdfs_urls == ["http://master1.mdc:9870", "http://master2.mdc:50070"]
    assert s.namenode_rpc == "hdfs://mdc-ns" and s.on_yarn and s.ships_python
    assert s.thrift_host == "thrift.mdc" and s.effective_replication == 2
    assert "webhdfs_url" in s.from_conf_dirs


def test_toml_and_env_override_only_what_they_name(conf_dirs, monkeypatch):
    (conf_dirs / "pacs.toml").write_text('embedded = false\nthrift_host = "edge-thrift.mdc"\n')
    monkeypatch.setenv("PACS_SPARK_MASTER", "spark://sm.mdc:7077")
    s = Settings()
    assert s.thrift_host == "edge-thrift.mdc"                 # pacs.toml
    assert s.spark_master == "spark://sm.mdc:7077"            # environment
    assert s.thrift_port == 9099 and s.namenode_rpc == "hdfs://mdc-ns"   # conf dirs
    assert "thrift_host" not in s.from_conf_dirs


def test_embedded_ignores_the_dirs(conf_dirs):
    s = Settings()
    assert s.embedded and s.webhdfs_url == "http://127.0.0.1:9870" and not s.from_conf_dirs


def test_spark_defaults_beat_our_defaults_and_explicit_beats_both(conf_dirs):
    s = Settings(embedded=False, spark_master="spark://sm.mdc:7077", spark_driver_host="10.1.1.5")
    conf = clients.spark_conf(s, "t", {"spark.cores.max": "2"})
    assert conf["spark.sql.shuffle.partitions"] == "200"      # the administrator's
    assert conf["spark.ui.enabled"] == "true"                 # the administrator's
    assert conf["spark.ui.killEnabled"] == "false"            # ours (not set by the admin)
    assert conf["spark.cores.max"] == "2"                     # the caller's
    assert conf["spark.master"] == "spark://sm.mdc:7077"      # settings, explicit
    assert conf["spark.driver.host"] == "10.1.1.5" == conf["spark.driver.bindAddress"]
    assert conf["spark.hadoop.fs.defaultFS"] == "hdfs://mdc-ns"
    assert conf["spark.hadoop.dfs.ha.namenodes.mdc-ns"] == "nn1, nn2"   # executors resolve HA
    explicit = clients.spark_conf(Settings(embedded=False, spark_executor_memory="3g"), "t",
                                  admin={"spark.executor.memory": "2g"})
    assert explicit["spark.executor.memory"] == "3g"


def test_shipping_points_executors_at_the_packed_env(conf_dirs):
    s = Settings(embedded=False)
    conf = clients.spark_conf(s, "t", admin={"spark.archives": "hdfs:///x.zip#x"}, shipping={
        "spark.archives": "hdfs://mdc-ns/pacs/env/pacs-env-abc.tar.gz#env",
        "spark.yarn.archive": "hdfs://mdc-ns/pacs/env/spark-jars-abc.zip"})
    assert conf["spark.master"] == "yarn" and conf["spark.yarn.queue"] == "default"
    assert conf["spark.archives"] == ("hdfs:///x.zip#x,"
                                      "hdfs://mdc-ns/pacs/env/pacs-env-abc.tar.gz#env")
    assert conf["spark.pyspark.python"] == "./env/bin/python"
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./env/bin/python"
    assert conf["spark.yarn.archive"].endswith("spark-jars-abc.zip")


def test_remote_cluster_driver_is_not_loopback():
    s = Settings(embedded=False, spark_master="spark://192.0.2.10:7077")
    host, bind = clients.driver_addresses(s, {})
    assert not host.startswith("127.") and bind == host
    assert clients.driver_addresses(s, {"spark.driver.host": "10.9.9.9"})[0] == "10.9.9.9"
    assert clients.driver_addresses(Settings(), {}) == ("127.0.0.1", "127.0.0.1")


def test_embedded_yarn_runs_jobs_on_yarn():
    conf = clients.spark_conf(Settings(yarn=True), "t",
                              shipping={"spark.archives": "hdfs://h/pacs/env/e.tar.gz#env"})
    assert conf["spark.master"] == "yarn" and conf["spark.yarn.queue"] == "default"
    assert conf["spark.pyspark.python"] == "./env/bin/python"
    assert clients.cluster_target(Settings(yarn=True, yarn_rm_url="http://10.0.0.2:8088")) == (
        "10.0.0.2", 8088)
