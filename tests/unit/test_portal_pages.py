"""Analyst and admin pages on an in-memory store and job service: generated forms, validation,
launch, results and downloads, users and roles, audit filters, teacher home."""
from __future__ import annotations

import json
import re
from datetime import date
from typing import Literal

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from pacs_hdfs import audit
from portal.forms import form_fields, params_from_form
from tests.memory_store import MemoryStore
from portal.results import result_table, to_csv
from tests.portal_doubles import csrf_token, fast_hashing, login, portal_app

PW = "s3cret-pass"


@pytest.fixture(autouse=True)
def _cheap_argon2():
    with fast_hashing():
        yield


@pytest.fixture()
def app():
    return portal_app({"ann": "analyst", "adm": "admin", "tea": "teacher"}, PW)


def _client(app, name):
    c = TestClient(app)
    assert login(c, name, PW).status_code == 303
    return c


def _events(app, **kw):
    return audit.query(None, store=app.state.portal.store, **kw)


class Demo(BaseModel):
    projections: str = Field(description="HDFS dir")
    size: int | None = Field(None, ge=4, le=2048)
    backend: Literal["auto", "numba"] = "auto"
    dicom: bool = True
    inputs: list[int] = Field(default_factory=lambda: [8])
    fov: float = Field(60.0, gt=1, lt=179)
    day: date | None = None


def test_form_fields_follow_the_params_model():
    f = {x.name: x for x in form_fields(Demo)}
    assert f["projections"].required and f["projections"].input == "text"
    assert f["size"].input == "number" and (f["size"].min, f["size"].max) == (4, 2048)
    assert f["backend"].input == "select" and f["backend"].options == ["auto", "numba"]
    assert f["dicom"].input == "checkbox" and f["inputs"].is_list
    assert f["fov"].step == "any" and f["day"].input == "date"
    raw = params_from_form(list(f.values()), {"projections": " /p ", "size": "", "inputs": "8, 16"})
    assert raw == {"projections": "/p", "dicom": False, "inputs": ["8", "16"]}
    assert Demo.model_validate(raw).inputs == [8, 16]


def test_result_table_and_csv():
    cols, rows = result_table({"numbers": {"sum": 3, "by": {"a": 1}}, "provenance": {"x": 1}})
    assert cols == ["name", "value"] and rows == [["sum", 3], ["by.a", 1]]
    cols, rows = result_table({"numbers": [{"code": "C50", "n": 2}, {"code": "I10", "n": 5}]})
    assert cols == ["code", "n"] and rows[1] == ["I10", 5]
    assert to_csv(cols, rows).splitlines() == ["code,n", "C50,2", "I10,5"]


def test_job_form_is_generated_and_labelled(app):
    html = _client(app, "ann").get("/jobs/new/spark-selftest").text
    for name in ("n", "partitions", "sleep_s"):
        assert f'<label for="f-{name}">' in html and f'id="f-{name}"' in html
    assert 'min="1"' in html and 'max="1000000000"' in html


def test_invalid_params_show_errors_next_to_fields(app):
    c = _client(app, "ann")
    r = c.post("/jobs/new/spark-selftest",
               data={"csrf_token": csrf_token(c), "n": "-5", "partitions": "2"})
    assert r.status_code == 422
    assert re.search(r'id="e-n">[^<]*greater than or equal to 1', r.text)
    assert 'aria-invalid="true"' in r.text and 'value="-5"' in r.text
    assert app.state.portal.jobs.jobs == {}


def test_launch_is_submitted_as_the_user_and_audited(app):
    c = _client(app, "ann")
    r = c.post("/jobs/new/spark-selftest", data={"csrf_token": csrf_token(c), "n": "100"},
               follow_redirects=False)
    assert r.status_code == 303
    job_id = r.headers["location"].rsplit("/", 1)[1]
    rec = app.state.portal.jobs.status(job_id)
    assert rec.user == "ann" and rec.params["n"] == 100
    ev = _events(app, action="launch-job")[0]
    assert (ev.user, ev.target, ev.details["kind"]) == ("ann", job_id, "spark-selftest")
    listed = c.get("/api/jobs").json()
    assert listed[0]["id"] == job_id and listed[0]["state"] == "queued"
    assert "/pacs/" not in json.dumps(listed), "HDFS paths are not exposed"


