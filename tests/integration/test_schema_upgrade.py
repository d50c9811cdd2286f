"""Schema versions on the real cluster, in a namespace of its own: an archive laid out before
versions existed (tables and HDFS layout, no version row or file: version 1) is refused by
`pacs init`, upgraded by `pacs init --upgrade` with its data untouched, and a second upgrade
changes nothing; an archive of a newer schema than the code is refused even with --upgrade."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.namespace_support import scratch_namespace

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def namespace(cluster, tmp_path_factory):
    with scratch_namespace("schema", tmp_path_factory.mktemp("schema-home")) as ns:
        yield ns


def init(env, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "init", "--json", *args],
                         capture_output=True, text=True, timeout=300, env=env)
    out.stderr = " ".join(out.stderr.split())      # the console wraps long messages
    return out


def test_upgrade_from_an_unversioned_archive_and_refusals(namespace):
    from pacs_hdfs import clients, schema_version as sv
    s, env = namespace
    hbase, hdfs = clients.hbase(s), clients.hdfs(s)
    # the archive as `pacs init` left it before schema versions: no schema table, no file
    hbase.drop_table(sv.TABLE)
    hdfs.delete(sv.HDFS_FILE)
    hbase.put("study", b"2.25.1", {b"a:StudyDescription": b"kept through the upgrade"})
    assert sv.read(s) == sv.Found(None, None, archive=True) and sv.read(s).version == 1

    refused = init(env)
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "version 1" in refused.stderr and "--upgrade" in refused.stderr
    assert sv.TABLE not in hbase.tables() and not hdfs.exists(sv.HDFS_FILE)   # nothing changed

    up = init(env, "--upgrade")
    assert up.returncode == 0, up.stderr[-2000:]
    schema = json.loads(up.stdout)["schema"]
    assert schema["action"] == "upgrade" and schema["from"] == 1
    assert schema["version"] == sv.CURRENT and len(schema["migrations"]) == sv.CURRENT - 1
    assert sv.read(s) == sv.Found(sv.CURRENT, sv.CURRENT, archive=True)
    assert hbase.get("study", b"2.25.1") == {b"a:StudyDescription": b"kept through the upgrade"}

    again = init(env, "--upgrade")
    assert again.returncode == 0 and json.loads(again.stdout)["schema"] == {
        "action": "current", "from": sv.CURRENT, "version": sv.CURRENT, "migrations": []}
    plain = init(env)
    assert plain.returncode == 0 and json.loads(plain.stdout)["schema"]["action"] == "current"

    # code older than the archive: refused even with --upgrade, and nothing written
    sv.write(s, sv.CURRENT + 1)
    newer = init(env, "--upgrade")
    assert newer.returncode == 3 and "newer than this code" in newer.stderr
    assert sv.read(s).version == sv.CURRENT + 1

    # services refuse to start on it too (one error line naming the fix), before any write
    runner = subprocess.run([sys.executable, "-m", "analytics_jobs.runner", "--idle-exit-s", "1"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert runner.returncode == 2, runner.stderr[-2000:]
    log = (s.path("logs", "job-runner.log")).read_text()
    assert "job runner refuses to start" in log and "newer than this code" in log
    portal = subprocess.run([sys.executable, "-m", "pacs_cli", "portal", "--port", "18999"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert portal.returncode == 2, portal.stderr[-2000:]
    assert "portal refuses to start" in (s.path("logs", "portal.log")).read_text()
