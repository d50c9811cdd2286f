"""Portal auth on an in-memory store: login/logout, session cookies, CSRF (incl. the signed
login token), the counter-based throttle, the hash gate, the user lifecycle (disable, enable,
delete, new password revoke sessions), session expiry, and the audit rows each of these
writes."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from pacs_hdfs.settings import Settings
from pacs_hdfs import audit
from portal.app import create_app
from tests.memory_store import MemoryStore
from portal.roles import allows
from portal.deps import login_csrf_token, login_csrf_valid
from tests.portal_doubles import (FakeJobService, csrf_token, fast_hashing, login, login_form_token,
                            portal_app)
from portal.throttle import LoginThrottle, Throttled
from portal.users import Busy, HashGate, UserError, UserStore

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


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _throttle(clock, **limits) -> LoginThrottle:
    return LoginThrottle(MemoryStore(), {"user+ip": 2, "user": 4, "ip": 6, **limits}, 300.0,
                         clock=clock)


def test_throttle_window_expires_slot_by_slot():
    clock = Clock()
    t = _throttle(clock)
    t.attempt("u", "1.2.3.4").failed()
    clock.now += 100
    t.attempt("U", "1.2.3.4").failed()              # user names compare case-insensitively
    with pytest.raises(Throttled) as refused:
        t.attempt("u", "1.2.3.4")
    assert refused.value.scope == "user+ip" and 190 <= refused.value.retry_after <= 201
    t.attempt("u", "5.6.7.8").release()              # another address may still try
    clock.now += refused.value.retry_after           # the first failure left the window
    t.attempt("u", "1.2.3.4").failed()
    assert t.failures("u", "1.2.3.4")["user+ip"] == 2


def test_throttle_counts_reservations_of_the_next_slot():
    """An attempt that read the clock just before a slot boundary but counts after attempts of
    the next slot must see them: the limit holds across the boundary (it did not: 31 of 30)."""
    clock = Clock()
    t = _throttle(clock)
    t.attempt("u", "1.2.3.4").failed()
    clock.now += 30                                  # the next slot (300 s window / 10)
    t.attempt("u", "1.2.3.4").failed()
    clock.now -= 30                                  # a late attempt from the earlier slot
    with pytest.raises(Throttled) as refused:
        t.attempt("u", "1.2.3.4")
    assert refused.value.scope == "user+ip"
    assert t.failures("u", "1.2.3.4")["user+ip"] == 1   # what it sees of its own window


def test_throttle_counts_per_user_and_per_address():
    t = _throttle(Clock())
    for i in range(4):                              # 4 addresses, 1 failure each
        t.attempt("victim", f"10.0.0.{i}").failed()
    with pytest.raises(Throttled) as refused:
        t.attempt("victim", "10.0.0.99")
    assert refused.value.scope == "user"
    for i in range(6):                              # one address, many names
        t.attempt(f"name{i}", "10.1.1.1").failed()
    with pytest.raises(Throttled) as refused:
        t.attempt("yet-another", "10.1.1.1")
    assert refused.value.scope == "ip"


def test_throttle_success_clears_the_pair_and_refusals_do_not_count():
    t = _throttle(Clock())
    t.attempt("u", "1.1.1.1").failed()
    t.attempt("u", "1.1.1.1").failed()
    for _ in range(3):
        with pytest.raises(Throttled):
            t.attempt("u", "1.1.1.1")
    assert t.failures("u", "1.1.1.1") == {"user+ip": 2, "user": 2, "ip": 2}
    t2 = _throttle(Clock())
    t2.attempt("u", "1.1.1.1").failed()
    t2.attempt("u", "1.1.1.1").succeeded()
    assert t2.failures("u", "1.1.1.1")["user+ip"] == 0


def test_throttle_is_atomic_under_concurrent_attempts():
    """40 simultaneous attempts at a limit of 5: exactly 5 reach the password check."""
    t = LoginThrottle(MemoryStore(), {"user+ip": 5, "user": 20, "ip": 30}, 300.0)
    passed, refused, start = [], [], threading.Barrier(40)

    def one():
        start.wait()
        try:
            attempt = t.attempt("alice", "127.0.0.1")
        except Throttled:
            refused.append(1)
            return
        time.sleep(0.05)                            # the password check takes a while
        attempt.failed()
        passed.append(1)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert (len(passed), len(refused)) == (5, 35)


def test_throttle_keeps_nothing_in_portal_memory():
    """Thousands of distinct names: the throttle object holds no per-name state (the counts
    live in the store, whose rows expire by TTL)."""
    store = MemoryStore()
    t = LoginThrottle(store, {"user+ip": 5, "user": 20, "ip": 10**6}, 300.0)
    before = dict(vars(t))
    for i in range(3000):
        t.attempt(f"nobody-{i}", "10.2.2.2").failed()
    assert vars(t) == before
    assert all(k.startswith(b"t/") for k in store.tables["users"])


def test_login_csrf_token_is_signed_for_its_presession():
    secret, other = b"k" * 32, b"x" * 32
    token = login_csrf_token(secret, "presession-aaaaaaaaaaaaaaaa", now=1000)
    assert login_csrf_valid(secret, "presession-aaaaaaaaaaaaaaaa", token, now=1001)
    assert not login_csrf_valid(secret, "presession-bbbbbbbbbbbbbbbb", token, now=1001)
    assert not login_csrf_valid(other, "presession-aaaaaaaaaaaaaaaa", token, now=1001)
    assert not login_csrf_valid(secret, "presession-aaaaaaaaaaaaaaaa", token, now=1000 + 3 * 3600)
    assert not login_csrf_valid(secret, "", token, now=1001)
    assert not login_csrf_valid(secret, "presession-aaaaaaaaaaaaaaaa", "1000.é", now=1001)


def test_login_with_a_made_up_cookie_and_field_pair_is_refused(app):
    """The old double-submit check accepted any matching pair; a signed token does not."""
    c = TestClient(app)
    c.cookies.set("pacs_login_csrf", "attacker-chosen-value-123456")
    r = c.post("/login", data={"username": "alice", "password": PW,
                               "csrf_token": "attacker-chosen-value-123456"})
    assert r.status_code == 403 and c.cookies.get("pacs_session") is None
    # a genuine token of another pre-session does not fit this cookie either
    token = login_form_token(TestClient(app))
    r = c.post("/login", data={"username": "alice", "password": PW, "csrf_token": token})
    assert r.status_code == 403
    # the token the server issued for this cookie works
    assert login(c, "alice", PW).status_code == 303


def test_login_answers_503_when_no_hash_slot_frees_up(app):
    users = app.state.portal.users
    saved, users.gate = users.gate, HashGate(1, wait_s=0.05)
    c = TestClient(app)
    token = login_form_token(c)
    try:
        with users.gate.slot():                     # someone else is hashing
            r = c.post("/login", data={"username": "alice", "password": PW,
                                       "csrf_token": token})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "login-busy" in _actions(app)
        # the attempt was given back: the throttle counted nothing
        assert app.state.portal.throttle.failures("alice", "testclient")["user+ip"] == 0
    finally:
        users.gate = saved


def test_hash_gate_bounds_concurrent_hashes():
    gate, inside, peak = HashGate(2, wait_s=5), [], []
    lock = threading.Lock()

    def one():
        with gate.slot():
            with lock:
                inside.append(1)
                peak.append(len(inside))
            time.sleep(0.02)
            with lock:
                inside.pop()

    threads = [threading.Thread(target=one) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert max(peak) == 2
    gate.wait_s = 0
    with gate.slot(), gate.slot():
        with pytest.raises(Busy):
            with gate.slot():
                pass


def test_unknown_known_and_disabled_users_take_the_same_time():
    """Real argon2 parameters: a wrong password for a known user, an unknown user and a
    disabled one each cost one hash."""
    from portal import users as users_module
    from argon2 import PasswordHasher
    saved, users_module._hasher = users_module._hasher, PasswordHasher()
    try:
        store = UserStore(MemoryStore())
        store.add("known", "teacher", PW)
        store.add("off", "teacher", PW)
        store.set_disabled("off", True)

        def median(name):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                assert store.verify(name, "wrong-password-x") is None
                times.append(time.perf_counter() - t0)
            return sorted(times)[2]

        known, unknown, off = median("known"), median("nobody-here"), median("off")
        assert 0.6 < unknown / known < 1.6 and 0.6 < off / known < 1.6, (known, unknown, off)
        assert store.verify("off", PW) is None      # right password, disabled: refused
    finally:
        users_module._hasher = saved


def test_disable_enable_delete_and_new_password_end_live_sessions(app):
    users = app.state.portal.users
    for change in (lambda: users.set_disabled("tom", True),
                   lambda: users.set_password("tom", "another-pass-1"),
                   lambda: users.add("tom", "teacher", PW, replace=True),
                   lambda: users.revoke_sessions("tom"),
                   lambda: users.delete("tom")):
        users.set_disabled("tom", False) if users.get("tom") else users.add("tom", "teacher",
                                                                             PW)
        users.set_password("tom", PW)
        c = TestClient(app)
        assert login(c, "tom", PW).status_code == 303
        assert c.get("/api/me").status_code == 200
        change()
        assert c.get("/api/me").status_code == 401
    users.add("tom", "teacher", PW)
    users.set_disabled("tom", True)
    assert login(TestClient(app), "tom", PW).status_code == 401   # disabled: cannot sign in
    users.set_disabled("tom", False)
    assert login(TestClient(app), "tom", PW).status_code == 303
    with pytest.raises(UserError):
        users.delete("nobody")


def test_sessions_have_idle_and_absolute_expiry(app, monkeypatch):
    users = app.state.portal.users
    c = TestClient(app)
    login(c, "tom", PW)
    t0 = time.time()
    monkeypatch.setattr(time, "time", lambda: t0 + users.idle_s - 30)
    assert c.get("/api/me").status_code == 200       # used within the idle limit: touched
    monkeypatch.setattr(time, "time", lambda: t0 + 2 * users.idle_s - 90)
    assert c.get("/api/me").status_code == 200
    monkeypatch.setattr(time, "time", lambda: t0 + 3 * users.idle_s + 60)
    assert c.get("/api/me").status_code == 401       # idle too long
    monkeypatch.undo()
    c = TestClient(app)
    login(c, "tom", PW)
    start = time.time()
    for step in range(1, int(users.max_s // (users.idle_s / 2)) + 2):
        monkeypatch.setattr(time, "time", lambda s=step: start + s * users.idle_s / 2)
        if c.get("/api/me").status_code == 401:
            break
    assert start + step * users.idle_s / 2 >= start + users.max_s   # only at the absolute end


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