def test_api_launch(app):
    c = _client(app, "ann")
    h = {"X-CSRF-Token": csrf_token(c)}
    r = c.post("/api/jobs/spark-selftest", json={"n": 7}, headers=h)
    assert r.status_code == 201 and r.json()["params"]["n"] == 7
    r = c.post("/api/jobs/spark-selftest", json={"n": 0}, headers=h)
    assert r.status_code == 422 and "n" in r.json()["errors"]
    assert c.post("/api/jobs/no-such-kind", json={}, headers=h).status_code == 404


def test_launch_without_a_job_runner_is_503_and_nothing_queued(app):
    """job_runner = external and no runner reporting in: the service refuses before queueing,
    and the portal says so (503) instead of failing with a 500."""
    from analytics_jobs.service import RunnerUnavailable

    def refuse(*args, **kwargs):
        raise RunnerUnavailable("no job runner has reported in the last 90 s")
    app.state.portal.jobs.submit = refuse
    c = _client(app, "ann")
    r = c.post("/api/jobs/spark-selftest", json={"n": 7}, headers={"X-CSRF-Token": csrf_token(c)})
    assert r.status_code == 503 and "job runner" in r.json()["detail"]
    r = c.post("/jobs/new/spark-selftest", data={"csrf_token": csrf_token(c), "n": "100"},
               follow_redirects=False)
    assert r.status_code == 503 and "job runner" in r.text
    assert app.state.portal.jobs.jobs == {} and not _events(app, action="launch-job")


