"""Pure parts of the foundation: settings precedence, generated configs, CLI option parsing."""
from __future__ import annotations

from xml.etree import ElementTree

import pytest

from analytics_jobs.cli import parse_extra
from deploy.configs import datanode_ports, hadoop_xml, hdfs_site, write_conf_dir
from deploy.daemons import daemon_table
from deploy.jvm import jvm_options
from pacs_hdfs.settings import Settings


def test_env_overrides_toml_and_defaults(tmp_path, monkeypatch):
    toml = tmp_path / "pacs.toml"
    toml.write_text('datanodes = 2\nthrift_port = 9999\nhdfs_user = "toml"\n')
    monkeypatch.setenv("PACS_CONFIG", str(toml))
    monkeypatch.setenv("PACS_HDFS_USER", "env")
    s = Settings()
    assert (s.datanodes, s.thrift_port, s.hdfs_user) == (2, 9999, "env")
    assert s.effective_replication == 2
    assert Settings(datanodes=5).effective_replication == 3


def test_each_datanode_has_own_ports_and_dir(tmp_path):
    s = Settings(home=tmp_path, datanodes=3)
    seen = set()
    for i in (1, 2, 3):
        props = hdfs_site(s, i)
        ports = tuple(datanode_ports(i).values())
        assert not seen & set(ports)
        seen |= set(ports)
        assert props["dfs.datanode.data.dir"].name == f"datanode-{i}"
    names = [d.name for d in daemon_table(s)]
    assert names.count("namenode") == 1 and sum(n.startswith("datanode-") for n in names) == 3


def test_generated_xml_parses_and_escapes(tmp_path):
    xml = hadoop_xml({"a": "x<y&z", "b": 3})
    root = ElementTree.fromstring(xml)
    assert [p.find("value").text for p in root] == ["x<y&z", "3"]
    conf = write_conf_dir(Settings(home=tmp_path), "namenode")
    hbase = ElementTree.parse(conf / "hbase-site.xml").getroot()
    values = {p.find("name").text: p.find("value").text for p in hbase}
    assert values["hbase.rootdir"] == "hdfs://127.0.0.1:9000/hbase"
    assert (conf / "webapps" / "hdfs" / "WEB-INF" / "web.xml").exists()


def test_jvm_options_set_explicit_heap_and_java17_opens():
    opts = jvm_options(256)
    assert "-Xmx256m" in opts
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in opts


@pytest.mark.parametrize("args,expected", [
    (["--from", "2024-01-01", "--to=2024-12-31"], {"date_from": "2024-01-01", "date_to": "2024-12-31"}),
    (["--size", "128", "--filter", "hann", "--dry-run"], {"size": "128", "filter": "hann", "dry_run": True}),
])
def test_parse_extra(args, expected):
    assert parse_extra(args) == expected


def test_parse_extra_rejects_positional():
    import typer
    with pytest.raises(typer.BadParameter):
        parse_extra(["oops"])


def test_stop_node_knows_our_services_as_well_as_the_daemons():
    from pacs_cli.cluster import _service_args
    assert _service_args("job-runner") == ("job", "runner")
    assert _service_args("portal") == ("portal",)
    assert _service_args("datanode-2") is None


def test_every_dicom_audit_action_is_listed_for_the_admin_filter():
    from pacs_hdfs import audit
    from pacs_hdfs.dicom.dimse_audit import TRAIL_ACTIONS
    assert set(TRAIL_ACTIONS.values()) <= set(audit.ACTIONS)
