"""Case view (view model, abnormal-lab flags, tabs markup, 400/404, audit) and the admin quarantine
review (details, preview, release/reject with CSRF, 404/409) on the in-memory store.

Visits are hl7_gateway models stored through `hl7_gateway.store_rows`, i.e. the rows the gateway
writes; quarantined objects are de-identified synthetic CT slices stored as the SCP stores them
(stored through the real commit path into memory)."""
from __future__ import annotations

import re
import time
from datetime import datetime
from io import BytesIO

import pytest
from fastapi.testclient import TestClient

from hl7_gateway import store_rows
from hl7_gateway.models import Diagnosis, Exam, Lab
from hl7_gateway.samples import sample_visit
from pacs_hdfs.containers import Location
from pacs_hdfs.settings import Settings
from portal import audit
from portal import case_view as cv
from portal.app import create_app
from portal.memstore import MemoryStore
from tests.memory_archive import MemoryFiles, commit_objects, install_files
from portal.testing import FakeJobService, csrf_token, fast_hashing, login, portal_app

PW = "s3cret-pass"
PATIENT = "RSABCDEFGHIJKLMNOP"
OTHER = "RSZZZZZZZZZZZZZZZZ"


@pytest.fixture(autouse=True)
def _cheap_argon2():
    with fast_hashing():
        yield


def put_visit(store, visit) -> None:
    """The visit's rows exactly as the gateway builds them (store_rows)."""
    index = store_rows.search_rows(visit)
    archive = Location("hl7/archive/2024-03-06/w-0.pack", 0, 100, "0" * 64)
    store.put_many("search", index.items())
    key, cols = store_rows.subject_column(visit)
    store.put("subject", key, cols)
    store.put("visit", visit.visit_id.encode(),
              store_rows.visit_row(visit, archive, "2024-03-06T10:00:00.000", list(index)))


def older_visit():
    return sample_visit(
        visit_id="b2xkZXItdmlzaXQ", admission=datetime(2021, 6, 2, 9, 0),
        discharge=datetime(2021, 6, 9, 9, 0), age=64, city="Opole",
        diagnoses=[Diagnosis(system="ICD10", code="C50.9", primary=True),
                   Diagnosis(system="ICD10", code="E11"),
                   Diagnosis(system="ICD9CM", code="174.9",
                             display="Malignant neoplasm of breast")],
        labs=[Lab(code="2345-7", name="Glucose", value=130, unit="mg/dL", low=70, high=99),
              Lab(code="718-7", name="Hemoglobin", value=13.5, unit="g/dL", low=12, high=17.5,
                  interpretation="N")],
        exams=[Exam(kind="MG", accession="ACOLDMAMMO00001", text="Mass in the left breast.")])


@pytest.fixture()
def app():
    store = MemoryStore()
    a = portal_app({"tea": "teacher", "adm": "admin"}, PW, store)
    put_visit(store, sample_visit())                       # 2024-03-01, I10 + ICD-9 250.00
    put_visit(store, older_visit())                        # 2021-06-02, C50.9
    put_visit(store, sample_visit(visit_id="c29tZW9uZS1lbHNl", patient_id=OTHER))
    return a


def _client(app, name):
    c = TestClient(app)
    assert login(c, name, PW).status_code == 303
    return c


# --- pure view model ------------------------------------------------------------------------

@pytest.mark.parametrize("lab,flag", [
    (Lab(code="x", name="x", value=11.2, unit="u", low=12, high=17.5, interpretation="L"), "low"),
    (Lab(code="x", name="x", value=14, unit="u", low=12, high=17.5, interpretation="A"),
     "abnormal"),
    (Lab(code="x", name="x", value=130, unit="u", low=70, high=99), "above the reference range"),
    (Lab(code="x", name="x", value=60, unit="u", low=70), "below the reference range"),
    (Lab(code="x", name="x", value=130, unit="u", high=99, interpretation="N"),
     "above the reference range"),
    (Lab(code="x", name="x", value=1, unit="u", interpretation="POS"), "positive"),
    (Lab(code="x", name="x", value=99, unit="u", low=70, high=99), ""),        # on the bound
    (Lab(code="x", name="x", value=14, unit="u", low=12, high=17.5, interpretation="N"), ""),
    (Lab(code="x", name="x", value=3.25, unit="u"), ""),                        # nothing to go by
])
def test_abnormal_lab_flagging(lab, flag):
    assert cv.lab_flag(lab) == flag
    assert cv.is_abnormal(lab) is bool(flag)
    assert cv.lab_view(lab).abnormal is bool(flag)


