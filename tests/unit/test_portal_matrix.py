"""The role matrix: every portal route x {anonymous, teacher, analyst, admin} -> allowed or the
right denial. A route added without a row here fails `test_every_route_is_in_the_matrix`."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount

from portal.roles import ROLES, allows
from tests.memory_store import MemoryStore
from tests.portal_doubles import (FakeJobService, csrf_token, fast_hashing, login,
                                  login_form_token, portal_app)

PASSWORD = "correct-horse-1"

# (method, path template, minimal role or None for public)
MATRIX = [
    ("GET", "/login", None),
    ("POST", "/login", None),
    ("GET", "/healthz", None),
    ("POST", "/logout", "teacher"),
    ("GET", "/api/me", "teacher"),
    ("GET", "/", "teacher"),
    ("GET", "/search", "teacher"),
    ("GET", "/api/search", "teacher"),
    ("GET", "/jobs", "analyst"),
    ("GET", "/jobs/new/{kind}", "analyst"),
    ("POST", "/jobs/new/{kind}", "analyst"),
    ("GET", "/jobs/{job_id}", "analyst"),
    ("GET", "/jobs/{job_id}/charts/{name:path}", "analyst"),
    ("GET", "/jobs/{job_id}/result.json", "analyst"),
    ("GET", "/jobs/{job_id}/result.csv", "analyst"),
    ("POST", "/jobs/{job_id}/cancel", "analyst"),
    ("GET", "/api/kinds", "analyst"),
    ("GET", "/api/jobs", "analyst"),
    ("GET", "/api/jobs/{job_id}", "analyst"),
    ("POST", "/api/jobs/{kind}", "analyst"),
    ("POST", "/search/export", "analyst"),               # cohort export: analysts, not teachers
    ("GET", "/jobs/{job_id}/export.zip", "analyst"),     # and then only the owner or an admin
    ("GET", "/admin", "admin"),
    ("GET", "/admin/users", "admin"),
    ("POST", "/admin/users", "admin"),
    ("POST", "/admin/users/{name}/role", "admin"),
    ("POST", "/admin/users/{name}/password", "admin"),
    ("POST", "/admin/users/{name}/{action}", "admin"),
    ("GET", "/admin/audit", "admin"),
    ("GET", "/api/audit", "admin"),
    ("GET", "/viewer/accession/{accession}", "teacher"),
    ("GET", "/viewer/study/{study_uid}", "teacher"),
    ("GET", "/api/viewer/studies/{study_uid}/series/{series_uid}", "teacher"),
    ("GET", "/api/viewer/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frame}", "teacher"),
    ("GET", "/dicomweb/studies", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series", "teacher"),
    ("GET", "/dicomweb/studies/{study}/instances", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances", "teacher"),
    ("GET", "/dicomweb/studies/{study}", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}", "teacher"),
    ("GET", "/dicomweb/studies/{study}/metadata", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/metadata", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frames}", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered", "teacher"),
    ("GET", "/dicomweb/series", "teacher"),
    ("GET", "/dicomweb/instances", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/bulkdata/{path:path}", "teacher"),
    ("GET", "/dicomweb/studies/{study}/thumbnail", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/thumbnail", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/thumbnail", "teacher"),
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/thumbnail", "teacher"),
    ("OPTIONS", "/dicomweb/{rest:path}", None),                # CORS preflight, no credentials
    ("DELETE", "/dicomweb/studies/{study}", "admin"),             # study lifecycle
    ("DELETE", "/dicomweb/studies/{study}/series/{series}", "admin"),
    ("DELETE", "/dicomweb/studies/{study}/series/{series}/instances/{sop}", "admin"),
    ("GET", "/cases/{pseudonym}/viewer/{accession}", "teacher"),
    ("GET", "/cases/{pseudonym}", "teacher"),
    ("GET", "/api/cases/{pseudonym}", "teacher"),
]


@pytest.fixture(scope="module", autouse=True)
def _cheap_argon2():
    with fast_hashing():
        yield


@pytest.fixture(scope="module")
def world():
    store, jobs = MemoryStore(), FakeJobService()
    app = portal_app({f"m-{role}": role for role in ROLES}, PASSWORD, store, jobs)
    rec = jobs.submit("spark-selftest", {"n": "10"})
    jobs.finish(rec.id, {"numbers": {"sum": 45}})
    return app, rec.id


@pytest.fixture(scope="module")
def sessions(world):
    """One signed-in session cookie per role (argon2 is slow on purpose: log in once)."""
    app, _ = world
    out = {}
    for role in ROLES:
        c = TestClient(app)
        assert login(c, f"m-{role}", PASSWORD).status_code == 303
        out[role] = c.cookies.get("pacs_session")
    return out


def _url(template: str, job_id: str) -> str:
    template = template.replace("{name:path}", "chart.png").replace("{path:path}", "00420011")
    template = template.replace("{rest:path}", "studies")
    return template.format(kind="spark-selftest", job_id=job_id, name="m-teacher",
                           pseudonym="RSAAAAAAAAAAAAAAAA", sop_uid="2.25.1",
                           accession="ACC1", study_uid="2.25.2", series_uid="2.25.3",
                           frame="1", study="2.25.2", series="2.25.3", sop="2.25.1", frames="1",
                           action="enable")


def _body(method: str, path: str) -> dict:
    if path == "/api/jobs/spark-selftest":
        return {"json": {"n": 5}}
    if path == "/admin/users":
        return {"data": {"name": "", "role": "teacher", "password": "x"}}   # refused: 400
    if path.endswith("/role"):
        return {"data": {"role": "teacher"}}
    if path.endswith("/password"):
        return {"data": {"password": "x"}}          # refused (too short): sessions stay
    if path.startswith("/jobs/new/"):
        return {"data": {"n": "5"}}
    return {}


def _routes(routes):
    """Routes, with included routers flattened (FastAPI >= 0.160 keeps them as one entry)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def test_every_route_is_in_the_matrix(world):
    app, _ = world
    declared = {(m, p) for m, p, _ in MATRIX}
    seen = set()
    for route in _routes(app.routes):
        if isinstance(route, Mount):
            assert route.path == "/static", "only static files may be mounted without a role"
            continue
        for method in route.methods - {"HEAD"}:
            assert (method, route.path) in declared, f"{method} {route.path} not in the matrix"
            seen.add((method, route.path))
    assert seen == declared, f"matrix rows without a route: {declared - seen}"


