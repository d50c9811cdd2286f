"""Honest readers without the cluster: C-FIND responses for every conformance key encode,
C-GET / C-MOVE through real pynetdicom associations deliver every readable object and report
the unreadable ones as failed sub-operations, SCP log lines carry their association, and
WADO-RS never answers a clean 200 with objects missing (portal routes over a fake archive).
"""
from __future__ import annotations

import io
import json
import logging
import socket
from email.parser import BytesParser
from email.policy import HTTP
from types import SimpleNamespace

import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dsutils import encode

from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs import logs
from pacs_hdfs.dicom import query, scp_logging
from pacs_hdfs.dicom.synthetic import ct_series
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.schema import row_key

HOST = "127.0.0.1"
#: the C-FIND return keys docs/DICOM_CONFORMANCE.md lists, per level
CONFORMANCE_KEYS = {
    "PATIENT": ix.PATIENT_KEYS + ("NumberOfPatientRelatedStudies",),
    "STUDY": ix.STUDY_KEYS + ("ModalitiesInStudy", "NumberOfStudyRelatedInstances",
                              "NumberOfStudyRelatedSeries"),
    "SERIES": ix.SERIES_KEYS + ("NumberOfSeriesRelatedInstances",),
    "IMAGE": ix.IMAGE_KEYS,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class FakeIndex:
    """The two calls query.matching_rows makes, over dicts."""

    def __init__(self):
        self.tables: dict[str, dict[bytes, dict]] = {}

    def put(self, table, key, cols):
        self.tables.setdefault(table, {}).setdefault(key, {}).update(cols)

    def get(self, table, key, columns=None):
        return dict(self.tables.get(table, {}).get(key, {}))

    def get_many(self, table, keys, columns=None):
        t = self.tables.get(table, {})
        return {k: dict(t[k]) for k in keys if k in t}

    def scan(self, table, row_prefix=None, **_kw):
        return [(k, dict(v)) for k, v in sorted(self.tables.get(table, {}).items())
                if row_prefix is None or k.startswith(row_prefix)]


def indexed_series(n: int = 3, size: int = 16):
    """A fake index holding one CT series as the SCP indexes it."""
    index = FakeIndex()
    series = ct_series(n, patient_id="RSPSEUDO1", patient_name="RSPSEUDO1", size=size)
    for ds in series:
        attrs = ix.attributes(ds, ix.ALL_KEYS)
        key = ix.instance_key(attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"],
                              attrs["SOPInstanceUID"])
        index.put("instance", key, {b"l:ts": ExplicitVRLittleEndian.encode(),
                                    **ix.columns(attrs, ix.ALL_KEYS)})
        index.put("sop", row_key(attrs["SOPInstanceUID"]), {b"r:key": key})
        for table, (k, cols) in ix.parent_rows(attrs).items():
            index.put(table, k, cols)
    study, se = series[0].StudyInstanceUID, series[0].SeriesInstanceUID
    index.put("series", row_key(study, se), {b"c:instances": n.to_bytes(8, "big")})
    index.put("study", row_key(study), {b"c:instances": n.to_bytes(8, "big"),
                                        b"c:series": (1).to_bytes(8, "big")})
    return index, series


def identifier(level: str, keys, **fixed) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for kw in keys:
        setattr(ds, kw, None)
    for kw, value in fixed.items():
        setattr(ds, kw, value)
    return ds


# --- C-FIND responses -----------------------------------------------------------------------

@pytest.mark.parametrize("level", list(CONFORMANCE_KEYS))
def test_every_conformance_key_is_answered_and_encodes(level):
    index, series = indexed_series()
    ds0 = series[0]
    fixed = {"PATIENT": {"PatientID": "RSPSEUDO1"},
             "STUDY": {"StudyInstanceUID": ds0.StudyInstanceUID},
             "SERIES": {"StudyInstanceUID": ds0.StudyInstanceUID},
             "IMAGE": {"StudyInstanceUID": ds0.StudyInstanceUID,
                       "SOPInstanceUID": ds0.SOPInstanceUID}}[level]
    keys = [k for k in CONFORMANCE_KEYS[level] if k not in fixed]
    found = list(query.find(index, identifier(level, keys, **fixed)))
    assert len(found) == 1
    rsp = found[0]
    for ts in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
        assert encode(rsp, ts.is_implicit_VR, ts.is_little_endian), ts
    counts = {"NumberOfPatientRelatedStudies": 1, "NumberOfStudyRelatedInstances": 3,
              "NumberOfStudyRelatedSeries": 1, "NumberOfSeriesRelatedInstances": 3,
              "ModalitiesInStudy": "CT"}
    for kw in CONFORMANCE_KEYS[level]:
        assert kw in rsp, kw
        want = counts.get(kw, ds0.get(kw))
        assert rsp[kw].value == want, (kw, rsp[kw].value, want)


def test_rows_and_columns_are_numbers():
    index, series = indexed_series(size=24)
    rsp = list(query.find(index, identifier("IMAGE", ["Rows", "Columns"],
                                            StudyInstanceUID=series[0].StudyInstanceUID)))
    assert len(rsp) == 3
    assert {(r.Rows, r.Columns) for r in rsp} == {(24, 24)}
    assert all(isinstance(r.Rows, int) for r in rsp)
    # matching on a US key works on the stored text
    study = series[0].StudyInstanceUID
    found = list(query.find(index, identifier("IMAGE", [], Rows=24, StudyInstanceUID=study)))
    assert len(found) == 3
    assert list(query.find(index, identifier("IMAGE", [], Rows=25, StudyInstanceUID=study))) == []


@pytest.mark.parametrize("keyword,vr,text,expected", [
    ("Rows", "US", "512", 512), ("Columns", "UN", "64", 64),   # UN: implicit VR peers
    ("Rows", "US", "not-a-number", None), ("Rows", "US", "", None),
    ("SmallestImagePixelValue", "US or SS", "3", 3), ("InstanceNumber", "IS", "7", "7"),
    ("ModalitiesInStudy", "CS", "CT\\MR", ["CT", "MR"]),
])
def test_response_elements_from_index_text(keyword, vr, text, expected):
    elem = query._element(keyword, vr, text)
    assert elem.VR in ("US", "IS", "CS") and elem.value == expected or (
        expected is None and elem.value in (None, "", b""))
    ds = Dataset()
    ds[elem.tag] = elem
    assert encode(ds, False, True) is not None


# --- C-GET / C-MOVE through pynetdicom --------------------------------------------------------

@pytest.fixture
def retrieve_world(monkeypatch):
    """An in-process SCP (our handlers) over a fake index where one object is unreadable."""
    from pacs_hdfs.dicom.config import DimsePolicy
    from pacs_hdfs.dicom.server import Handlers, build_ae, event_handlers
    _index, series = indexed_series(4)
    stored = [query.Stored(row_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID),
                           {}, ds.SOPClassUID, ExplicitVRLittleEndian) for ds in series]
    by_uid = {ds.SOPInstanceUID: ds for ds in series}
    bad = {series[1].SOPInstanceUID}

    def load(_hbase, _hdfs, item):
        if item.sop_uid in bad:
            raise StorageError(f"instance {item.sop_uid}: sha256 mismatch")
        return by_uid[item.sop_uid]
    monkeypatch.setattr(query, "instance_locations", lambda _hbase, _ident: list(stored))
    monkeypatch.setattr(query, "load", load)
    dest_port = free_port()
    policy = DimsePolicy(frozenset({"GETTER", "MOVER"}), frozenset(), {"MOVEDEST": (HOST, dest_port)})
    handlers = Handlers(None, None, None, policy)
    ae = build_ae("PACS", policy)
    port = free_port()
    server = ae.start_server((HOST, port), block=False, evt_handlers=event_handlers(handlers))
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)
    keep = Keep()
    keep.addFilter(scp_logging.AssociationFilter())
    pacs_log, pynetdicom_log = logging.getLogger("pacs_hdfs"), logging.getLogger("pynetdicom")
    saved = (pacs_log.level, pynetdicom_log.level)
    pacs_log.addHandler(keep)
    pynetdicom_log.addHandler(keep)
    pacs_log.setLevel(logging.INFO)
    pynetdicom_log.setLevel(logging.WARNING)
    try:
        yield SimpleNamespace(port=port, dest_port=dest_port, series=series, bad=bad, by_uid=by_uid,
                              records=records)
    finally:
        server.shutdown()
        pacs_log.removeHandler(keep)
        pynetdicom_log.removeHandler(keep)
        pacs_log.setLevel(saved[0])
        pynetdicom_log.setLevel(saved[1])