def test_result_page_chart_table_and_downloads(app):
    jobs = app.state.portal.jobs
    rec = jobs.submit("spark-selftest", {"n": "10"}, user="ann")
    jobs.finish(rec.id, {"numbers": {"sum": 45, "expected": 45}})
    c = _client(app, "ann")
    html = c.get(f"/jobs/{rec.id}").text
    assert f'src="/jobs/{rec.id}/charts/chart.png"' in html and "<td>sum</td><td>45</td>" in html
    png = c.get(f"/jobs/{rec.id}/charts/chart.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    csv = c.get(f"/jobs/{rec.id}/result.csv")
    assert csv.text.splitlines()[:2] == ["name,value", "sum,45"]
    assert "attachment" in csv.headers["content-disposition"]
    assert c.get(f"/jobs/{rec.id}/result.json").json()["numbers"]["sum"] == 45
    targets = [e.target for e in _events(app, action="download")]
    assert f"job/{rec.id}/result.csv" in targets and f"job/{rec.id}/result.json" in targets


def test_result_page_shows_every_png_artifact_and_refuses_other_names(app):
    from tests.portal_doubles import PNG_1x1

    jobs = app.state.portal.jobs
    rec = jobs.submit("spark-selftest", {"n": "10"}, user="ann")
    jobs.finish(rec.id, {"numbers": {"sum": 45}}, extra={
        "time.png": PNG_1x1, "memory.png": PNG_1x1, "report.md": b"# report",
        "volume/slice.png": PNG_1x1})
    c = _client(app, "ann")
    html = c.get(f"/jobs/{rec.id}").text
    shown = re.findall(r'<img src="/jobs/[^/]+/charts/([^"]+)" alt="([^"]+)" class="chart">', html)
    assert [name for name, _ in shown] == ["chart.png", "memory.png", "time.png"]
    assert all(alt.startswith("Chart of the spark-selftest") for _, alt in shown)
    assert html.count("<figcaption>") == 3 and "time.png)</figcaption>" in html
    for name, _ in shown:
        r = c.get(f"/jobs/{rec.id}/charts/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content.startswith(b"\x89PNG")
    # a plain name that is an artifact but not a PNG, or a PNG the job does not have: 404
    assert c.get(f"/jobs/{rec.id}/charts/report.md").status_code == 404
    assert c.get(f"/jobs/{rec.id}/charts/quality.png").status_code == 404
    assert c.get(f"/jobs/{rec.id}/charts/result.json").status_code == 404
    # malformed names: 400, whatever the job holds (incl. nested artifacts and traversal)
    for bad in ("..%2Fx", "%2E%2E%2Fresult.json", "volume%2Fslice.png", ".png",
                "..png", "a%20b.png", "chart.png%00"):
        r = c.get(f"/jobs/{rec.id}/charts/{bad}")
        assert r.status_code == 400, (bad, r.status_code)
    # the literal dot segment is resolved by the client: it never reaches a chart
    assert c.get(f"/jobs/{rec.id}/charts/../x").status_code in (400, 404)
    assert c.get("/jobs/20990101-000000-abcdef/charts/chart.png").status_code == 404
    # a job without charts shows none
    plain = jobs.submit("spark-selftest", {"n": "10"}, user="ann")
    jobs.finish(plain.id, {"numbers": {"sum": 45}}, chart=False)
    html = c.get(f"/jobs/{plain.id}").text
    assert 'class="chart"' not in html
    assert c.get(f"/jobs/{plain.id}/charts/chart.png").status_code == 404
    # the teacher may not see charts
    assert _client(app, "tea").get(f"/jobs/{rec.id}/charts/chart.png").status_code == 403


def test_chart_views_order_and_captions():
    from portal.routes.jobs import chart_views

    views = chart_views("scc-sweep", {"time.png": "", "report.md": "", "quality.png": "",
                                      "memory.png": "", "tasks.parquet": ""})
    assert [v["name"] for v in views] == ["memory.png", "quality.png", "time.png"]
    assert views[2]["caption"].startswith("Median wall time")
    fdk = chart_views("fdk", {"volume/volume.json": "", "chart.png": "", "result.json": ""})
    assert [v["name"] for v in fdk] == ["chart.png"] and "phantom" in fdk[0]["caption"]
    assert chart_views("icd10-age", {"chart.png": ""})[0]["caption"] == \
        "Chart of the icd10-age result"


def test_unknown_jobs_and_kinds_are_404(app):
    c = _client(app, "ann")
    assert c.get("/jobs/20260101-000000-abcdef").status_code == 404
    assert c.get("/jobs/..%2Fetc").status_code == 404
    assert c.get("/api/jobs/not-an-id").status_code == 404
    assert c.get("/jobs/new/nope").status_code == 404


def test_cancel_from_the_page(app):
    rec = app.state.portal.jobs.submit("spark-selftest", {"n": "10"})
    c = _client(app, "ann")
    r = c.post(f"/jobs/{rec.id}/cancel", data={"csrf_token": csrf_token(c)},
               follow_redirects=False)
    assert r.status_code == 303 and app.state.portal.jobs.status(rec.id).state == "cancelled"
    assert _events(app, action="cancel-job")[0].target == rec.id


def test_admin_adds_user_and_changes_role(app):
    c = _client(app, "adm")
    t = csrf_token(c)
    r = c.post("/admin/users", data={"csrf_token": t, "name": "newbie", "role": "teacher",
                                     "password": "long-enough"})
    assert r.status_code == 200 and "added newbie" in r.text
    assert login(TestClient(app), "newbie", "long-enough").status_code == 303
    r = c.post("/admin/users/newbie/role", data={"csrf_token": t, "role": "analyst"})
    assert r.status_code == 200 and app.state.portal.users.get("newbie").role == "analyst"
    r = c.post("/admin/users/newbie/role", data={"csrf_token": t, "role": "god"})
    assert r.status_code == 400 and app.state.portal.users.get("newbie").role == "analyst"
    assert [e.action for e in _events(app, user="adm")][:2] == ["user-role", "user-add"]
    assert "<td>newbie</td>" in c.get("/admin/users").text


def test_admin_page_mirrors_the_user_commands(app):
    """Disable, enable, set password, delete from the admin page; each ends the user's live
    session where it should, is audited, and an admin cannot disable or delete themselves."""
    c = _client(app, "adm")
    t = csrf_token(c)
    c.post("/admin/users", data={"csrf_token": t, "name": "kim", "role": "teacher",
                                 "password": "long-enough"})
    kim = TestClient(app)
    assert login(kim, "kim", "long-enough").status_code == 303
    r = c.post("/admin/users/kim/disable", data={"csrf_token": t})
    assert r.status_code == 200 and "kim is disabled" in r.text and "disabled</td>" in r.text
    assert kim.get("/api/me").status_code == 401
    assert login(TestClient(app), "kim", "long-enough").status_code == 401
    assert c.post("/admin/users/kim/enable", data={"csrf_token": t}).status_code == 200
    assert login(kim, "kim", "long-enough").status_code == 303
    r = c.post("/admin/users/kim/password", data={"csrf_token": t, "password": "another-one"})
    assert r.status_code == 200 and kim.get("/api/me").status_code == 401
    assert c.post("/admin/users/kim/password",
                  data={"csrf_token": t, "password": "short"}).status_code == 400
    assert login(kim, "kim", "another-one").status_code == 303
    assert c.post("/admin/users/kim/delete", data={"csrf_token": t}).status_code == 200
    assert kim.get("/api/me").status_code == 401 and app.state.portal.users.get("kim") is None
    assert c.post("/admin/users/kim/shout", data={"csrf_token": t}).status_code == 404
    for action in ("disable", "delete"):
        r = c.post(f"/admin/users/adm/{action}", data={"csrf_token": t})
        assert r.status_code == 400 and app.state.portal.users.get("adm").disabled is False
    assert [e.action for e in _events(app, user="adm")][:5] == [
        "user-delete", "user-password", "user-enable", "user-disable", "user-add"]


def test_audit_page_filters(app):
    store = app.state.portal.store
    audit.record(None, "zed", "view-case", "case-1", store=store)
    audit.record(None, "yan", "download", "study-2", store=store)
    c = _client(app, "adm")
    html = c.get("/admin/audit", params={"user": "zed"}).text
    assert "case-1" in html and "study-2" not in html
    rows = c.get("/api/audit", params={"action": "download"}).json()
    assert [r["target"] for r in rows] == ["study-2"]
    assert c.get("/api/audit", params={"since": "2000-01-01", "until": "2000-01-02"}).json() == []
    today = rows[0]["ts"][:10]
    assert len(c.get("/api/audit", params={"since": today, "until": today}).json()) >= 2
    assert c.get("/api/audit", params={"since": "yesterday"}).status_code == 422


def test_audit_is_newest_first():
    store = MemoryStore()
    for i in range(3):
        audit.record(None, "u", "view-study", f"s{i}", store=store, n=i)
    assert [e.target for e in audit.query(None, store=store)] == ["s2", "s1", "s0"]
    assert audit.query(None, store=store, limit=1)[0].details == {"n": 2}


def test_teacher_home_offers_search_only(app):
    home = _client(app, "tea").get("/").text
    assert '<label for="q">' in home and 'name="icd10"' in home
    assert "/jobs" not in home and "/admin" not in home


def test_every_available_kind_gets_a_labelled_form(app):
    from portal.routes.jobs import available_kinds
    kinds = available_kinds()
    assert "spark-selftest" in kinds
    c = _client(app, "ann")
    listing = c.get("/jobs").text
    for kind, model in kinds.items():
        assert f'href="/jobs/new/{kind}"' in listing
        html = c.get(f"/jobs/new/{kind}").text
        for name in model.model_fields:
            assert f'<label for="f-{name}"' in html, f"{kind}.{name} has no label"
