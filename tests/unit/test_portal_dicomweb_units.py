"""DICOMweb request parsing (pure) and the DICOMweb/viewer routes over the in-memory store:
objects stored through the real commit path into memory (tests/memory_archive.py), a quarantined one
that must stay invisible, Basic authentication with the login throttle."""
from __future__ import annotations

import base64
from io import BytesIO

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread

from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom.part10 import serialize
from pacs_hdfs.dicom.synthetic import ct_series
from pacs_hdfs.schema import row_key
from pacs_hdfs import audit
from portal import dicomweb_http as http
from tests.memory_store import MemoryStore
from tests.portal_doubles import fast_hashing, login, portal_app
from tests.memory_archive import MemoryFiles, commit_objects, install_files

PASSWORD = "correct-horse-2"


# --- pure parsing ---------------------------------------------------------------------------

def test_qido_parameters_by_keyword_or_tag_with_paging():
    q = http.parse_qido([("PatientID", "RS1*"), ("00080020", "20200101-20201231"),
                         ("StudyInstanceUID", "1.2,1.3"), ("limit", "5"), ("offset", "2"),
                         ("includefield", "StudyDescription,00080030"),
                         ("fuzzymatching", "false")], "STUDY")
    assert q.keys == {"PatientID": "RS1*", "StudyDate": "20200101-20201231",
                      "StudyInstanceUID": "1.2\\1.3"}
    assert (q.limit, q.offset) == (5, 2) and q.include == {"StudyDescription", "StudyTime"}
    assert http.parse_qido([("limit", "99999")], "STUDY").limit == http.MAX_LIMIT


@pytest.mark.parametrize("params,level", [
    ([("limit", "-1")], "STUDY"), ([("offset", "x")], "STUDY"),
    ([("NoSuchThing", "1")], "STUDY"), ([("FFFF0000", "1")], "STUDY"),
    ([("Modality", "CT")], "STUDY"),             # not a study-level key (ModalitiesInStudy is)
    ([("PatientID", "x")], "SERIES"), ([("fuzzymatching", "maybe")], "STUDY"),
    ([("includefield", "Nope")], "IMAGE"), ([("PatientID", "a\x00b")], "STUDY")])
def test_bad_qido_parameters_are_refused(params, level):
    with pytest.raises(http.BadRequest):
        http.parse_qido(params, level)


