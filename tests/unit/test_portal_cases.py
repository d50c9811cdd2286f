"""Case view (view model, abnormal-lab flags, tabs markup, 400/404, audit) on the in-memory store.

Visits are hl7_gateway models stored through `hl7_gateway.store_rows`, i.e. the rows the gateway
writes."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from hl7_gateway import store_rows
from hl7_gateway.models import Diagnosis, Exam, Lab
from hl7_gateway.hospital.samples import sample_visit
from pacs_hdfs.containers import Location
from pacs_hdfs import audit
from portal import case_view as cv
from tests.memory_store import MemoryStore
from tests.portal_doubles import fast_hashing, login, portal_app

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
    assert case.selected == "ebKRZ3MlHaCca7jk7DoSw66r1VLGrz-ZhakJqg"
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
    assert [e.viewer_url for e in new.exams] == ["/viewer/accession/ACQ2V7X4K6M3P5TZ", ""]
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
    assert cv.valid_visit_id("ebKRZ3MlHaCca7jk7DoSw66r1VLGrz-ZhakJqg") and not cv.valid_visit_id("a b")


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
    assert 'aria-controls="panel-ebKRZ3MlHaCca7jk7DoSw66r1VLGrz-ZhakJqg"' in tabs[0]
    panels = re.findall(r'<section role="tabpanel"[^>]*>', html)
    assert len(panels) == 2 and not any("hidden" in p for p in panels)   # all visible without JS
    assert html.index("2024-03-01") < html.index("2021-06-02")
    assert '<script src="/static/case.js"></script>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html
    # diagnoses, abnormal labs in words, the exam link to the viewer
    assert "<strong>Primary:</strong>" in html and "Essential (primary) hypertension" in html
    assert "ICD-9-CM 250.00" in html and "Malignant neoplasm: Breast, unspecified" in html
    assert "Abnormal: low" in html and "Abnormal: above the reference range" in html
    assert 'href="/viewer/accession/ACQ2V7X4K6M3P5TZ"' in html and "Show examination" in html
    assert OTHER not in html and "c29tZW9uZS1lbHNl" not in html


def test_visit_query_selects_the_tab(app):
    html = _client(app, "tea").get(f"/cases/{PATIENT}", params={"visit": "b2xkZXItdmlzaXQ"}).text
    tabs = re.findall(r'<a role="tab"[^>]*>', html)
    assert 'aria-selected="false"' in tabs[0] and 'aria-selected="true"' in tabs[1]


def test_case_api_json(app):
    r = _client(app, "tea").get(f"/api/cases/{PATIENT}")
    assert r.status_code == 200
    body = r.json()
    assert body["pseudonym"] == PATIENT and body["selected"] == "ebKRZ3MlHaCca7jk7DoSw66r1VLGrz-ZhakJqg"
    assert [v["visit_id"] for v in body["visits"]] == ["ebKRZ3MlHaCca7jk7DoSw66r1VLGrz-ZhakJqg", "b2xkZXItdmlzaXQ"]
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
