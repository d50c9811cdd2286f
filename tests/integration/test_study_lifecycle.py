"""Study lifecycle on the real cluster (issue 18 item 3), in a scratch namespace of its own
(HDFS root, HBase table prefix, $PACS_HOME: tests/namespace_support.py), so deleting and
compacting can never touch another test's data.

Studies arrive through the real path (modality -> `pacs edge` -> STOW-RS -> gateway -> HDFS +
HBase). Then:

* `pacs study delete` of a whole study and the admin DICOMweb DELETE of one instance of another
  study: DIMSE C-FIND (findscu against `pacs scp`), QIDO-RS and the portal's viewer/accession
  link stop showing them at once; the KOS rejection note and the audit events are there;
* `pacs study compact`: the HDFS space under the container root shrinks by the removed objects'
  bytes (plus the footers of their files), the rewritten container still holds the other
  objects, and every remaining object's sha256 matches the index and the value recorded before;
* reject + compact + restore: a rejected study disappears, survives a compaction (its bytes
  are kept aside), and comes back with the same objects (sha256) and counts.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from types import SimpleNamespace

import pytest
import requests

from tests.integration.dicom_support import (DCMTK, VENV_BIN, deid_uid, find, scp_process,
                                             store)
from tests.portal_support import free_port, make_user, portal_process, signed_in

pytestmark = pytest.mark.cluster


def _series(n: int, study_uid: str, patient: str, accession: str, size: int = 128,
            series_number: int = 2):
    from pacs_hdfs.dicom.synthetic import ct_series
    out = ct_series(n, patient_id=patient, patient_name=f"{patient}^Life", study_uid=study_uid,
                    size=size, accession=accession)
    for i, ds in enumerate(out):   # distinct pixels: identical bytes would hide a mix-up
        ds.SeriesNumber = str(series_number)
        px = bytearray(ds.PixelData)
        px[:8] = os.urandom(8)
        ds.PixelData = bytes(px)
    return out


@pytest.fixture(scope="module")
def ns(cluster, tmp_path_factory):
    """The scratch namespace; its variables are in os.environ while the module runs, so the
    edge/gateway/scp/portal subprocesses and `pacs` commands use it."""
    from tests.namespace_support import scratch_namespace_env
    home = tmp_path_factory.mktemp("lifecycle-home")
    with scratch_namespace_env("life", home) as (s, env):
        yield SimpleNamespace(settings=s, env=env)


@pytest.fixture(scope="module")
def world(ns, tmp_path_factory):
    """Three studies through the edge: A (2 series x 4), B (1 x 5), C (1 x 3); an MDC DIMSE
    service, and a portal with an admin."""
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    from pacs_hdfs import clients
    from pacs_hdfs.dicom.synthetic import write_files
    d = tmp_path_factory.mktemp("lifecycle")
    tag = uuid.uuid4().hex[:6].upper()
    uids = {k: f"2.25.{uuid.uuid4().int}" for k in "ABC"}
    sent = {"A": _series(4, uids["A"], f"LA{tag}", f"AA{tag}")
            + _series(4, uids["A"], f"LA{tag}", f"AA{tag}", series_number=3),
            "B": _series(5, uids["B"], f"LB{tag}", f"AB{tag}"),
            "C": _series(3, uids["C"], f"LC{tag}", f"AC{tag}")}
    port = free_port()
    with scp_process(d, port, free_port()) as scp:
        files = [p for k, series in sent.items() for p in write_files(series, d / k)]
        store(files, port=port)
        with portal_process() as portal:
            yield SimpleNamespace(
                scp=scp, dir=d, portal=portal.url, sent=sent,
                study={k: deid_uid(scp, u) for k, u in uids.items()},
                hbase=clients.hbase(ns.settings), hdfs=clients.hdfs(ns.settings),
                admin=make_user(ns.settings, "admin", "life"),
                teacher=make_user(ns.settings, "teacher", "life"))


def _pacs(ns, *args: str) -> dict:
    r = subprocess.run([str(VENV_BIN / "pacs"), *args, "--json"], env=ns.env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _rows(world, study: str) -> dict[bytes, dict]:
    from pacs_hdfs.schema import row_key
    return dict(world.hbase.scan("instance", row_prefix=row_key(study) + b"\x00"))


def _space(world) -> dict:
    """HDFS content summary of the namespace's container root (bytes, and with replicas)."""
    c = world.hdfs.client.content(world.hdfs.abs("dicom/containers"))
    return {"length": c["length"], "space": c["spaceConsumed"], "files": c["fileCount"]}


def _c_find(world, level: str, study: str) -> list:
    return find(world.scp, world.dir, level, f"StudyInstanceUID={study}",
                *(["SeriesInstanceUID"] if level != "STUDY" else []))


