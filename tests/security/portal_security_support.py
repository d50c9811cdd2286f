"""Helpers for the portal rows of the hostile tester's table (`test_portal_*.py` here).

- `namespace`: a scratch namespace of the running cluster (own HBase table prefix, HDFS root
  and `$PACS_HOME`) that the test's environment names while it runs.
- `portal_stack`: a real `pacs portal` subprocess on a free loopback port in such a namespace,
  so the throttle's counters and the users start empty; yields its URL, pid and environment.
- `source`: a loopback source address per test (127.0.0.0/8 is all loopback on Linux), so
  each test has its own per-address throttle counts, as separate attackers would.
- `burst`: N requests sent at once over N connections (httpx, asyncio), their statuses.
- `peak_rss_mb` / `rss_mb`: VmHWM / VmRSS of a process from /proc.
- `record_figure`: keeps the measured numbers in test-artifacts/security/portal.json.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import httpx
import psutil

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "security"
PACS = str(Path(sys.executable).parent / "pacs")
_sources = iter(range(20, 250))


def source() -> str:
    """A fresh loopback source address (127.0.0.20, .21, ...)."""
    return f"127.0.0.{next(_sources)}"


def _listener_pid(port: int) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    raise LookupError(f"nothing listens on {port}")


@contextmanager
def namespace(name: str, home: Path):
    """A scratch namespace (tests/namespace_support.py) that the test process's environment
    names meanwhile, so the `pacs` processes and helpers a test starts use it too; yields its
    Settings."""
    from tests.namespace_support import scratch_namespace
    with scratch_namespace(name, home) as (settings, env):
        with mock.patch.dict(os.environ, {k: env[k] for k in (
                "PACS_HDFS_ROOT", "PACS_HBASE_TABLE_PREFIX", "PACS_HOME")}):
            yield settings


@contextmanager
def portal_stack(name: str, home: Path):
    """A `pacs portal` of its own namespace."""
    from tests.portal_support import free_port, portal_process
    with namespace(name, home) as settings:
        port = free_port()
        with portal_process(port) as portal:
            yield SimpleNamespace(url=portal.url, log=portal.log, pid=_listener_pid(port),
                                  settings=settings, env=dict(os.environ), home=home)


def pacs(stack, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    """A `pacs` command in the stack's namespace."""
    env = {**stack.env, **({"PACS_USER_PASSWORD": password} if password else {})}
    return subprocess.run([PACS, *args], env=env, capture_output=True, text=True, timeout=180)


def add_user(stack, role: str = "teacher") -> tuple[str, str]:
    name, password = f"sec-{role}-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    out = pacs(stack, "user", "add", name, "--role", role, password=password)
    assert out.returncode == 0, out.stderr
    return name, password


def client(stack, address: str, **kw) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=60, follow_redirects=False,
                        transport=httpx.HTTPTransport(local_address=address), **kw)


def login_pair(stack, address: str) -> tuple[str, str]:
    """(pre-session cookie, signed form token) as a browser gets them from GET /login."""
    from tests.portal_doubles import LOGIN_TOKEN
    with client(stack, address) as c:
        page = c.get("/login")
        return page.cookies["pacs_login_csrf"], LOGIN_TOKEN.search(page.text).group(1)


def burst(stack, address: str, requests: list[dict], cookies: dict | None = None,
          timeout: float = 120) -> list[int]:
    """Send every request ({method, url, ...} for httpx) at once, one connection each."""
    async def run():
        limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
        transport = httpx.AsyncHTTPTransport(local_address=address, limits=limits)
        async with httpx.AsyncClient(base_url=stack.url, timeout=timeout, transport=transport,
                                     limits=limits, follow_redirects=False,
                                     cookies=cookies) as c:
            answers = await asyncio.gather(*(c.request(**r) for r in requests))
        return [a.status_code for a in answers]
    return asyncio.run(run())


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def peak_rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def record_figure(key: str, value) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "portal.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[key] = value
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
