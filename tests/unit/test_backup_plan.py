"""The pure parts of `pacs backup` and of schema versions: names, manifests, the namespace
check, the steps that undo an HDFS snapshot diff, and what `pacs init` decides per version."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from pacs_hdfs import schema_version as sv
from pacs_hdfs.backup_plan import (Manifest, Step, backup_name, check_name, check_namespace,
                                   hbase_snapshot_name, restore_steps, snapshot_order)


def test_names_sort_by_time_and_refuse_unsafe_characters():
    a = backup_name(datetime(2026, 12, 3, 9, 5, 1, tzinfo=timezone.utc))
    b = backup_name(datetime(2026, 12, 3, 10, 0, 0, tzinfo=timezone.utc), label="pre-restore")
    assert a == "20261203T090501Z" and b == "20261203T100000Z-pre-restore" and a < b
    assert hbase_snapshot_name("pacs_instance", a) == "pacs_instance-20261203T090501Z"
    for bad in ("", "../x", "a b", "a/b", "-x", "x:y"):
        with pytest.raises(ValueError):
            check_name(bad)


def test_commit_marker_table_is_snapshotted_before_the_rows_it_marks():
    order = snapshot_order(["users", "instance", "audit", "sop", "study", "series", "schema"])
    assert order.index("sop") < order.index("series") < order.index("instance")
    assert order[:4] == ["sop", "series", "study", "instance"]
    assert order[4:] == ["audit", "schema", "users"]


def _manifest(root="/pacs", prefix="pacs", **over) -> Manifest:
    d = dict(name="n", created="2026-12-03T00:00:00+00:00", code_version="0.1.0",
             schema_version=2, hdfs_root=root, hdfs_snapshot="n", hbase_table_prefix=prefix,
             hbase={"instance": {"table": f"{prefix}_instance",
                                 "snapshot": f"{prefix}_instance-n", "rows": 3}},
             seconds={"total": 1.0})
    d.update(over)
    return Manifest(**d)


def test_manifest_round_trips_and_refuses_unknown_formats():
    m = _manifest()
    assert Manifest.from_json(m.to_json()) == m
    with pytest.raises(ValueError):
        Manifest.from_json({**m.to_json(), "format": 9})


def test_restore_is_limited_to_the_namespace():
    check_namespace(_manifest(), "/pacs/", "pacs")
    with pytest.raises(ValueError, match="HDFS root"):
        check_namespace(_manifest(root="/other"), "/pacs", "pacs")
    with pytest.raises(ValueError, match="prefix"):
        check_namespace(_manifest(prefix="other"), "/pacs", "pacs")
    foreign = _manifest(hbase={"instance": {"table": "other_instance",
                                            "snapshot": "other_instance-n", "rows": 1}})
    with pytest.raises(ValueError, match="outside the prefix"):
        check_namespace(foreign, "/pacs", "pacs")


def test_restore_steps_undo_the_diff():
    diff = [
        {"sourcePath": "", "type": "MODIFY"},
        {"sourcePath": "dicom/containers", "type": "MODIFY"},
        {"sourcePath": "dicom/containers/S1", "type": "DELETE"},          # a deleted study
        {"sourcePath": "dicom/containers/S3", "type": "CREATE"},          # stored after
        {"sourcePath": "dicom/containers/S3/x/w-1.pack", "type": "CREATE"},
        {"sourcePath": "SCHEMA_VERSION.json", "type": "MODIFY"},           # rewritten
        {"sourcePath": "jobs/a", "type": "RENAME", "targetPath": "jobs/b"},
        {"sourcePath": "backup", "type": "CREATE"},                        # manifests: kept
        {"sourcePath": "backup/n.json", "type": "CREATE"},
    ]
    assert restore_steps(diff) == [
        Step("delete", "dicom/containers/S3"),
        Step("delete", "jobs/b"),
        Step("copy", "dicom/containers/S1"),
        Step("copy", "jobs/a"),
        Step("refresh", "SCHEMA_VERSION.json"),
        Step("refresh", "dicom/containers"),
    ]


def test_a_directory_deleted_and_made_again_is_deleted_then_copied_whole():
    diff = [{"sourcePath": "d", "type": "DELETE"}, {"sourcePath": "d", "type": "CREATE"},
            {"sourcePath": "d/new", "type": "CREATE"}, {"sourcePath": "d/f", "type": "MODIFY"}]
    assert restore_steps(diff) == [Step("delete", "d"), Step("copy", "d")]
    with pytest.raises(ValueError):
        restore_steps([{"sourcePath": "x", "type": "APPEND"}])


def test_found_version_erring_low_and_legacy_archives():
    assert sv.Found(None, None, archive=False).version is None
    assert sv.Found(None, None, archive=True).version == sv.LEGACY
    assert sv.Found(2, None, archive=True).version == 2
    assert sv.Found(3, 2, archive=True).version == 2


def test_init_plans_per_version():
    assert sv.plan(None, upgrade=False).action == "create"
    assert sv.plan(sv.CURRENT, upgrade=False).action == "current"
    assert sv.plan(sv.CURRENT, upgrade=True).steps == ()
    with pytest.raises(sv.SchemaUpgradeNeeded, match="--upgrade"):
        sv.plan(1, upgrade=False)
    up = sv.plan(1, upgrade=True)
    assert up.action == "upgrade" and [m.to for m in up.steps] == list(range(2, sv.CURRENT + 1))
    with pytest.raises(sv.SchemaTooNew):
        sv.plan(sv.CURRENT + 1, upgrade=True)


def test_a_gap_in_the_migrations_is_refused():
    noop = sv.Migration(2, "two", lambda s: None), sv.Migration(4, "four", lambda s: None)
    assert [m.to for m in sv.plan(1, True, current=2, migrations=noop).steps] == [2]
    with pytest.raises(sv.SchemaError, match="no migration path"):
        sv.plan(1, True, current=4, migrations=noop)


def test_java_tools_take_a_real_clusters_conf_dirs_before_the_embedded_ones(tmp_path,
                                                                            monkeypatch):
    from pacs_hdfs.java_tools import conf_dir
    from pacs_hdfs.settings import Settings
    for var in ("HADOOP_CONF_DIR", "YARN_CONF_DIR", "HBASE_CONF_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(home=tmp_path)
    assert conf_dir(s, "hadoop") == tmp_path.resolve() / "conf" / "namenode"
    assert conf_dir(s, "hbase") == tmp_path.resolve() / "conf" / "hbase-master"
    monkeypatch.setenv("HADOOP_CONF_DIR", "/etc/hadoop/conf")
    assert conf_dir(Settings(home=tmp_path), "hbase") == Path("/etc/hadoop/conf")
    given = Settings(home=tmp_path, hbase_conf_dir=tmp_path / "hbase-conf")
    assert conf_dir(given, "hbase") == tmp_path / "hbase-conf"
    assert conf_dir(given, "hadoop") == Path("/etc/hadoop/conf")
