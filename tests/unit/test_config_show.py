"""One configuration (issue 17, item 1): sections in pacs.toml, `pacs config show` with the
source of every value and secrets masked, and no option left outside Settings."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pacs_hdfs.config_cli import effective, is_secret, section_of
from pacs_hdfs.settings import Settings


@pytest.fixture
def toml(tmp_path, monkeypatch):
    path = tmp_path / "pacs.toml"
    monkeypatch.setenv("PACS_CONFIG", str(path))
    for name in ("PACS_EDGE_PORT", "PACS_PORTAL_BIND", "PACS_GATEWAY_MAX_BYTES"):
        monkeypatch.delenv(name, raising=False)
    from pacs_hdfs.settings import get_settings
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_a_table_per_section_sets_the_prefixed_settings(toml):
    toml.write_text('datanodes = 2\n[edge]\nport = 12000\n[gateway]\nmax_bytes = 4096\n'
                    '[metrics_ports]\nportal = 0\n')
    s = Settings()
    assert (s.datanodes, s.edge_port, s.gateway_max_bytes) == (2, 12000, 4096)
    assert s.metrics_ports == {"portal": 0}            # a table that is itself a setting


def test_an_unknown_key_in_a_section_is_refused_with_its_name(toml):
    toml.write_text('[edge]\nprot = 12000\n')
    with pytest.raises(ValueError, match="edge_prot"):
        Settings()


def test_environment_beats_the_file_and_sources_are_reported(toml, monkeypatch):
    toml.write_text('[edge]\nport = 12000\n[portal]\nbind = "10.0.0.1"\n')
    monkeypatch.setenv("PACS_EDGE_PORT", "13000")
    doc = effective(Settings())
    assert doc["edge"]["edge_port"] == {**doc["edge"]["edge_port"], "value": 13000,
                                        "source": "environment"}
    assert doc["portal"]["portal_bind"]["source"] == "pacs.toml"
    assert doc["portal"]["portal_port"]["source"] == "default"


def test_sections_and_secret_masking():
    assert section_of("edge_tls_key") == "edge" and section_of("mdc_dimse_port") == "mdc_dimse"
    assert section_of("yarn_rm_url") == "jobs" and section_of("webhdfs_url") == "cluster"
    assert section_of("home") == "core"
    assert is_secret("portal_password") and not is_secret("portal_key")  # a key *file* path


def test_config_show_json_lists_every_setting_once(toml):
    toml.write_text('[gateway]\nport = 9443\n')
    from pacs_cli.main import app
    out = CliRunner().invoke(app, ["config", "show", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    names = [n for fields in doc["sections"].values() for n in fields]
    assert sorted(names) == sorted(Settings.model_fields)
    assert doc["sections"]["gateway"]["gateway_port"]["value"] == 9443