def test_case_view_model_from_stored_rows(app):
    store = app.state.portal.store
    subject = store.get("subject", PATIENT.encode())
    cells = [store.get("visit", c[2:])[b"v:json"] for c in subject]
    case = cv.case_view(PATIENT, cv.parse_visits(cells))
    assert case.sex == "F"
    assert [v.label for v in case.visits] == ["2024-03-01", "2021-06-02"]     # newest first
    assert case.selected == "c2FtcGxlLXZpc2l0LWlk"
    new, old = case.visits
    assert (new.age, new.city, new.discharge) == (67, "Wrocław", datetime(2024, 3, 5, 12, 0, 30))
    # ICD-10 titles come from the classification, ICD-9 keeps the display the visit carries
    assert old.diagnoses[0] == cv.DiagnosisView("ICD-10", "C50.9",
                                                "Malignant neoplasm: Breast, unspecified", True)
    assert old.diagnoses[1].description == "Type 2 diabetes mellitus"
    assert old.diagnoses[2] == cv.DiagnosisView("ICD-9-CM", "174.9",
                                                "Malignant neoplasm of breast", False)
    assert [lab.abnormal for lab in old.labs] == [True, False] and old.abnormal_labs == 1
    assert old.labs[0].reference == "70–99"
    assert [e.viewer_url for e in new.exams] == ["/viewer/accession/ACQ2V7X4K9M3P5TZ", ""]
    assert new.exams[1].kind_name == "Blood morphology"
    assert cv.case_view(PATIENT, cv.parse_visits(cells), "b2xkZXItdmlzaXQ").selected == \
        "b2xkZXItdmlzaXQ"
    with pytest.raises(LookupError):
        cv.case_view(PATIENT, cv.parse_visits(cells), "bm8tc3VjaC12aXNpdA")


def test_pseudonym_and_visit_id_formats():
    assert cv.valid_pseudonym(PATIENT)
    for bad in ("", "rsabcdefghijklmnop", "RSABC", "RSABCDEFGHIJKLMNO1", PATIENT + "A",
                "RS/../../etc/passwd"):
        assert not cv.valid_pseudonym(bad), bad
    assert cv.valid_visit_id("c2FtcGxlLXZpc2l0LWlk") and not cv.valid_visit_id("a b")


# --- the case page and API --------------------------------------------------------------------

def test_case_page_shows_visits_as_tabs(app):
    r = _client(app, "tea").get(f"/cases/{PATIENT}")
    assert r.status_code == 200
    html = r.text
    assert html.count('role="tablist"') == 1
    tabs = re.findall(r'<a role="tab"[^>]*>', html)
    assert len(tabs) == 2
    assert 'aria-selected="true"' in tabs[0] and 'aria-selected="false"' in tabs[1]
    assert 'tabindex="0"' in tabs[0] and 'tabindex="-1"' in tabs[1]
    assert 'aria-controls="panel-c2FtcGxlLXZpc2l0LWlk"' in tabs[0]
    panels = re.findall(r'<section role="tabpanel"[^>]*>', html)
    assert len(panels) == 2 and not any("hidden" in p for p in panels)   # all visible without JS
    assert html.index("2024-03-01") < html.index("2021-06-02")
    assert '<script src="/static/case.js"></script>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    # diagnoses, abnormal labs in words, the exam link to the viewer
    assert "<strong>Primary:</strong>" in html and "Essential (primary) hypertension" in html
    assert "ICD-9-CM 250.00" in html and "Malignant neoplasm: Breast, unspecified" in html
    assert "Abnormal: low" in html and "Abnormal: above the reference range" in html
    assert 'href="/viewer/accession/ACQ2V7X4K9M3P5TZ"' in html and "Show examination" in html
    assert OTHER not in html and "c29tZW9uZS1lbHNl" not in html


