"""The portal rows of the hostile tester's table, reversed, against a real `pacs portal` on the
running cluster (its own namespace; loopback only; every loop bounded):

| the tester saw | here |
|---|---|
| 40 concurrent wrong passwords for one user: 40 x 401, 0 x 429, twice | at most 5 x 401, the rest 429, twice (and 80: the same) |
| 100 concurrent Basic requests, random users: RSS 264 -> 2,800 MB | peak RSS <= 600 MB; 429/503 past the limits |
| login CSRF: any matching cookie/field pair accepted | a made-up pair, and a real token on another cookie, get 403 |
| throttle memory: one entry per unknown user name, no bound | thousands of names: RSS flat, counters in HBase rows with a TTL |
| users cannot be disabled or deleted; --replace keeps sessions | disable, new password, delete: the live session ends at once |

The figures measured go to test-artifacts/security/portal.json.
"""
from __future__ import annotations

import base64
import json
import secrets
from collections import Counter
from contextlib import contextmanager

import pytest

from tests.security.portal_security_support import (add_user, burst, client, login_pair, pacs,
                                                    peak_rss_mb, portal_stack, record_figure,
                                                    rss_mb, source)

pytestmark = pytest.mark.cluster
LIMIT = 5                       # settings.portal_login_max_user_ip (default)
RSS_LIMIT_MB = 600


@pytest.fixture(scope="module")
def stack(cluster, tmp_path_factory):
    with portal_stack("secportal", tmp_path_factory.mktemp("portal-home")) as s:
        yield s


def _login_burst(stack, address: str, name: str, count: int) -> Counter:
    cookie, token = login_pair(stack, address)
    form = {"username": name, "password": "wrong-" + secrets.token_hex(6), "csrf_token": token}
    return Counter(burst(stack, address, [{"method": "POST", "url": "/login", "data": form}
                                          for _ in range(count)],
                         cookies={"pacs_login_csrf": cookie}))


@pytest.mark.parametrize("count", [40, 80])
def test_concurrent_wrong_passwords_hit_the_limit_twice(stack, count):
    name, _ = add_user(stack)
    address = source()
    rounds = [_login_burst(stack, address, name, count) for _ in range(2)]
    record_figure(f"login_burst_{count}", [dict(r) for r in rounds])
    for r in rounds:
        assert set(r) <= {401, 429}, r
        assert r[401] + r[429] == count
    assert rounds[0][401] <= LIMIT and rounds[0][429] >= count - LIMIT, rounds
    # the window still holds the first round's failures: nothing more reaches the hash
    assert rounds[1][401] == 0 and rounds[1][429] == count, rounds


def test_unknown_user_basic_flood_keeps_memory_bounded(stack):
    address = source()
    before = rss_mb(stack.pid)

    def basic(user: str) -> dict:
        raw = f"{user}:{secrets.token_urlsafe(9)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    statuses = Counter(burst(stack, address, [
        {"method": "GET", "url": "/dicomweb/studies",
         "headers": basic(f"nobody-{secrets.token_hex(6)}")} for _ in range(100)]))
    peak = peak_rss_mb(stack.pid)
    record_figure("basic_flood_100", {"statuses": dict(statuses), "rss_before_mb": round(before),
                                      "peak_rss_mb": round(peak)})
    assert set(statuses) <= {401, 429, 503}, statuses
    assert statuses[401] <= stack.settings.portal_login_max_ip, statuses
    assert statuses[429] + statuses[503] >= 100 - stack.settings.portal_login_max_ip
    assert peak <= RSS_LIMIT_MB, f"portal peak RSS {peak:.0f} MB"


def test_made_up_login_csrf_pair_is_refused(stack):
    name, password = add_user(stack)
    address = source()
    made_up = secrets.token_urlsafe(32)
    with client(stack, address, cookies={"pacs_login_csrf": made_up}) as c:
        r = c.post("/login", data={"username": name, "password": password,
                                   "csrf_token": made_up})
        assert r.status_code == 403 and "pacs_session" not in r.cookies
        _other_cookie, real_token = login_pair(stack, address)     # valid, but not for this cookie
        r = c.post("/login", data={"username": name, "password": password,
                                   "csrf_token": real_token})
        assert r.status_code == 403 and "pacs_session" not in r.cookies
    cookie, token = login_pair(stack, address)
    with client(stack, address, cookies={"pacs_login_csrf": cookie}) as c:
        r = c.post("/login", data={"username": name, "password": password, "csrf_token": token})
        assert r.status_code == 303 and r.cookies.get("pacs_session")


def test_many_distinct_user_names_do_not_grow_the_portal(stack):
    """3,000 distinct unknown names from one address: past the address limit they are refused
    before any hash; the portal's memory stays flat (the counts live in HBase rows of the
    `users` table's TTL family)."""
    address = source()
    _ = burst(stack, address, [{"method": "GET", "url": "/healthz"}] * 10)    # warm up
    before = rss_mb(stack.pid)
    cookie, token = login_pair(stack, address)
    statuses = Counter()
    for start in range(0, 3000, 100):
        statuses.update(burst(stack, address, [
            {"method": "POST", "url": "/login",
             "data": {"username": f"ghost-{start + i}-{secrets.token_hex(3)}",
                      "password": "irrelevant-pw", "csrf_token": token}} for i in range(100)],
            cookies={"pacs_login_csrf": cookie}))
    grown = rss_mb(stack.pid) - before
    record_figure("distinct_names_3000", {"statuses": dict(statuses), "rss_growth_mb":
                                          round(grown, 1)})
    assert set(statuses) <= {401, 429, 503} and statuses[401] <= stack.settings.portal_login_max_ip
    assert statuses[429] + statuses[503] >= 3000 - stack.settings.portal_login_max_ip, statuses
    assert grown < 40, f"the portal grew by {grown:.1f} MB for 3,000 names"
    from pacs_hdfs import clients
    rows = clients.hbase(stack.settings).scan("users", row_prefix=b"t/ip/", limit=10)
    assert rows, "the per-address counts are HBase rows"


@contextmanager
def _signed_in(stack, address: str, name: str, password: str):
    cookie, token = login_pair(stack, address)
    with client(stack, address, cookies={"pacs_login_csrf": cookie}) as c:
        r = c.post("/login", data={"username": name, "password": password, "csrf_token": token})
        assert r.status_code == 303, r.text[:300]
        c.cookies.set("pacs_session", r.cookies["pacs_session"])
        assert c.get("/api/me").status_code == 200
        yield c


@pytest.mark.parametrize("command", ["disable", "set-password", "replace", "delete"])
def test_user_changes_end_the_live_session(stack, command):
    name, password = add_user(stack)
    address = source()
    with _signed_in(stack, address, name, password) as c:
        if command == "replace":
            out = pacs(stack, "user", "add", name, "--role", "teacher", "--replace",
                       password=password + "-2")
        elif command == "set-password":
            out = pacs(stack, "user", "set-password", name, password=password + "-2")
        else:
            out = pacs(stack, "user", command, name, *(["--yes"] if command == "delete" else []))
        assert out.returncode == 0, out.stderr
        assert c.get("/api/me").status_code == 401                 # the session is over
    listed = pacs(stack, "user", "list", "--json")
    users = {u["name"]: u for u in json.loads(listed.stdout)}
    if command == "delete":
        assert name not in users
    elif command == "disable":
        assert users[name]["disabled"] is True
        assert pacs(stack, "user", "enable", name).returncode == 0
        with _signed_in(stack, source(), name, password):       # enabled again: a new session
            pass
