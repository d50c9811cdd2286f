"""The portal against the real cluster: users and sessions in HBase, `pacs user add`, a
spark-selftest job launched through the portal API reaching `succeeded`, audit rows in HBase."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

from pacs_hdfs import audit
from tests.portal_doubles import csrf_token, login

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def app(cluster, settings):
    from portal.app import create_app
    return create_app(settings)


def _name(role: str) -> str:
    return f"it-{role}-{secrets.token_hex(4)}"


def _add_user(name: str, role: str, password: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PACS_USER_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "pacs_cli", "user", "add", name, "--role", role,
                           "--json"], env=env, capture_output=True, text=True, timeout=120)


def test_cli_user_add_then_login_and_audit(app, tmp_path, settings):
    name, pw = _name("teacher"), "pw-" + secrets.token_hex(8)
    out = _add_user(name, "teacher", pw)
    assert out.returncode == 0, out.stderr
    assert '"role": "teacher"' in out.stdout
    assert _add_user(name, "teacher", pw).returncode == 2            # exists
    # --password-file works too
    other = _name("analyst")
    pwfile = tmp_path / "pw"
    pwfile.write_text(pw + "\n")
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "user", "add", other, "--role",
                          "analyst", "--password-file", str(pwfile)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr

    c = TestClient(app)
    assert login(c, name, "wrong-password").status_code == 401
    assert login(c, name, pw).status_code == 303
    assert c.get("/api/me").json()["role"] == "teacher"
    assert c.get("/jobs", follow_redirects=False).status_code == 403
    assert login(TestClient(app), other, pw).status_code == 303
    actions = [e.action for e in audit.query(settings, user=name, limit=10)]
    assert actions[:2] == ["login", "login-failed"]


def test_launch_spark_selftest_through_the_portal(app, settings):
    name, pw = _name("analyst"), "pw-" + secrets.token_hex(8)
    assert _add_user(name, "analyst", pw).returncode == 0
    c = TestClient(app)
    assert login(c, name, pw).status_code == 303
    r = c.post("/api/jobs/spark-selftest", json={"n": 1000, "partitions": 2},
               headers={"X-CSRF-Token": csrf_token(c)})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 300
    while True:
        r = c.get(f"/api/jobs/{job_id}")
        if r.status_code == 503:          # shared cluster: HBase may be restarting (fault tests)
            assert time.monotonic() < deadline, r.text
            time.sleep(2)
            continue
        job = r.json()
        if job["final"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert job["state"] == "succeeded", job
    assert job["user"] == name
    html = c.get(f"/jobs/{job_id}").text
    assert "<td>sum</td><td>499500</td>" in html
    assert c.get(f"/jobs/{job_id}/result.csv").text.splitlines()[1] == "sum,499500"
    events = audit.query(settings, user=name, limit=10)
    assert any(e.action == "launch-job" and e.target == job_id for e in events)
    assert any(e.action == "download" for e in events)
