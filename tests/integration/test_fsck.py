"""`pacs fsck` on the real cluster: a small archive damaged in every way fsck knows, checked and
repaired through the CLI, the job service and Spark.

The archive lives in its own namespace (HDFS root, HBase table prefix and PACS_HOME, so also its
own job runner running this checkout's code), so the exact totals are known and no other test's
objects or damage can leak in; everything is deleted at the end.

Damage (study S): series A holds rows whose offset was moved (inside the file, and past its
end), rows whose file was deleted while copies of their bytes exist (one in A, one in series B),
an orphan file, a file without footer, an unfinished commit and a wrong counter; series D holds
a row whose sha256 was overwritten (no copy can match it: unrepairable), and a `sop` row points
at an instance row that does not exist (an acknowledged object the index lost: reported only).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from tests.namespace_support import scratch_namespace

pytestmark = pytest.mark.cluster


def _obj(study: str, series: str, n: int):
    from pacs_hdfs.dicom.commit import Prepared
    attrs = {"StudyInstanceUID": study, "SeriesInstanceUID": series,
             "SOPInstanceUID": f"2.25.{uuid.uuid4().int}",
             "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT",
             "PatientID": "FSCK-TEST", "TransferSyntaxUID": "1.2.840.10008.1.2.1"}
    return Prepared(b"DICM" + os.urandom(n), attrs)


@pytest.fixture(scope="module")
def namespace(cluster, tmp_path_factory):
    """Settings and environment of a scratch namespace; its job runner and data are removed."""
    with scratch_namespace("fsck", tmp_path_factory.mktemp("fsck-home")) as ns:
        yield ns


def fsck(env, *args: str) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "fsck", "--json", *args],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode in (0, 1), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout)


def keys(items) -> set[str]:
    return {i["key"] for i in items}


def assert_streamed_read_agrees(s, hdfs, hbase, path: str) -> None:
    """Large files are footer-read then streamed (HdfsStore.read_chunks), small ones read whole:
    both ways give the same findings (run here in-process, on the real WebHDFS)."""
    import time

    from pacs_hdfs.dicom import fsck_checks as fc
    from pacs_hdfs.dicom import fsck_job
    info = hdfs.info(path)
    status = fc.FileStatus(info.path, info.length, info.modified_ms)
    rows = [(k, r) for k, r in hbase.scan("instance", columns=fsck_job.SCAN_COLUMNS)
            if r.get(b"l:path", b"").decode() == path]
    group = (path, ([status], [fc.entry_from_row(k, r, fc.COMMITTED).as_tuple()
                               for k, r in rows]))
    whole = list(fsck_job._verify_fn(s, time.time(), 0, True)([group]))[0]
    old, fsck_job.WHOLE_READ = fsck_job.WHOLE_READ, 0
    try:
        streamed = list(fsck_job._verify_fn(s, time.time(), 0, True)([group]))[0]
    finally:
        fsck_job.WHOLE_READ = old
    assert (streamed.ok, streamed.row_problems, streamed.orphan_segments,
            streamed.intact_segments) == (whole.ok, whole.row_problems, whole.orphan_segments,
                                          whole.intact_segments)
    assert whole.ok == 2 and len(whole.row_problems) == 2 and streamed.bytes_read > 12000


def test_fsck_reports_every_damage_and_repairs_what_copies_allow(namespace):
    from pacs_hdfs import clients
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import Committer, container_dir, instance_row
    from pacs_hdfs.dicom.fsck_checks import display_key, encode_counter
    from pacs_hdfs.dicom.stored import read_bytes
    from pacs_hdfs.schema import row_key
    s, env = namespace
    hbase, hdfs = clients.hbase(s), clients.hdfs(s)
    S, A, B, D = (f"2.25.{uuid.uuid4().int}" for _ in range(4))
    dir_a, dir_b = container_dir(S, A), container_dir(S, B)
    writer = ContainerWriter(hdfs, writer="fsck-test")
    committer = Committer(hbase, writer)
    a = [_obj(S, A, 3000 + i) for i in range(4)]
    x, y = _obj(S, A, 4000), _obj(S, A, 4100)
    d = [_obj(S, D, 2000 + i) for i in range(2)]
    for batch in (a, [x, y], d):            # three commits, one file each
        assert all(o.acknowledged for o in committer.store_many(batch))
    loc = {o.key: hbase.get("instance", o.key) for o in a + [x, y] + d}

    # rows whose offset moved: into the middle of the file, and past its end
    hbase.put("instance", a[1].key, {b"l:offset": str(int(loc[a[1].key][b"l:offset"]) + 1)
                                     .encode()})
    hbase.put("instance", a[2].key, {b"l:offset": b"1000000000"})
    # a deleted file whose objects have copies: x in A, y in B (only there)
    writer.write(dir_a, [("copy-x", x.data)])
    writer.write(dir_b, [("copy-y", y.data)])
    hdfs.delete(loc[x.key][b"l:path"].decode())
    # an orphan file, a file without footer, an unfinished commit, a wrong counter
    writer.write(dir_a, [("nobody", os.urandom(5000))])
    hdfs.create(f"{dir_a}/cut-off-000001.pack", os.urandom(6000))
    stray = _obj(S, A, 3500)
    stray_loc = writer.write(dir_a, [(stray.key.decode(), stray.data)])[0]
    hbase.put("instance", stray.key, instance_row(stray, stray_loc))
    hbase.put("series", row_key(S, A), {b"c:instances": encode_counter(999)})
    # series D: a sha256 no copy can match; and a commit marker whose instance row is gone
    hbase.put("instance", d[0].key, {b"l:sha256": b"0" * 64})
    lost = _obj(S, D, 10)
    hbase.put("sop", row_key(lost.sop), {b"r:key": lost.key})

    code, found = fsck(env, "--grace", "0")
    t, p = found["totals"], found["problems"]
    assert code == 1 and not found["clean"] and found["repair"] is None
    assert (t["objects_checked"], t["objects_ok"], t["objects_bad"]) == (9, 4, 2)
    assert keys(p["bad_objects"]) == {display_key(a[1].key), display_key(d[0].key)}
    assert keys(p["rows_past_end"]) == {display_key(a[2].key)}
    assert keys(p["rows_missing_file"]) == {display_key(x.key), display_key(y.key)}
    assert t["orphan_files"] == 4 and t["orphan_segments"] == 5   # copies, nobody, cut-off
    assert t["orphan_bytes"] > 3000 + 4000 + 4100 + 5000 + 6000
    assert [f["path"].rsplit("/", 1)[1] for f in p["unfinished_files"]] == [
        "cut-off-000001.pack"]
    assert keys(p["unfinished_commits"]) == {display_key(stray.key)}
    assert p["unfinished_commits"][0]["bytes_ok"]
    assert [(m["key"], m["column"], m["stored"], m["expected"])
            for m in p["counter_mismatches"]] == [(f"{S}/{A}", "c:instances", 999, 6)]
    assert [x["key"] for x in p["dangling_sop_rows"]] == [display_key(lost.key)]
    assert t["problems"] == 18 and sum(found["pending"].values()) == 0
    assert_streamed_read_agrees(s, hdfs, hbase, loc[a[0].key][b"l:path"].decode())

    code, fixed = fsck(env, "--grace", "0", "--repair")
    r = fixed["repair"]
    assert fixed["before"]["totals"] == t
    assert r["rows"]["repointed"] == 4 and r["rows"]["unrepairable"] == 1
    rules = {i["key"]: i["rule"] for i in r["rows"]["repointed_list"]}
    assert rules[display_key(y.key)] == "another directory (bytes copied)"
    assert rules[display_key(x.key)] == "same directory, unreferenced segment"
    assert "manifest" in r["rows"]["unrepairable_list"][0]["reason"]
    assert r["commits"]["completed_list"] == [display_key(stray.key)]
    assert r["compaction"]["orphan_files_deleted"] >= 3 and r["counters"]["set"] >= 1
    # what remains: the one row no copy can repair, the marker of an instance row that is gone
    after = fixed["totals"]
    assert code == 1 and after["problems"] == 2
    assert after["objects_bad"] == after["dangling_sop_rows"] == 1
    assert keys(fixed["problems"]["bad_objects"]) == {display_key(d[0].key)}
    assert after["objects_checked"] == 9 and after["objects_ok"] == 8
    for o in a + [x, y, stray]:
        row = hbase.get("instance", o.key)
        assert read_bytes(hbase, hdfs, o.key, row) == o.data
    assert hbase.get("sop", row_key(stray.sop)) == {b"r:key": stray.key}
    assert not hdfs.list_status(dir_b)          # its only file was an orphan copy

    code, series_a = fsck(env, "--grace", "0", "--study", S, "--series", A)
    assert code == 0 and series_a["clean"], series_a["problems"]
    assert series_a["totals"]["objects_ok"] == 7 and series_a["scope"]["series"] == A