def test_visit_query_selects_the_tab(app):
    html = _client(app, "tea").get(f"/cases/{PATIENT}", params={"visit": "b2xkZXItdmlzaXQ"}).text
    tabs = re.findall(r'<a role="tab"[^>]*>', html)
    assert 'aria-selected="false"' in tabs[0] and 'aria-selected="true"' in tabs[1]


def test_case_api_json(app):
    r = _client(app, "tea").get(f"/api/cases/{PATIENT}")
    assert r.status_code == 200
    body = r.json()
    assert body["pseudonym"] == PATIENT and body["selected"] == "c2FtcGxlLXZpc2l0LWlk"
    assert [v["visit_id"] for v in body["visits"]] == ["c2FtcGxlLXZpc2l0LWlk", "b2xkZXItdmlzaXQ"]
    labs = body["visits"][0]["labs"]
    assert [(lab["name"], lab["abnormal"], lab["flag"]) for lab in labs] == [
        ("Hemoglobin", True, "low"), ("CRP", False, "")]
    assert body["visits"][0]["admission"] == "2024-03-01T08:15:00"


@pytest.mark.parametrize("path,status", [
    ("/cases/RSAAAAAAAAAAAAAAAA", 404), ("/api/cases/RSAAAAAAAAAAAAAAAA", 404),
    ("/cases/not-a-pseudonym", 400), ("/api/cases/not-a-pseudonym", 400),
    (f"/cases/{PATIENT}?visit=bm8tc3VjaC12aXNpdA", 404),
    (f"/api/cases/{PATIENT}?visit=bm8tc3VjaC12aXNpdA", 404),
    (f"/api/cases/{PATIENT}?visit=a%20b", 400),
])
def test_unknown_or_malformed_case(app, path, status):
    r = _client(app, "tea").get(path)
    assert r.status_code == status
    if path.startswith("/api/"):
        assert r.json()["detail"]
    else:
        assert "<h1>" + str(status) in r.text and 'role="alert"' in r.text


def test_viewing_a_case_is_audited(app):
    c = _client(app, "tea")
    c.get(f"/cases/{PATIENT}")
    c.get(f"/api/cases/{PATIENT}")
    c.get("/cases/RSAAAAAAAAAAAAAAAA")                    # not found: nothing viewed
    events = audit.query(None, store=app.state.portal.store, action="view-case")
    assert [(e.user, e.target) for e in events] == [("tea", PATIENT), ("tea", PATIENT)]
    assert events[0].details == {"visits": 2}


# --- quarantine review ------------------------------------------------------------------------

FILES = MemoryFiles()