def _qido(world, study: str) -> list:
    r = requests.get(f"{world.portal}/dicomweb/studies", params={"StudyInstanceUID": study},
                     auth=world.teacher, timeout=30)
    assert r.status_code in (200, 204), r.text[:300]
    return r.json() if r.status_code == 200 and r.content else []


def _visible(world, study: str, accession: str | None = None) -> dict:
    """What each reader shows of the study."""
    s, _ = signed_in(world.portal, *world.teacher)
    seen = {"c_find_study": len(_c_find(world, "STUDY", study)),
            "c_find_series": len(_c_find(world, "SERIES", study)),
            "qido": len(_qido(world, study)),
            "viewer": s.get(f"{world.portal}/viewer/study/{study}").status_code}
    if accession:
        seen["accession_link"] = s.get(f"{world.portal}/viewer/accession/{accession}",
                                       allow_redirects=False).status_code
    return seen


def _sha_of_every_object(world) -> dict[bytes, str]:
    """Every indexed object read from its container (the raw range, hashed here) must match
    the index's sha256; returns key -> sha256."""
    out = {}
    for key, row in world.hbase.scan("instance"):
        data = world.hdfs.read(row[b"l:path"].decode(), int(row[b"l:offset"]),
                               int(row[b"l:length"]))
        digest = hashlib.sha256(data).hexdigest()
        assert digest == row[b"l:sha256"].decode(), f"{key!r} does not verify"
        out[key] = digest
    return out


