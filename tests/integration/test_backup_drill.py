"""The backup drill on the real cluster: ingest, back up, lose a study (its index rows and its
container files), store something new, restore, then retrieve every object of the backup with
its sha256 intact, and find the later object gone from the live archive but kept in the safety
backup taken before the restore; then delete that safety backup.

Everything happens in a namespace of its own (HDFS root, HBase table prefix, $PACS_HOME), so the
restore (which disables and restores tables and rewrites the root) never touches another test's
data on the shared cluster; its snapshots are deleted with it (drop_storage -> drop_backups).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.namespace_support import scratch_namespace

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def namespace(cluster, tmp_path_factory):
    with scratch_namespace("bkp", tmp_path_factory.mktemp("backup-home")) as ns:
        yield ns


def pacs(env, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "pacs_cli", *args], capture_output=True,
                         text=True, timeout=1200, env=env)
    if ok:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def _obj(study: str, series: str, n: int):
    from pacs_hdfs.dicom.commit import Prepared
    attrs = {"StudyInstanceUID": study, "SeriesInstanceUID": series,
             "SOPInstanceUID": f"2.25.{uuid.uuid4().int}",
             "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT",
             "PatientID": "BACKUP-DRILL", "TransferSyntaxUID": "1.2.840.10008.1.2.1"}
    return Prepared(b"DICM" + os.urandom(n), attrs)


def retrieve(hbase, hdfs, sop: str) -> bytes | None:
    """IMAGE-level retrieve: sop row -> instance row -> bytes (sha256-verified by read_bytes)."""
    from pacs_hdfs.dicom.stored import read_bytes
    from pacs_hdfs.schema import row_key
    ref = hbase.get("sop", row_key(sop)).get(b"r:key")
    if not ref:
        return None
    row = hbase.get("instance", ref)
    return read_bytes(hbase, hdfs, ref, row) if row else None


def test_backup_drill(namespace):
    from pacs_hdfs import clients
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom import index_rows as ix
    from pacs_hdfs.dicom.commit import Committer
    from pacs_hdfs.schema import row_key
    from pacs_hdfs.schema_version import CURRENT
    s, env = namespace
    hbase, hdfs = clients.hbase(s), clients.hdfs(s)
    committer = Committer(hbase, ContainerWriter(hdfs, writer="drill"))
    S1, S2 = (f"2.25.{uuid.uuid4().int}" for _ in range(2))
    A, B, C = (f"2.25.{uuid.uuid4().int}" for _ in range(3))
    lost = [_obj(S1, A, 2000 + 97 * i) for i in range(6)] + \
        [_obj(S1, B, 3000 + 89 * i) for i in range(4)]
    kept = [_obj(S2, C, 1500 + 71 * i) for i in range(5)]
    for batch in (lost[:6], lost[6:], kept):
        assert all(o.acknowledged for o in committer.store_many(batch))
    every = lost + kept
    sha = {o.sop: hashlib.sha256(o.data).hexdigest() for o in every}

    t0 = time.monotonic()
    made = json.loads(pacs(env, "backup", "create", "--json").stdout)
    backup_s = time.monotonic() - t0
    assert made["hdfs_root"] == s.hdfs_root and made["schema_version"] == CURRENT
    assert made["hbase"]["instance"]["rows"] == made["hbase"]["sop"]["rows"] == 15
    assert made["hbase"]["study"]["rows"] == 2 and made["hbase"]["series"]["rows"] == 3
    listed = json.loads(pacs(env, "backup", "list", "--json").stdout)
    assert [m["name"] for m in listed] == [made["name"]]
    assert (s.path("backups") / f"{made['name']}.json").is_file()

    # the accident: study S1's rows and its container directory are gone
    for o in lost:
        hbase.delete("instance", o.key)
        hbase.delete("sop", row_key(o.sop))
        for table, (key, _cols) in ix.parent_rows(o.attrs).items():
            if table in ("series", "study"):
                hbase.delete(table, key)
    hdfs.delete(f"dicom/containers/{S1}", recursive=True)
    assert all(retrieve(hbase, hdfs, o.sop) is None for o in lost)
    # and life went on: an object stored after the backup
    late = _obj(S2, C, 1234)
    assert committer.store(late).acknowledged

    # a manifest of another namespace is refused before anything changes
    foreign = {**made, "name": "foreign", "hbase_table_prefix": "pacs",
               "hbase": {"instance": {"table": "pacs_instance",
                                      "snapshot": "pacs_instance-foreign", "rows": 0}}}
    hdfs.write("backup/foreign.json", json.dumps(foreign).encode())
    refused = pacs(env, "backup", "restore", "foreign", "--yes", ok=False)
    assert refused.returncode != 0 and "prefix" in refused.stderr
    assert retrieve(hbase, hdfs, late.sop) == late.data

    t0 = time.monotonic()
    report = json.loads(pacs(env, "backup", "restore", made["name"], "--yes", "--json").stdout)
    restore_s = time.monotonic() - t0
    # every object of the backup comes back, byte for byte
    for o in every:
        data = retrieve(hbase, hdfs, o.sop)
        assert data is not None and hashlib.sha256(data).hexdigest() == sha[o.sop], o.sop
    assert {k: v["rows"] for k, v in report["hbase"].items()} == \
        {k: v["rows_at_backup"] for k, v in report["hbase"].items()}
    assert len(hbase.scan("instance", row_prefix=f"{S1}\x00".encode())) == 10
    assert hbase.get("study", row_key(S1))
    # the later object is gone from the live archive, and is in the safety backup
    assert retrieve(hbase, hdfs, late.sop) is None
    assert not hbase.get("instance", late.key)
    assert report["hdfs"]["copied_files"] == 2 and report["hdfs"]["deleted"] >= 1
    safety = [m for m in json.loads(pacs(env, "backup", "list", "--json").stdout)
              if m["name"] == report["safety_backup"]]
    assert safety and safety[0]["kind"] == "pre-restore"
    assert safety[0]["hbase"]["instance"]["rows"] == 6
    gone = json.loads(pacs(env, "backup", "delete", safety[0]["name"], "--yes", "--json").stdout)
    assert gone["hbase_snapshots_deleted"] == len(safety[0]["hbase"])
    assert [m["name"] for m in json.loads(pacs(env, "backup", "list", "--json").stdout)] == [
        made["name"]]
    # the counters are the backup's again (S2's without the later object). Not `pacs fsck`
    # here: a Spark job waits for cores that other namespaces' warm job runners may hold.
    counts = {k: int.from_bytes(hbase.get("series", k)[b"c:instances"], "big")
              for k in (row_key(S1, A), row_key(S1, B), row_key(S2, C))}
    assert counts == {row_key(S1, A): 6, row_key(S1, B): 4, row_key(S2, C): 5}

    print(f"\nbackup drill: 15 objects; backup {backup_s:.1f} s (manifest {made['seconds']}), "
          f"restore {restore_s:.1f} s (report {report['seconds']}); "
          f"load average {os.getloadavg()}")