def hold(store, reason="burned-in annotation", pixels=True) -> tuple[str, bytes]:
    """A de-identified synthetic CT slice held in quarantine, stored through the real commit."""
    from deid import DeidKeys, deidentify
    from pacs_hdfs.dicom import index_rows as ix
    from pacs_hdfs.dicom.synthetic import ct_series
    ds = ct_series(1, patient_id="P-unit", patient_name="Unit^Test", size=32)[0]
    if not pixels:
        del ds.PixelData
    out = deidentify(ds, DeidKeys.generate()).dataset
    commit_objects(store, FILES, [out], quarantine=reason)
    attrs = ix.attributes(out, ix.ALL_KEYS)
    sop = attrs["SOPInstanceUID"]
    return sop, ix.instance_key(attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"], sop)


@pytest.fixture()
def qapp():
    a = create_app(Settings(), MemoryStore(), job_service=FakeJobService())
    install_files(a, FILES)
    a.state.portal.users.add("adm", "admin", PW)
    return a


def test_quarantine_list_links_to_details(qapp):
    sop, _ = hold(qapp.state.portal.store)
    html = _client(qapp, "adm").get("/admin/quarantine").text
    assert f'href="/admin/quarantine/{sop}"' in html and "burned-in annotation" in html


def test_quarantine_details_page(qapp):
    sop, _ = hold(qapp.state.portal.store)
    c = _client(qapp, "adm")
    html = c.get(f"/admin/quarantine/{sop}").text
    assert "burned-in annotation" in html and 'id="q-state" class="q-held">held' in html
    assert "Modality" in html and "Unit^Test" not in html and "P-unit" not in html
    token = csrf_token(c)
    for action in ("release", "reject"):
        assert f'action="/admin/quarantine/{sop}/{action}"' in html
    assert html.count(f'name="csrf_token" value="{token}"') >= 3    # logout + both decisions
    assert f'src="/admin/quarantine/{sop}/preview.png"' in html


def test_quarantine_preview(qapp):
    from PIL import Image
    sop, _ = hold(qapp.state.portal.store)
    r = _client(qapp, "adm").get(f"/admin/quarantine/{sop}/preview.png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert Image.open(BytesIO(r.content)).size == (32, 32)


def test_quarantine_preview_without_pixels_is_422(qapp):
    sop, _ = hold(qapp.state.portal.store, pixels=False)
    r = _client(qapp, "adm").get(f"/admin/quarantine/{sop}/preview.png")
    assert r.status_code == 422 and "no pixel data" in r.text


def test_reject_then_conflict_and_audit(qapp):
    store = qapp.state.portal.store
    sop, key = hold(store)
    c = _client(qapp, "adm")
    url = f"/admin/quarantine/{sop}/reject"
    assert c.post(url, follow_redirects=False).status_code == 403           # no CSRF token
    r = c.post(url, data={"csrf_token": csrf_token(c)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/admin/quarantine/{sop}"
    assert store.get("quarantine", sop.encode())[b"q:state"] == b"rejected"
    assert b"l:quarantine" in store.get("instance", key)                     # still hidden
    for again in ("reject", "release"):
        r = c.post(f"/admin/quarantine/{sop}/{again}", data={"csrf_token": csrf_token(c)})
        assert r.status_code == 409 and "already rejected" in r.text
    events = audit.query(None, store=store, action="quarantine-reject")
    assert [(e.user, e.target) for e in events] == [("adm", sop)]
    assert audit.query(None, store=store, action="quarantine-release") == []
    assert "Already decided: rejected" in c.get(f"/admin/quarantine/{sop}").text


def test_release_publishes_the_object(qapp):
    store = qapp.state.portal.store
    sop, key = hold(store)
    c = _client(qapp, "adm")
    r = c.post(f"/admin/quarantine/{sop}/release", data={"csrf_token": csrf_token(c)},
               follow_redirects=False)
    assert r.status_code == 303
    assert store.get("quarantine", sop.encode())[b"q:state"] == b"released"
    inst = store.get("instance", key)
    assert b"l:quarantine" not in inst and b"a:SOPInstanceUID" in inst
    study = inst[b"a:StudyInstanceUID"]
    assert store.get("study", study)                                        # parent rows written
    events = audit.query(None, store=store, action="quarantine-release")
    assert [(e.user, e.target, e.details) for e in events] == [
        ("adm", sop, {"reason": "burned-in annotation"})]
    r = c.post(f"/admin/quarantine/{sop}/release", headers={"X-CSRF-Token": csrf_token(c)})
    assert r.status_code == 409


@pytest.mark.parametrize("method,suffix", [("GET", ""), ("GET", "/preview.png"),
                                           ("POST", "/release"), ("POST", "/reject")])
def test_quarantine_unknown_and_malformed_uids(qapp, method, suffix):
    c = _client(qapp, "adm")
    headers = {"X-CSRF-Token": csrf_token(c)}
    unknown = c.request(method, f"/admin/quarantine/2.25.999{suffix}", headers=headers)
    assert unknown.status_code == 404 and "not in quarantine" in unknown.text
    bad = c.request(method, f"/admin/quarantine/not-a-uid{suffix}", headers=headers)
    assert bad.status_code == 400 and "malformed" in bad.text
    qapp.state.portal.store.put("quarantine", b"2.25.777", {b"q:reason": b"x", b"q:state": b"held"})
    broken = c.request(method, f"/admin/quarantine/2.25.777{suffix}", headers=headers)
    assert broken.status_code == 404 and "no stored object" in broken.text
