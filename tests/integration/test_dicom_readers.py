"""Honest readers on the real cluster: the MDC's DIMSE service (`pacs scp`), dcmtk and pynetdicom peers,
the portal's WADO-RS over the real HBase and HDFS.

A study where one object's index row no longer matches its bytes (its `l:sha256` overwritten in
HBase, as a misplaced offset would look to a reader): C-GET and C-MOVE deliver every other
object and report that one as a failed sub-operation with its UID (0xB000); WADO-RS answers 206
with an error part (or, streamed, 200 ending with the error part), never a clean 200 with fewer
parts. Also: IMAGE-level C-FIND with Rows/Columns, every C-FIND return key of
docs/DICOM_CONFORMANCE.md at every level in both information models with dcmtk `findscu`
(each answered with the value stored in the object), and the SCP log (each line once, lines of
an association tagged with its id). The MDC DIMSE service's stdout/stderr go into its log file,
as under `pacs up`'s supervisor, which is what used to double every line. Objects reach the data
center through the hospital edge (`dicom_support.scp_process`).
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydicom import Dataset, dcmread

from pacs_hdfs import logs
from tests.integration.dicom_support import (DCMTK, HOST, MDC_AE, dcmtk, deid_uid,
                                             instance_key, scp_process, store)
from tests.portal_support import free_port

pytestmark = pytest.mark.cluster

PORT, DEST_PORT = free_port(), free_port()
BAD_SHA = b"0" * 64
#: C-FIND return keys the conformance statement lists, per level
KEYS = {
    "PATIENT": ("PatientID", "PatientName", "PatientSex", "PatientBirthDate", "PatientAge",
                "NumberOfPatientRelatedStudies"),
    "STUDY": ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
              "StudyDescription", "ModalitiesInStudy", "PatientID", "PatientName", "PatientSex",
              "PatientBirthDate", "PatientAge", "NumberOfStudyRelatedInstances",
              "NumberOfStudyRelatedSeries"),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SeriesDescription", "SeriesDate", "SeriesTime", "BodyPartExamined",
               "NumberOfSeriesRelatedInstances"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "InstanceNumber", "Rows", "Columns", "ContentDate", "ContentTime"),
}


@pytest.fixture(scope="module")
def scp(cluster, tmp_path_factory):
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    with scp_process(tmp_path_factory.mktemp("readers"), port=PORT, dest_port=DEST_PORT) as running:
        yield running


@pytest.fixture(scope="module")
def stores(settings):
    from pacs_hdfs import clients
    return SimpleNamespace(hbase=clients.hbase(settings), hdfs=clients.hdfs(settings))


def send_study(scp, directory: Path, n: int = 5, size: int = 32, **kw) -> SimpleNamespace:
    """A fresh synthetic CT study through the SCP; its de-identified UIDs."""
    from pacs_hdfs.dicom.synthetic import ct_series, write_files
    kw.setdefault("patient_id", f"RD-{uuid.uuid4().hex[:10]}")
    kw.setdefault("patient_name", "Reader^Test")
    series = ct_series(n, size=size, **kw)
    for ds in series:
        ds.ContentTime = "101512"                  # (synthetic slices have no ContentTime)
    store(write_files(series, directory), port=scp.port)   # to the edge
    return SimpleNamespace(
        originals=series, study=deid_uid(scp, series[0].StudyInstanceUID),
        series=deid_uid(scp, series[0].SeriesInstanceUID),
        sops=[deid_uid(scp, ds.SOPInstanceUID) for ds in series])


def spoil(stores, scp, ds) -> str:
    """Make one stored object unreadable: its index row's sha256 no longer matches its bytes.
    Returns its de-identified SOP Instance UID."""
    key = instance_key(stores, scp, ds)
    stores.hbase.put("instance", key, {b"l:sha256": BAD_SHA})
    return key.rsplit(b"\x00", 1)[-1].decode()


def stored_object(stores, scp, ds) -> bytes:
    from pacs_hdfs.dicom.stored import read_bytes
    key = instance_key(stores, scp, ds)
    return read_bytes(stores.hbase, stores.hdfs, key, stores.hbase.get("instance", key))


@pytest.fixture
def spoiled(scp, stores, tmp_path):
    """A 5-object study whose third object is unreadable."""
    st = send_study(scp, tmp_path / "in")
    st.bad = spoil(stores, scp, st.originals[2])
    st.good = [s for s in st.sops if s != st.bad]
    return st


def _study_identifier(study: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study
    return ds


def _final(responses):
    got = [(status, ident) for status, ident in responses if status is not None]
    assert got, "no C-GET/C-MOVE response"
    return got[-1]


def _uid_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --- C-GET / C-MOVE -------------------------------------------------------------------------

def test_c_get_delivers_every_good_object_and_reports_the_bad_one(scp, spoiled, tmp_path):
    out = tmp_path / "get"
    out.mkdir()
    res = dcmtk("getscu", "-S", "-v", "-aec", MDC_AE, "-od", str(out),
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={spoiled.study}",
                HOST, str(scp.qr_port))
    assert res.returncode == 0, res.stderr[-2000:]
    got = sorted(dcmread(p).SOPInstanceUID for p in out.iterdir())
    assert got == sorted(spoiled.good)                        # 4 of 5, not 0 of 5
    assert "SubOperationsCompleteOneOrMoreFailures" in res.stderr
    assert re.search(r"Completed Suboperations\s*:\s*4", res.stderr)
    assert re.search(r"Failed Suboperations\s*:\s*1", res.stderr)

    # the Failed SOP Instance UID List (getscu does not print the final identifier)
    from pynetdicom import AE, StoragePresentationContexts, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000
    ae = AE(ae_title="PYGET")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    storage = [cx.abstract_syntax for cx in StoragePresentationContexts[:100]]
    for sop_class in storage:
        ae.add_requested_context(sop_class)
    roles = [build_role(sop_class, scp_role=True) for sop_class in storage]
    assoc = ae.associate(HOST, scp.qr_port, ae_title=MDC_AE, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        status, ident = _final(assoc.send_c_get(_study_identifier(spoiled.study),
                                                StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    assert sorted(received) == sorted(spoiled.good)
    assert status.Status == 0xB000
    assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (4, 1)
    assert _uid_list(ident.FailedSOPInstanceUIDList) == [spoiled.bad]


def test_c_move_delivers_every_good_object_and_reports_the_bad_one(scp, spoiled):
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000
    dest = AE(ae_title="MOVEDEST")
    for cx in AllStoragePresentationContexts:
        dest.add_supported_context(cx.abstract_syntax, [ExplicitVRLittleEndian,
                                                        ImplicitVRLittleEndian])
    server = dest.start_server((HOST, DEST_PORT), block=False,
                               evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        res = dcmtk("movescu", "-S", "-v", "-aec", MDC_AE, "-aem", "MOVEDEST",
                    "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={spoiled.study}",
                    HOST, str(scp.qr_port))
        assert sorted(received) == sorted(spoiled.good), res.stderr[-2000:]
        assert "SubOperationsCompleteOneOrMoreFailures" in res.stderr, res.stderr[-2000:]

        received.clear()
        ae = AE(ae_title="PYMOVE")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = ae.associate(HOST, scp.qr_port, ae_title=MDC_AE)
        assert assoc.is_established
        try:
            status, ident = _final(assoc.send_c_move(
                _study_identifier(spoiled.study), "MOVEDEST",
                StudyRootQueryRetrieveInformationModelMove))
        finally:
            assoc.release()
    finally:
        server.shutdown()
    assert sorted(received) == sorted(spoiled.good)
    assert status.Status == 0xB000
    assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (4, 1)
    assert _uid_list(ident.FailedSOPInstanceUIDList) == [spoiled.bad]


# --- WADO-RS ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wado(cluster, stores):
    """The portal app in-process over the real HBase and HDFS, a teacher signed in by Basic."""
    from fastapi.testclient import TestClient
    from tests.portal_doubles import fast_hashing, portal_app
    name, password = f"rd-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    with fast_hashing():
        app = portal_app({name: "teacher"}, password, store=stores.hbase)
        client = TestClient(app)
        client.auth = (name, password)
        yield client


ACCEPT = {"Accept": 'multipart/related; type="application/dicom"'}


def parts_of(resp) -> list[tuple[str, bytes]]:
    """(content type, body) of each part; asserts the body is complete (closing boundary)."""
    ctype = resp.headers["content-type"]
    boundary = ctype.split("boundary=")[1].split(";")[0].strip('"')
    assert resp.content.endswith(f"--{boundary}--\r\n".encode()), "truncated multipart body"
    msg = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + resp.content)
    return [(p.get_content_type(), p.get_payload(decode=True)) for p in msg.iter_parts()]


def _check_partial(resp, spoiled, stores, scp):
    parts = parts_of(resp)
    objects = [body for kind, body in parts if kind == "application/dicom"]
    want = {deid_uid(scp, ds.SOPInstanceUID): stored_object(stores, scp, ds)
            for ds in spoiled.originals if deid_uid(scp, ds.SOPInstanceUID) != spoiled.bad}
    assert sorted(objects) == sorted(want.values())          # every good one, byte for byte
    kind, body = parts[-1]
    assert kind == "application/json"
    doc = json.loads(body)
    assert [f["SOPInstanceUID"] for f in doc["failed"]] == [spoiled.bad]
    assert (doc["requested"], doc["delivered"]) == (5, 4)


def test_wado_rs_study_with_a_bad_object_is_206_with_an_error_part(wado, scp, stores, spoiled):
    r = wado.get(f"/dicomweb/studies/{spoiled.study}", headers=ACCEPT)
    assert r.status_code == 206, r.text[:300]
    assert r.headers["warning"].startswith("299 ") and "1 of 5" in r.headers["warning"]
    _check_partial(r, spoiled, stores, scp)
    one = wado.get(f"/dicomweb/studies/{spoiled.study}/series/{spoiled.series}/instances/"
                   f"{spoiled.bad}", headers=ACCEPT)
    assert one.status_code == 503 and one.json()["failed"][0]["SOPInstanceUID"] == spoiled.bad
    fine = wado.get(f"/dicomweb/studies/{spoiled.study}/series/{spoiled.series}/instances/"
                    f"{spoiled.good[0]}", headers=ACCEPT)
    assert fine.status_code == 200 and len(parts_of(fine)) == 1


def test_wado_rs_streamed_study_ends_with_an_error_part(wado, scp, stores, spoiled, monkeypatch):
    from portal.routes import dicomweb
    monkeypatch.setattr(dicomweb, "VERIFY_BUDGET", 0)          # too big to verify first
    r = wado.get(f"/dicomweb/studies/{spoiled.study}", headers=ACCEPT)
    assert r.status_code == 200
    _check_partial(r, spoiled, stores, scp)


def test_wado_rs_through_dicomweb_client_raises(scp, stores, spoiled, settings):
    """A real `pacs portal` and dicomweb-client: the partial study is not returned quietly."""
    pytest.importorskip("dicomweb_client")
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass
    from tests.portal_support import make_user, portal_process
    name, password = make_user(settings, "teacher", "rd")
    with portal_process() as portal:
        client = DICOMwebClient(f"{portal.url}/dicomweb",
                                session=create_session_from_user_pass(name, password))
        with pytest.raises(Exception) as err:
            client.retrieve_study(spoiled.study)
        assert "InvalidDicomError" in type(err.value).__name__ or "DICM" in str(err.value)
        good = client.retrieve_instance(spoiled.study, spoiled.series, spoiled.good[0])
        assert good.SOPInstanceUID == spoiled.good[0]


# --- C-FIND -----------------------------------------------------------------------------------

def findscu(scp, tmp: Path, model: str, level: str, *keys: str) -> list[Dataset]:
    out = tmp / f"find-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    res = dcmtk("findscu", model, "-v", "-X", "-od", str(out), "-aec", MDC_AE,
                "-k", f"QueryRetrieveLevel={level}", *[a for k in keys for a in ("-k", k)],
                HOST, str(scp.qr_port))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Received Final Find Response (Success)" in res.stderr, res.stderr[-2000:]
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_image_level_find_with_rows_and_columns(scp, tmp_path):
    st = send_study(scp, tmp_path / "in", n=3, size=24)
    got = findscu(scp, tmp_path, "-S", "IMAGE", f"StudyInstanceUID={st.study}", "Rows",
                  "Columns", "SOPInstanceUID")
    assert sorted(r.SOPInstanceUID for r in got) == sorted(st.sops)
    assert {(r.Rows, r.Columns) for r in got} == {(24, 24)}
    matched = findscu(scp, tmp_path, "-S", "IMAGE", f"StudyInstanceUID={st.study}", "Rows=24",
                      "Columns")
    assert len(matched) == 3
    assert findscu(scp, tmp_path, "-S", "IMAGE", f"StudyInstanceUID={st.study}",
                   "Rows=25") == []


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


@pytest.fixture(scope="module")
def matrix_archive(scp, stores, tmp_path_factory):
    """One patient with two studies; the first has two series (3 + 2 objects)."""
    from pydicom.uid import generate_uid
    d = tmp_path_factory.mktemp("matrix")
    pid = f"RDM-{uuid.uuid4().hex[:10]}"
    study_a = generate_uid()
    a1 = send_study(scp, d / "a1", n=3, size=16, patient_id=pid, study_uid=study_a)
    a2 = send_study(scp, d / "a2", n=2, size=16, patient_id=pid, study_uid=study_a)
    b = send_study(scp, d / "b", n=1, size=16, patient_id=pid, study_date="20240401")
    first = a1.originals[0]
    stored = dcmread(BytesIO(stored_object(stores, scp, first)))
    return SimpleNamespace(a1=a1, a2=a2, b=b, stored=stored, counts={
        "NumberOfPatientRelatedStudies": "2", "NumberOfStudyRelatedInstances": "5",
        "NumberOfStudyRelatedSeries": "2", "NumberOfSeriesRelatedInstances": "3",
        "ModalitiesInStudy": "CT"})


#: keys the de-identification profile empties (PS3.15 Table E.1-1: Study ID is Z, and the
#: birth date is not kept), so "the stored value" is empty for them
EMPTIED_BY_PROFILE = {"StudyID", "PatientBirthDate"}


@pytest.mark.parametrize("model,level", [("-S", "STUDY"), ("-S", "SERIES"), ("-S", "IMAGE"),
                                         ("-P", "PATIENT"), ("-P", "STUDY"), ("-P", "SERIES"),
                                         ("-P", "IMAGE")])
def test_every_return_key_comes_back_with_the_stored_value(scp, tmp_path, matrix_archive,
                                                           model, level):
    m = matrix_archive
    s = m.stored
    unique = {"PATIENT": {"PatientID": s.PatientID},
              "STUDY": {"StudyInstanceUID": s.StudyInstanceUID},
              "SERIES": {"StudyInstanceUID": s.StudyInstanceUID,
                         "SeriesInstanceUID": s.SeriesInstanceUID},
              "IMAGE": {"StudyInstanceUID": s.StudyInstanceUID,
                        "SeriesInstanceUID": s.SeriesInstanceUID,
                        "SOPInstanceUID": s.SOPInstanceUID}}[level]
    if model == "-P" and level != "PATIENT":
        unique = {"PatientID": s.PatientID, **unique}
    keys = KEYS[level]
    if model == "-P" and level == "STUDY":      # Patient Root: patient attributes live above
        keys = tuple(k for k in keys if not k.startswith("Patient")) + ("PatientID",)
    asked = [f"{k}={v}" for k, v in unique.items()] + [k for k in keys if k not in unique]
    got = findscu(scp, tmp_path, model, level, *asked)
    assert len(got) == 1, [g.get("SOPInstanceUID") for g in got]
    rsp = got[0]
    wrong = {}
    for kw in dict.fromkeys(list(unique) + list(keys)):
        assert kw in rsp, f"{kw} not returned at {level}"
        want = m.counts[kw] if kw in m.counts else _text(s[kw].value if kw in s else None)
        if not want:
            assert kw in EMPTIED_BY_PROFILE, f"test data has no stored {kw}"
        if _text(rsp[kw].value) != want:
            wrong[kw] = (_text(rsp[kw].value), want)
    assert not wrong, wrong


# --- the SCP log ------------------------------------------------------------------------------

def test_log_lines_once_each_tagged_with_its_association(scp, spoiled, tmp_path):
    out = tmp_path / "get"
    out.mkdir()
    res = dcmtk("getscu", "-S", "-aet", "RDLOGTEST", "-aec", MDC_AE, "-od", str(out),
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={spoiled.study}",
                HOST, str(scp.qr_port))
    assert res.returncode == 0, res.stderr[-2000:]
    time.sleep(0.5)
    lines = scp.mdc_log.read_text().splitlines()
    records = logs.read(scp.mdc_log)
    assert not [r for r in records if r.get("raw")], "every line is a JSON object"
    assert sum("listening on" in r["event"] for r in records) == 1
    repeated = [line for line, n in Counter(lines).items() if n > 1 and line.strip()]
    assert not repeated, repeated[:5]

    failed = [r for r in records if spoiled.bad in r["event"] and "unreadable" in r["event"]
              and r.get("ae") == "RDLOGTEST"]
    assert len(failed) == 1, failed
    assert failed[0]["op"] == "C-GET" and re.fullmatch(r"127\.0\.0\.1:\d+", failed[0]["peer"])
    mine = [r for r in records if r.get("assoc") == failed[0]["assoc"]]
    texts = " | ".join(r["event"] for r in mine)
    for expected in ("association requested", "association accepted", "C-STORE sub-operation",
                     "C-GET STUDY: 5 matched, 4 read", "association released"):
        assert expected in texts, expected
    # every line of the association, from its first to its last, carries its id
    # (the SCP's own and pynetdicom's lines; background threads such as the committer serve
    # no association)
    first, last = records.index(mine[0]), records.index(mine[-1])
    untagged = [r for r in records[first:last + 1]
                if re.match(r"(pacs_hdfs\.dicom|pynetdicom)", r["logger"]) and "assoc" not in r]
    assert not untagged, untagged
    assert spoiled.originals[0].PatientID not in scp.mdc_log.read_text()   # no PHI
