"""Portal auth on an in-memory store: login/logout, session cookies, CSRF, throttling, roles,
and the audit rows each of these writes."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pacs_hdfs.settings import Settings
from pacs_hdfs import audit
from portal.app import create_app
from portal.memstore import MemoryStore
from portal.roles import allows
from portal.testing import FakeJobService, csrf_token, fast_hashing, login, portal_app
from portal.throttle import LoginThrottle
from portal.users import UserError, UserStore

PW = "s3cret-pass"


@pytest.fixture(autouse=True)
def _cheap_argon2():
    with fast_hashing():
        yield


@pytest.fixture()
def app():
    return portal_app({"alice": "analyst", "tom": "teacher"}, PW)


def _actions(app) -> list[str]:
    return [e.action for e in audit.query(None, store=app.state.portal.store)]


def test_roles_are_ordered():
    assert allows("admin", "teacher") and allows("analyst", "teacher")
    assert not allows("teacher", "analyst") and not allows("analyst", "admin")
    assert not allows("nobody", "teacher")


def test_passwords_are_stored_as_argon2_hashes():
    store = MemoryStore()
    users = UserStore(store)
    users.add("bob", "teacher", PW)
    row = store.get("users", b"u/bob")
    assert row[b"u:hash"].startswith(b"$argon2id$") and PW.encode() not in row[b"u:hash"]
    assert users.verify("bob", PW).role == "teacher"
    assert users.verify("bob", "wrong-pass") is None and users.verify("nobody", PW) is None
    with pytest.raises(UserError):
        users.add("bob", "teacher", PW)            # duplicate
    with pytest.raises(UserError):
        users.add("eve", "root", PW)               # unknown role
    with pytest.raises(UserError):
        users.add("eve", "teacher", "short")       # too short


def test_login_sets_strict_httponly_cookie_and_logout_ends_session(app):
    c = TestClient(app)
    r = login(c, "alice", PW, next_url="/jobs")
    assert r.status_code == 303 and r.headers["location"] == "/jobs"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    token = c.cookies.get("pacs_session")
    assert c.get("/jobs").status_code == 200
    r = c.post("/logout", data={"csrf_token": csrf_token(c)}, follow_redirects=False)
    assert r.status_code == 303
    # the server-side session is gone: replaying the old cookie no longer works
    c2 = TestClient(app)
    c2.cookies.set("pacs_session", token)
    assert c2.get("/api/me").status_code == 401
    assert _actions(app)[:2] == ["logout", "login"]


def test_secure_cookies_when_served_over_https():
    a = create_app(Settings(), MemoryStore(), FakeJobService(), secure_cookies=True)
    a.state.portal.users.add("alice", "analyst", PW)
    c = TestClient(a, base_url="https://testserver")
    r = login(c, "alice", PW)
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    assert "strict-transport-security" in r.headers


def test_open_redirect_after_login_is_refused(app):
    r = login(TestClient(app), "alice", PW, next_url="//evil.example/")
    assert r.headers["location"] == "/"


def test_wrong_password_is_401_and_audited(app):
    r = login(TestClient(app), "alice", "wrong-password")
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    assert _actions(app)[0] == "login-failed"


def test_login_without_csrf_cookie_token_is_refused(app):
    c = TestClient(app)
    c.get("/login")
    r = c.post("/login", data={"username": "alice", "password": PW, "csrf_token": "forged"})
    assert r.status_code == 403 and c.cookies.get("pacs_session") is None


@pytest.mark.parametrize("send", ["none", "wrong"])
def test_post_without_right_csrf_token_is_refused(app, send):
    c = TestClient(app)
    login(c, "alice", PW)
    data = {"n": "5"} if send == "none" else {"n": "5", "csrf_token": "wrong"}
    r = c.post("/jobs/new/spark-selftest", data=data, follow_redirects=False)
    assert r.status_code == 403
    assert app.state.portal.jobs.jobs == {}, "a job was launched without a CSRF token"
    r = c.post("/api/jobs/spark-selftest", json={"n": 5}, headers={"X-CSRF-Token": "nope"})
    assert r.status_code == 403
    # and another session's token does not work either
    other = TestClient(app)
    login(other, "tom", PW)
    r = c.post("/api/jobs/spark-selftest", json={"n": 5},
               headers={"X-CSRF-Token": csrf_token(other)})
    assert r.status_code == 403


def test_throttle_after_five_failures_per_user_and_ip(app):
    c = TestClient(app)
    for _ in range(5):
        assert login(c, "alice", "bad-password").status_code == 401
    r = login(c, "alice", PW)                       # even the right password waits
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert login(c, "tom", PW).status_code == 303   # another user is not blocked
    assert "login-throttled" in _actions(app)


def test_throttle_window_expires():
    t = LoginThrottle(max_failures=2, window_s=0.2)
    t.failed("u", "1.2.3.4")
    t.failed("U", "1.2.3.4")                         # user names compare case-insensitively
    assert t.retry_after("u", "1.2.3.4") > 0 and t.retry_after("u", "5.6.7.8") == 0
    import time
    time.sleep(0.25)
    assert t.retry_after("u", "1.2.3.4") == 0


def test_role_change_applies_to_existing_session(app):
    c = TestClient(app)
    login(c, "tom", PW)
    assert c.get("/jobs", follow_redirects=False).status_code == 403
    app.state.portal.users.set_role("tom", "analyst")
    assert c.get("/jobs").status_code == 200


def test_security_headers(app):
    r = TestClient(app).get("/login")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_login_form_fields_are_labelled(app):
    html = TestClient(app).get("/login").text
    assert '<label for="username">' in html and 'id="username"' in html
    assert '<label for="password">' in html and 'id="password"' in html


def test_reflected_input_is_escaped(app):
    r = login(TestClient(app), "<script>alert(1)</script>", "wrong-password")
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