def _final(responses):
    responses = [(st, ident) for st, ident in responses if st is not None]
    assert responses, "no response"
    return responses[-1]


def test_c_get_sends_every_readable_object_and_lists_the_failed(retrieve_world):
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet
    w = retrieve_world
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000
    ae = AE(ae_title="GETTER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate(HOST, w.port, ae_title="PACS", ext_neg=[build_role(CTImageStorage,
                                                                            scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        status, ident = _final(assoc.send_c_get(
            identifier("STUDY", [], StudyInstanceUID=w.series[0].StudyInstanceUID),
            StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    good = [ds.SOPInstanceUID for ds in w.series if ds.SOPInstanceUID not in w.bad]
    assert received == good                                 # every readable one, in order
    assert status.Status == 0xB000
    assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations,
            status.NumberOfWarningSuboperations) == (3, 1, 0)
    failed = ident.FailedSOPInstanceUIDList
    assert ([failed] if isinstance(failed, str) else list(failed)) == sorted(w.bad)

    tagged = [r for r in w.records if "unreadable, counted" in r.getMessage()]
    assert len(tagged) == 1 and sorted(w.bad)[0] in tagged[0].getMessage()
    assert tagged[0].ae == "GETTER" and tagged[0].op == "C-GET"
    assoc_id = tagged[0].assoc
    mine = [r for r in w.records if getattr(r, "assoc", None) == assoc_id]
    assert any("association requested" in r.getMessage() for r in mine)
    assert any("association released" in r.getMessage() for r in mine)
    assert any(r.name.startswith("pynetdicom") for r in mine)  # its sub-operation failure line


def test_c_get_of_only_unreadable_objects_fails_with_a702(retrieve_world):
    from pynetdicom import AE, build_role
    from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet
    w = retrieve_world
    w.bad.update(w.by_uid)
    ae = AE(ae_title="GETTER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate(HOST, w.port, ae_title="PACS",
                         ext_neg=[build_role(CTImageStorage, scp_role=True)])
    try:
        status, ident = _final(assoc.send_c_get(
            identifier("STUDY", [], StudyInstanceUID=w.series[0].StudyInstanceUID),
            StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    assert status.Status == 0xA702
    assert status.NumberOfFailedSuboperations == 4
    assert sorted(ident.FailedSOPInstanceUIDList) == sorted(w.by_uid)


def test_c_move_sends_every_readable_object_and_lists_the_failed(retrieve_world):
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove
    w = retrieve_world
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000
    dest = AE(ae_title="MOVEDEST")
    for cx in AllStoragePresentationContexts:
        dest.add_supported_context(cx.abstract_syntax, [ExplicitVRLittleEndian,
                                                        ImplicitVRLittleEndian])
    server = dest.start_server((HOST, w.dest_port), block=False,
                               evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        ae = AE(ae_title="MOVER")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = ae.associate(HOST, w.port, ae_title="PACS")
        try:
            status, ident = _final(assoc.send_c_move(
                identifier("STUDY", [], StudyInstanceUID=w.series[0].StudyInstanceUID),
                "MOVEDEST", StudyRootQueryRetrieveInformationModelMove))
        finally:
            assoc.release()
    finally:
        server.shutdown()
    assert received == [ds.SOPInstanceUID for ds in w.series if ds.SOPInstanceUID not in w.bad]
    assert status.Status == 0xB000
    assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (3, 1)
    failed = ident.FailedSOPInstanceUIDList
    assert ([failed] if isinstance(failed, str) else list(failed)) == sorted(w.bad)
    assert any(getattr(r, "op", "") == "C-MOVE" and getattr(r, "ae", "") == "MOVER" for r in w.records
               if "unreadable, counted" in r.getMessage())


def test_unsendable_placeholder_is_refused_before_the_wire():
    from pynetdicom import AE
    from pacs_hdfs.dicom.server import unsendable
    ds = unsendable("1.2.3.4")
    assert ds and ds.SOPInstanceUID == "1.2.3.4" and "SOPClassUID" not in ds
    from pynetdicom.sop_class import CTImageStorage
    ae = AE()
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(HOST, free_port())        # nobody listens: not established
    with pytest.raises((AttributeError, RuntimeError)):
        assoc.send_c_store(ds)


# --- the SCP log ----------------------------------------------------------------------------

@pytest.fixture
def restore_loggers():
    names = ("", *logs.OUR_PACKAGES)
    saved = {name: (lg.level, lg.propagate, list(lg.handlers))
             for name in names for lg in [logging.getLogger(name)]}
    yield
    for name, (level, propagate, handlers) in saved.items():
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if h not in handlers:
                lg.removeHandler(h)
                h.close()
        for h in handlers:
            if h not in lg.handlers:
                lg.addHandler(h)
        lg.setLevel(level)
        lg.propagate = propagate


def test_log_written_once_when_stderr_is_the_log_file(tmp_path, restore_loggers):
    path = tmp_path / "scp.log"
    with open(path, "a") as stderr_like:             # as the supervisor redirects the daemon
        handlers = scp_logging.setup(path, stream=stderr_like)
        assert len(handlers) == 1
        scp_logging.setup(path, stream=stderr_like)   # again: replaced, not added
        assert sum(logs._ours(h) for h in logging.getLogger().handlers) == 1
        logging.getLogger("pacs_hdfs.dicom.runner").info("one line %d", 42)
        logging.getLogger("pacs_hdfs.retry").warning("a retry")
        logging.getLogger("hdfs.client").info("a chatty library line")
        for h in logging.getLogger().handlers:
            h.flush()
    records = logs.read(path)
    assert [r["event"] for r in records] == ["one line 42", "a retry"]
    assert records[0]["service"] == "scp" and records[0]["level"] == "INFO"
    assert records[0]["logger"] == "pacs_hdfs.dicom.runner"


def test_log_to_file_and_a_separate_stderr(tmp_path, restore_loggers):
    other = io.StringIO()
    handlers = scp_logging.setup(tmp_path / "scp.log", stream=other, service="edge")
    assert len(handlers) == 2
    logging.getLogger("deid.edge.scp").info("both")
    assert json.loads(other.getvalue())["event"] == "both"
    assert [r["service"] for r in logs.read(tmp_path / "scp.log")] == ["edge"]


def test_pynetdicom_tracebacks_are_reduced_to_their_type():
    rec = logging.LogRecord("pynetdicom.service_class", logging.ERROR, __file__, 1,
                            "\nTraceback (most recent call last):\n  File x\n"
                            "ValueError: Patient Name Secret^Person", (), None)
    logs.RedactFilter().filter(rec)
    assert "Secret" not in rec.getMessage() and "ValueError" in rec.getMessage()


# --- WADO-RS over a fake archive --------------------------------------------------------------

class FakeArchive:
    def __init__(self, objects: dict[str, bytes], bad: set[str], sized: bool = True):
        self.objects, self.bad, self.sized = objects, bad, sized

    def locate(self, study, series=None, sop=None):
        return [query.Stored(row_key("1.2", "1.2.3", uid),
                             {b"l:length": str(len(data)).encode()} if self.sized else {},
                             "1.2.840.10008.5.1.4.1.1.2", ExplicitVRLittleEndian)
                for uid, data in self.objects.items() if sop in (None, uid)]

    def read(self, item):
        if item.sop_uid in self.bad:
            raise StorageError(f"instance {item.sop_uid}: sha256 mismatch")
        return self.objects[item.sop_uid]


def multipart(resp) -> list[tuple[str, bytes]]:
    """(content type, body) of each part; asserts the closing boundary is there."""
    ctype = resp.headers["content-type"]
    boundary = ctype.split("boundary=")[1].split(";")[0].strip('"')
    assert resp.content.endswith(f"--{boundary}--\r\n".encode()), "no closing boundary"
    msg = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + resp.content)
    return [(p.get_content_type(), p.get_payload(decode=True)) for p in msg.iter_parts()]


@pytest.fixture
def wado(monkeypatch):
    from fastapi.testclient import TestClient
    from portal.dicom_access import archive
    from tests.portal_doubles import fast_hashing, portal_app
    objects = {f"1.2.3.{i}": f"DICM-object-{i}".encode() * 10 for i in range(1, 5)}
    fake = FakeArchive(objects, set())
    with fast_hashing():
        app = portal_app({"wado-t": "teacher"}, "pw-wado-1")
        app.dependency_overrides[archive] = lambda: fake
        client = TestClient(app)
        client.auth = ("wado-t", "pw-wado-1")
        yield SimpleNamespace(client=client, fake=fake, objects=objects)


ACCEPT = {"Accept": 'multipart/related; type="application/dicom"'}


def test_wado_all_readable_is_a_plain_200(wado):
    r = wado.client.get("/dicomweb/studies/1.2", headers=ACCEPT)
    assert r.status_code == 200
    parts = multipart(r)
    assert [body for _t, body in parts] == list(wado.objects.values())
    assert all(t == "application/dicom" for t, _b in parts)


def test_wado_verified_partial_is_206_with_warning_and_error_part(wado):
    wado.fake.bad = {"1.2.3.2"}
    r = wado.client.get("/dicomweb/studies/1.2", headers=ACCEPT)
    assert r.status_code == 206
    assert r.headers["warning"].startswith("299 ") and "1 of 4" in r.headers["warning"]
    parts = multipart(r)
    assert [b for t, b in parts if t == "application/dicom"] == [
        v for k, v in wado.objects.items() if k != "1.2.3.2"]
    kind, body = parts[-1]
    assert kind == "application/json"
    doc = json.loads(body)
    assert doc["failed"] == [{"SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.3.2"}]
    assert (doc["requested"], doc["delivered"]) == (4, 3)


def test_wado_nothing_readable_is_503(wado):
    wado.fake.bad = set(wado.objects)
    r = wado.client.get("/dicomweb/studies/1.2/series/1.2.3/instances/1.2.3.1", headers=ACCEPT)
    assert r.status_code == 503
    assert r.json()["failed"] == [{"SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.3.1"}]


@pytest.mark.parametrize("how", ["over budget", "sizes unknown"])
def test_wado_streamed_ends_with_an_error_part(wado, monkeypatch, how):
    from portal.routes import dicomweb
    if how == "over budget":
        monkeypatch.setattr(dicomweb, "VERIFY_BUDGET", 10)
    else:
        wado.fake.sized = False
    wado.fake.bad = {"1.2.3.1", "1.2.3.3"}
    r = wado.client.get("/dicomweb/studies/1.2", headers=ACCEPT)
    assert r.status_code == 200                                 # sent before the first read
    parts = multipart(r)
    assert [b for t, b in parts if t == "application/dicom"] == [
        wado.objects["1.2.3.2"], wado.objects["1.2.3.4"]]
    kind, body = parts[-1]
    assert kind == "application/json"
    assert [f["SOPInstanceUID"] for f in json.loads(body)["failed"]] == ["1.2.3.1", "1.2.3.3"]


def test_dicomweb_client_cannot_miss_the_error_part(wado):
    """dicomweb-client's own multipart decoding, then pydicom on each part, as its retrieve
    methods do: the error part makes it raise instead of returning fewer objects."""
    pytest.importorskip("dicomweb_client")
    import requests
    from dicomweb_client.api import DICOMwebClient
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError
    wado.fake.bad = {"1.2.3.2"}
    r = wado.client.get("/dicomweb/studies/1.2", headers=ACCEPT)
    resp = requests.Response()
    resp.status_code, resp._content = r.status_code, r.content
    resp.headers.update(r.headers)
    client = DICOMwebClient("http://localhost/dicomweb")
    parts = list(client._decode_multipart_message(resp, stream=False))
    assert len(parts) == 4
    with pytest.raises(InvalidDicomError):
        dcmread(io.BytesIO(parts[-1]))


def test_threads_of_a_move_sub_association_carry_the_parent_tag():
    """pynetdicom serves the C-MOVE sub-association in threads of its own; lines logged there
    (e.g. the destination aborting) still name the association that asked for the move."""
    import threading
    seen = {}

    def tag_here(key):
        rec = logging.LogRecord("pynetdicom.assoc", logging.WARNING, __file__, 1, "x", (), None)
        scp_logging.AssociationFilter().filter(rec)
        seen[key] = {k: getattr(rec, k, "") for k in ("assoc", "ae", "peer", "op")}

    class Peer:                                     # stands in for pynetdicom's Association
        requestor = SimpleNamespace(primitive=SimpleNamespace(calling_ae_title="MOVER"),
                                    address="127.0.0.9", port=104)

    def serve():
        parent = Peer()
        scp_logging._enter(SimpleNamespace(assoc=parent), "C-MOVE")
        (_evt, link), = scp_logging.sub_association_handlers()
        sub = threading.Thread(target=tag_here, args=("sub",))
        link(SimpleNamespace(assoc=sub))            # EVT_CONN_OPEN of the sub-association
        sub.start()
        sub.join()
        tag_here("parent")
    t = threading.Thread(target=serve)
    t.start()
    t.join()
    assert seen["parent"]["ae"] == "MOVER" and seen["parent"]["op"] == "C-MOVE"
    assert seen["sub"] == {**seen["parent"], "op": "C-MOVE sub-association"}
    tag_here("outside")
    assert not any(seen["outside"].values())