def test_delete_hides_at_once_and_compaction_frees_the_space(ns, world):
    from pacs_hdfs.dicom.index_rows import decode_attributes
    from pacs_hdfs.schema import row_key
    a, b = world.study["A"], world.study["B"]
    rows_a, rows_b = _rows(world, a), _rows(world, b)
    assert len(rows_a) == 8 and len(rows_b) == 5
    accession = decode_attributes(world.hbase.get("study", row_key(a)))["AccessionNumber"]
    assert _visible(world, a, accession) == {"c_find_study": 1, "c_find_series": 2, "qido": 1,
                                             "viewer": 200, "accession_link": 303}
    before_sha = _sha_of_every_object(world)
    before = _space(world)

    # the whole of study A with the CLI
    out = _pacs(ns, "study", "delete", a)
    assert out["objects"] == 8 and out["reason"][0] == "113039" and out["note"]
    deleted_bytes = sum(int(r[b"l:length"]) for r in rows_a.values())
    assert out["bytes"] == deleted_bytes
    # one instance of study B with the admin DICOMweb DELETE (a teacher may not)
    victim_key = sorted(rows_b)[2]
    _, series_b, sop_b = victim_key.decode().split("\x00")
    url = f"{world.portal}/dicomweb/studies/{b}/series/{series_b}/instances/{sop_b}"
    t, t_csrf = signed_in(world.portal, *world.teacher)
    assert t.delete(url, headers={"X-CSRF-Token": t_csrf}).status_code == 403
    s, csrf = signed_in(world.portal, *world.admin)
    assert s.delete(url).status_code == 403                    # no CSRF token
    r = s.delete(url, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["objects"] == 1 and r.json()["scope"]["level"] == "instance"
    assert s.delete(url, headers={"X-CSRF-Token": csrf}).status_code == 404   # already gone
    deleted_bytes += int(rows_b[victim_key][b"l:length"])

    # gone at once, from every reader
    assert _visible(world, a, accession) == {"c_find_study": 0, "c_find_series": 0, "qido": 0,
                                             "viewer": 404, "accession_link": 404}
    assert not _rows(world, a) and len(_rows(world, b)) == 4
    assert len(_c_find(world, "STUDY", b)) == 1
    counters = [b"c:instances", b"c:bytes"]
    left_bytes = sum(int(r[b"l:length"]) for k, r in rows_b.items() if k != victim_key)
    for table, key in (("study", row_key(b)), ("series", row_key(b, series_b))):
        got = world.hbase.get(table, key, columns=counters)
        assert [int.from_bytes(got[c], "big") for c in counters] == [4, left_bytes], table
    images_b = find(world.scp, world.dir, "IMAGE", f"StudyInstanceUID={b}",
                    f"SeriesInstanceUID={series_b}", "SOPInstanceUID")
    assert sop_b not in {ds.SOPInstanceUID for ds in images_b} and len(images_b) == 4
    # recorded: the KOS note, the lifecycle record, the audit event
    notes = _pacs(ns, "study", "notes", a)["notes"]
    assert [(n["action"], n["reason"][0], n["objects"]) for n in notes] == [("delete", "113039", 8)]
    kos = world.hdfs.read(f"dicom/lifecycle/notes/{a}/{out['note']}.dcm")
    from io import BytesIO

    from pydicom import dcmread
    from pacs_hdfs.dicom.rejection_note import listed
    note = dcmread(BytesIO(kos))
    assert note.Modality == "KO" and len(listed(note)) == 8
    from pacs_hdfs.audit import query
    events = {(e.action, e.target): e for e in query(ns.settings, action="study-delete")}
    assert (events[("study-delete", a)].details["objects"] == 8
            and 'csd-code="110105"' in events[("study-delete", a)].details["xml"])
    assert events[("study-delete", b)].user == world.admin[0]

    # the bytes are still on HDFS until compaction
    assert _space(world)["length"] == before["length"]
    result = _pacs(ns, "study", "compact")
    after = _space(world)
    freed = before["length"] - after["length"]
    print(f"\ncompaction: {result}\nspace before {before}, after {after}; removed objects "
          f"{deleted_bytes} bytes; freed {freed} bytes ({before['space'] - after['space']} "
          f"with replicas)")
    # the container files carry a manifest footer and the rewritten file of B a new one:
    # what is freed is the objects' bytes plus at most a few KB of footers
    assert deleted_bytes <= freed <= deleted_bytes + 16_384
    assert before["space"] - after["space"] >= deleted_bytes * 2   # replicas freed too
    assert result["released_bytes_reclaimed"] > 0 and result["objects_moved"] >= 4
    assert result["purge_entries_done"] == result["purge_entries"] == 2
    assert world.hdfs.info(f"dicom/containers/{a}") is None        # empty dirs removed too

    # every remaining object verifies and is byte-identical to what was stored before
    remaining = _sha_of_every_object(world)
    assert len(remaining) == len(before_sha) - 9
    assert all(before_sha[k] == v for k, v in remaining.items())
    # and no container file is left that no row points into
    pointed = {r[b"l:path"].decode() for _k, r in world.hbase.scan("instance")}
    files = set(world.hdfs.walk_files("dicom/containers"))
    assert files == pointed
    # a deleted study cannot be restored
    r = subprocess.run([str(VENV_BIN / "pacs"), "study", "restore", a], env=ns.env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "cannot be restored" in r.stderr


def test_reject_survives_compaction_and_restore_brings_it_back(ns, world):
    from pacs_hdfs.schema import row_key
    c = world.study["C"]
    rows = _rows(world, c)
    shas = {k: r[b"l:sha256"] for k, r in rows.items()}
    counts = world.hbase.get("study", row_key(c), columns=[b"c:instances", b"c:bytes"])
    assert _visible(world, c)["qido"] == 1

    out = _pacs(ns, "study", "reject", c)
    assert out["objects"] == 3 and out["reason"][0] == "113001"
    assert _visible(world, c) == {"c_find_study": 0, "c_find_series": 0, "qido": 0,
                                  "viewer": 404}
    compact = _pacs(ns, "study", "compact")
    assert compact["released_bytes_reclaimed"] > 0          # the originals are freed...
    assert not any(world.hdfs.exists(r[b"l:path"].decode()) for r in rows.values())

    back = _pacs(ns, "study", "restore", c)                   # ...the kept copies come back
    assert back["objects"] == 3 and back["rejected_store_bytes_deleted"] > 0
    assert _visible(world, c) == {"c_find_study": 1, "c_find_series": 1, "qido": 1,
                                  "viewer": 200}
    again = _rows(world, c)
    assert {k: r[b"l:sha256"] for k, r in again.items()} == shas
    assert world.hbase.get("study", row_key(c), columns=[b"c:instances", b"c:bytes"]) == counts
    _sha_of_every_object(world)
    assert [n["state"] for n in _pacs(ns, "study", "notes", c)["notes"]] == ["restored"]
    if world.hdfs.exists("dicom/lifecycle/rejected"):        # the kept copies are gone
        assert not list(world.hdfs.walk_files("dicom/lifecycle/rejected"))
    from pacs_hdfs.audit import query
    actions = {e.action for act in ("study-reject", "study-restore")
               for e in query(ns.settings, action=act) if e.target == c}
    assert {"study-reject", "study-restore"} <= actions
    r = subprocess.run([str(VENV_BIN / "pacs"), "study", "restore", c], env=ns.env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1                                  # nothing left to restore


def test_compaction_runs_as_a_job_kind(ns, world):
    """`study-compact` through the job service (the namespace's own runner): a deleted series
    is freed by the job, the result document carries the numbers."""
    from pacs_hdfs.schema import row_key
    b = world.study["B"]
    series = sorted({k.split(b"\x00")[1].decode() for k in _rows(world, b)})
    out = _pacs(ns, "study", "delete", b, "--series", series[0])
    assert out["objects"] == 4 and out["scope"]["level"] == "series"
    assert not world.hbase.get("study", row_key(b))          # its only series: study gone too
    before = _space(world)["length"]
    job = _pacs(ns, "job", "submit", "study-compact", "--wait")
    assert job["state"] == "succeeded", job
    result = json.loads(world.hdfs.read(job["result_path"]))
    assert result["released_bytes_reclaimed"] > 0 and result["purge_entries_done"] >= 1
    assert before - _space(world)["length"] >= out["bytes"]
    _sha_of_every_object(world)