def test_dicom_json_types():
    out = http.dicom_json({"PatientName": "RSX", "Rows": "64", "InstanceNumber": "3",
                           "ModalitiesInStudy": "CT\\MR", "StudyDate": ""},
                          ["PatientName", "Rows", "InstanceNumber", "ModalitiesInStudy",
                           "StudyDate"])
    assert out["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "RSX"}]}
    assert out["00280010"] == {"vr": "US", "Value": [64]}
    assert out["00200013"] == {"vr": "IS", "Value": [3]}
    assert out["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert out["00080020"] == {"vr": "DA"}                 # empty: present without a value
    assert list(out) == sorted(out)


def test_accept_negotiation():
    dicom = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    assert http.accepts_multipart(dicom, "application/dicom")
    assert http.accepts_multipart(None, "application/dicom")
    assert not http.accepts_multipart("text/html", "application/dicom")
    assert not http.accepts_multipart('multipart/related; type="image/jpeg"', "application/dicom")
    assert http.choose("image/jpeg, image/png", ("image/png", "image/jpeg")) == "image/jpeg"
    assert http.choose("image/*", ("image/png", "image/jpeg")) == "image/png"
    assert http.choose("image/png;q=0, image/gif", ("image/png", "image/jpeg")) is None
    assert http.choose(None, ("application/dicom+json",)) == "application/dicom+json"


@pytest.mark.parametrize("text,expected", [("1", [1]), ("2,1,3", [2, 1, 3])])
def test_frame_lists(text, expected):
    assert http.parse_frames(text) == expected


@pytest.mark.parametrize("text", ["0", "", "a", "1,,2", "-1"])
def test_bad_frame_lists(text):
    with pytest.raises(http.BadRequest):
        http.parse_frames(text)


def test_window_parameter():
    assert http.parse_window(None) is None
    assert http.parse_window("40,400") == (40, 400)
    assert http.parse_window("-600,1500,linear") == (-600, 1500)
    for bad in ("40", "40,0", "a,b", "40,400,sigmoid", "nan,400"):
        with pytest.raises(http.BadRequest):
            http.parse_window(bad)


def test_multipart_framing():
    body = http.multipart_part("b0", "application/dicom", b"DATA") + http.multipart_end("b0")
    assert body == (b"--b0\r\nContent-Type: application/dicom\r\nContent-Length: 4\r\n\r\n"
                    b"DATA\r\n--b0--\r\n")


def test_ingest_parent_rows_index_the_accession():
    ds = ct_series(1, patient_id="RSX", patient_name="RSX", size=8, accession="ACCX")[0]
    rows = ix.parent_rows(ix.attributes(ds, ix.ALL_KEYS))
    assert rows["search"] == (f"study-accession\x00ACCX\x00{ds.StudyInstanceUID}".encode(),
                              {b"i:s": b"1"})
    del ds.AccessionNumber
    assert "search" not in ix.parent_rows(ix.attributes(ds, ix.ALL_KEYS))


# --- routes over the in-memory store --------------------------------------------------------

@pytest.fixture(scope="module")
def world():
    with fast_hashing():
        store = MemoryStore()
        app = portal_app({"dw-teacher": "teacher"}, PASSWORD, store)
        series = ct_series(3, patient_id="RSPSEUDONYM", patient_name="RSPSEUDONYM", size=16,
                           accession="ACCDEID1")
        files = MemoryFiles()
        install_files(app, files)
        stored = dict(zip((ds.SOPInstanceUID for ds in series),
                          commit_objects(store, files, series)))
        held = ct_series(1, patient_id="RSOTHER", patient_name="RSOTHER", size=16)[0]
        commit_objects(store, files, [held], quarantine="burned-in annotation suspected")
        yield app, series, stored, held


def _basic(name="dw-teacher", password=PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


@pytest.fixture
def c(world):
    return TestClient(world[0])


def test_qido_and_wado_with_basic_auth(world, c):
    _app, series, stored, _held = world
    study, se = series[0].StudyInstanceUID, series[0].SeriesInstanceUID
    r = c.get("/dicomweb/studies", params={"AccessionNumber": "ACCDEID1"}, headers=_basic())
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom+json"
    assert [s["0020000D"]["Value"][0] for s in r.json()] == [study]
    assert r.json()[0]["00201208"]["Value"] == [3]
    inst = c.get(f"/dicomweb/studies/{study}/series/{se}/instances", headers=_basic()).json()
    assert [i["00080018"]["Value"][0] for i in inst] == [ds.SOPInstanceUID for ds in series]
    sop = series[1].SOPInstanceUID
    r = c.get(f"/dicomweb/studies/{study}/series/{se}/instances/{sop}", headers=_basic())
    assert r.status_code == 200 and 'type="application/dicom"' in r.headers["content-type"]
    assert stored[sop] in r.content
    meta = c.get(f"/dicomweb/studies/{study}/series/{se}/instances/{sop}/metadata",
                 headers=_basic()).json()[0]
    assert meta["00080018"]["Value"] == [sop] and "InlineBinary" not in meta["7FE00010"]
    assert meta["7FE00010"]["BulkDataURI"].endswith(f"/instances/{sop}/frames/1")
    png = c.get(f"/dicomweb/studies/{study}/series/{se}/instances/{sop}/rendered",
                headers={**_basic(), "Accept": "image/png"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_quarantined_object_never_answers(world, c):
    _app, _series, _stored, held = world
    study, se, sop = held.StudyInstanceUID, held.SeriesInstanceUID, held.SOPInstanceUID
    assert c.get("/dicomweb/studies", params={"StudyInstanceUID": study},
                 headers=_basic()).json() == []
    assert c.get(f"/dicomweb/studies/{study}/instances", headers=_basic()).json() == []
    for path in (f"/dicomweb/studies/{study}", f"/dicomweb/studies/{study}/series/{se}",
                 f"/dicomweb/studies/{study}/series/{se}/instances/{sop}",
                 f"/dicomweb/studies/{study}/series/{se}/instances/{sop}/frames/1"):
        assert c.get(path, headers=_basic()).status_code == 404, path


def test_basic_credentials_are_forgotten_when_the_user_changes(world):
    """A remembered Basic credential stops working at once when the user is disabled or gets
    a new password (the cache keeps the user's session epoch)."""
    app = world[0]
    users = app.state.portal.users
    users.add("dw-short", "teacher", PASSWORD)
    c = TestClient(app, client=("10.8.8.8", 5000))
    assert c.get("/dicomweb/studies", headers=_basic("dw-short")).status_code == 200
    users.set_disabled("dw-short", True)
    assert c.get("/dicomweb/studies", headers=_basic("dw-short")).status_code == 401
    users.set_disabled("dw-short", False)
    assert c.get("/dicomweb/studies", headers=_basic("dw-short")).status_code == 200
    users.set_password("dw-short", "a-new-password")
    assert c.get("/dicomweb/studies", headers=_basic("dw-short")).status_code == 401
    users.delete("dw-short")


def test_every_dicomweb_request_is_audited(world, c):
    _app, series, _stored, _held = world
    study, se, sop = (series[0].StudyInstanceUID, series[0].SeriesInstanceUID,
                      series[0].SOPInstanceUID)
    base = f"/dicomweb/studies/{study}/series/{se}/instances/{sop}"
    for path, accept in (("/dicomweb/studies", None), (f"/dicomweb/studies/{study}/series", None),
                         (f"{base}/metadata", None), (f"{base}/rendered", "image/png"),
                         (f"{base}/frames/1", "multipart/related; type=application/octet-stream"),
                         (base, None)):
        headers = {**_basic(), **({"Accept": accept} if accept else {})}
        assert c.get(path, headers=headers).status_code == 200, path
    from pacs_hdfs import audit
    events = audit.query(None, user="dw-teacher", limit=6, store=_app.state.portal.store)
    assert [e.action for e in events][::-1] == ["qido", "qido", "wado", "wado", "wado",
                                                "download-study"]
    assert events[0].details["via"] == "dicomweb" and events[-1].details["level"] == "STUDY"


def test_basic_auth_failures_and_throttle(world):
    app = world[0]
    c = TestClient(app, client=("10.9.9.9", 5000))
    assert c.get("/dicomweb/studies").status_code == 401
    assert c.get("/dicomweb/studies", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert c.get("/dicomweb/studies", headers={"Authorization": "Bearer x"}).status_code == 401
    for _ in range(5):
        r = c.get("/dicomweb/studies", headers=_basic("dw-teacher", "wrong-one"))
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = c.get("/dicomweb/studies", headers=_basic("dw-teacher", "wrong-one"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_viewer_page_accession_link_and_pixels(world, c):
    _app, series, _stored, held = world
    assert login(c, "dw-teacher", PASSWORD).status_code == 303
    study, se = series[0].StudyInstanceUID, series[0].SeriesInstanceUID
    r = c.get("/viewer/accession/ACCDEID1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/viewer/study/{study}"
    assert c.get("/viewer/accession/UNKNOWN").status_code == 404
    assert c.get(f"/viewer/study/{held.StudyInstanceUID}").status_code == 404
    assert c.get("/viewer/study/not-a-uid").status_code == 400
    page = c.get(f"/viewer/study/{study}")
    assert page.status_code == 200 and 'src="/static/viewer.js"' in page.text
    assert "Lung" in page.text and "3 image(s)" in page.text
    sop = series[0].SOPInstanceUID
    px = c.get(f"/api/viewer/studies/{study}/series/{se}/instances/{sop}/frames/1")
    values = np.frombuffer(px.content, "<f4").reshape(16, 16)
    expected = dcmread(BytesIO(serialize(series[0]))).pixel_array.astype(np.float32) - 1024
    np.testing.assert_array_equal(values, expected)
    assert c.get(f"/api/viewer/studies/{study}/series/{se}/instances/{sop}/frames/2"
                 ).status_code == 404
    events = [e.action for e in audit.query(None, store=_app.state.portal.store,
                                            action="view-study")]
    assert events and set(events) == {"view-study"}