@pytest.mark.parametrize("role", [None, *ROLES], ids=["anonymous", *ROLES])
@pytest.mark.parametrize("method,template,needed", MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
def test_role_matrix(world, sessions, role, method, template, needed):
    app, job_id = world
    client = TestClient(app)
    if role and template == "/logout":
        assert login(client, f"m-{role}", PASSWORD).status_code == 303   # its own session
    elif role:
        client.cookies.set("pacs_session", sessions[role])
    path = _url(template, job_id)
    kw = _body(method, path)
    if method in ("POST", "DELETE") and role:
        kw.setdefault("headers", {})["X-CSRF-Token"] = csrf_token(client)
    if template == "/login" and method == "POST":
        kw = {"data": {"username": "nobody", "password": "wrong-password",
                       "csrf_token": login_form_token(client)}}
    r = client.request(method, path, follow_redirects=False, **kw)

    if needed is None:
        assert r.status_code in (200, 401), r.text        # public (the login POST answers 401)
    elif role is None:
        if path.startswith("/dicomweb/") and method == "DELETE":
            assert r.status_code == 401     # an admin's session with its CSRF token, not Basic
        elif path.startswith("/dicomweb/"):   # DICOMweb clients get 401 + Basic challenge
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        elif method == "GET" and not path.startswith("/api/"):
            assert r.status_code == 303 and r.headers["location"].startswith("/login")
        else:
            assert r.status_code == 401
    elif not allows(role, needed):
        assert r.status_code == 403, f"{role} reached {method} {path}"
    else:
        assert r.status_code not in (401, 403), f"{role} refused {method} {path}: {r.text[:200]}"
        if template != "/logout":
            assert not r.headers.get("location", "").startswith("/login")
        assert r.status_code < 500


def test_static_files_are_public(world):
    app, _ = world
    r = TestClient(app).get("/static/portal.css")
    assert r.status_code == 200 and "focus-visible" in r.text


def test_no_openapi_or_docs_without_login(world):
    app, _ = world
    client = TestClient(app)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path, follow_redirects=False).status_code in (303, 404)
