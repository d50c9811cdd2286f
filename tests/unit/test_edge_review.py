"""The edge review page: login, CSRF on every POST, preview, release/reject (audited)."""
from __future__ import annotations

import json
import re

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from deid.edge.review import LOGIN_CSRF_COOKIE, create_app
from deid.edge.users import EdgeUsers
from pacs_hdfs.dicom.synthetic import ct_series
from tests.edge_support import edge_in
from tests.unit.test_edge_receive import encode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PASSWORD = "correct horse battery"


@pytest.fixture
def setup(tmp_path):
    edge = edge_in(tmp_path)
    uids = []
    for ds in ct_series(2, patient_id="R1", patient_name="Review^Pat", size=32):
        ds.Modality = "US"
        uids.append(edge.receiver.store(encode(ds)).sop_uid)
    users = EdgeUsers(edge.paths.users, PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))
    users.add("rev", PASSWORD)
    client = TestClient(create_app(edge.paths, users, "test-edge"))
    return edge, uids, client


def login(client, name="rev", password=PASSWORD):
    client.get("/login")
    token = client.cookies.get(LOGIN_CSRF_COOKIE)
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": token}, follow_redirects=False)


def csrf(client) -> str:
    return client.get("/api/held").json()["csrf_token"]


def test_pages_need_login(setup):
    edge, uids, client = setup
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.get("/api/held").status_code == 401
    preview = client.get(f"/preview/{uids[0]}.png", follow_redirects=False)
    assert preview.status_code == 303 and not preview.content.startswith(b"\x89PNG")
    assert client.post(f"/release/{uids[0]}").status_code == 401


def test_login_needs_its_csrf_and_the_right_password(setup):
    _, _, client = setup
    client.get("/login")
    no_token = client.post("/login", data={"username": "rev", "password": PASSWORD})
    assert no_token.status_code == 403
    assert "Wrong user or password" in login(client, password="wrong password").text
    assert "Wrong user or password" in login(client, name="nobody").text
    assert login(client).status_code == 303


def test_list_and_preview(setup):
    edge, uids, client = setup
    login(client)
    page = client.get("/").text
    assert all(uid in page for uid in uids) and "Review^Pat" not in page
    assert "Held on edge test-edge: 2" in page
    png = client.get(f"/preview/{uids[0]}.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get("/preview/2.25.1.png").status_code == 404


def test_release_and_reject_need_csrf(setup):
    edge, (a, b), client = setup
    login(client)
    assert client.post(f"/release/{a}").status_code == 403
    assert client.post(f"/release/{a}", data={"csrf_token": "forged"}).status_code == 403
    assert (edge.paths.quarantine / f"{a}.dcm").exists()
    token = csrf(client)
    page = client.get("/").text
    assert re.search(rf"name='csrf_token' value='{re.escape(token)}'", page)
    r = client.post(f"/release/{a}", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert (edge.paths.spool / f"{a}.dcm").exists()
    r = client.post(f"/reject/{b}", headers={"X-CSRF-Token": token,
                                             "Accept": "application/json"})
    assert r.json()["state"] == "rejected"
    assert not any(edge.paths.quarantine.iterdir())
    audit = [json.loads(line) for line in edge.paths.audit.read_text().splitlines()]
    assert [(e["action"], e["who"]) for e in audit] == [("release", "web:rev"),
                                                        ("reject", "web:rev")]
    assert client.post(f"/reject/{b}", data={"csrf_token": token}).status_code == 404


def test_logout_ends_the_session(setup):
    _, _, client = setup
    login(client)
    token = csrf(client)
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/api/held").status_code == 401
