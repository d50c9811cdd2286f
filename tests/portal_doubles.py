"""Test doubles and helpers for portal tests (moved out of the portal package: production code
never ships them): an in-memory job service and a login helper."""
from __future__ import annotations

import json
import re

from analytics_jobs.jobs import JobRecord, new_job_id
from analytics_jobs.kinds import validate_params

# A 1x1 PNG, enough for "the chart is served as image/png".
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


class FakeJobService:
    """JobService's interface over a dict: submit validates like the real one; nothing runs."""

    def __init__(self):
        self.jobs: dict[str, JobRecord] = {}
        self.files: dict[tuple[str, str], bytes] = {}

    def submit(self, kind, raw_params, user="", start_runner=True):
        rec = JobRecord(id=new_job_id(), kind=kind, params=validate_params(kind, raw_params),
                        user=user)
        self.jobs[rec.id] = rec
        return rec

    def finish(self, job_id: str, result: dict, chart: bool = True,
               extra: dict[str, bytes] | None = None) -> JobRecord:
        """Mark the job succeeded with result.json, a chart.png unless ``chart`` is false,
        and the ``extra`` artifacts (name -> bytes)."""
        rec = self.jobs[job_id]
        rec.state, rec.progress, rec.message = "succeeded", 1.0, "done"
        rec.artifacts = {"result.json": f"/pacs/jobs/{job_id}/result.json"}
        self.files[(job_id, "result.json")] = json.dumps(result).encode()
        files = {**({"chart.png": PNG_1x1} if chart else {}), **(extra or {})}
        for name, data in files.items():
            rec.artifacts[name] = f"/pacs/jobs/{job_id}/{name}"
            self.files[(job_id, name)] = data
        return rec

    def status(self, job_id):
        if job_id not in self.jobs:
            raise KeyError(job_id)
        return self.jobs[job_id]

    def list(self, limit=50):
        return sorted(self.jobs.values(), key=lambda r: r.id, reverse=True)[:limit]

    def cancel(self, job_id):
        rec = self.status(job_id)
        if not rec.final:
            rec.state = "cancelled"
        return rec

    def artifact(self, job_id, name="result.json"):
        rec = self.status(job_id)
        if name not in rec.artifacts:
            raise KeyError(name)
        return self.files[(job_id, name)]


LOGIN_TOKEN = re.compile(r'action="/login"[^>]*>\s*<input type="hidden" name="csrf_token" '
                         r'value="([^"]+)"')


def login_form_token(client) -> str:
    """GET /login (which sets the pre-session cookie) and return the form's signed token."""
    return LOGIN_TOKEN.search(client.get("/login").text).group(1)


def login(client, name: str, password: str, next_url: str = "/"):
    """Sign in through the real form (its pre-session cookie and signed CSRF token first)."""
    token = login_form_token(client)
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": token, "next": next_url},
                       follow_redirects=False)


def csrf_token(client) -> str:
    """The signed-in session's CSRF token (what pages put in their hidden field)."""
    return client.get("/api/me").json()["csrf_token"]


class fast_hashing:
    """Cheap argon2 parameters while testing (production keeps argon2-cffi's defaults)."""

    def __enter__(self):
        from argon2 import PasswordHasher

        from portal import users
        self._saved = users._hasher
        users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        return self

    def __exit__(self, *exc):
        from portal import users
        users._hasher = self._saved


class EmptyHdfs:
    """An HDFS with no files, for a portal on an in-memory store: reads say "nothing there"."""

    def list_status(self, path: str) -> list:
        return []

    def exists(self, path: str) -> bool:
        return False

    def info(self, path: str):
        return None


def portal_app(users: dict[str, str], password: str, store=None, jobs=None, **kw):
    """A portal on an in-memory store (or ``store``) and a FakeJobService (or ``jobs``), with
    ``users`` (name -> role) all signing in with ``password``."""
    from pacs_hdfs.settings import Settings
    from portal.app import create_app
    from tests.memory_store import MemoryStore
    store = MemoryStore() if store is None else store
    app = create_app(Settings(), store, FakeJobService() if jobs is None else jobs, **kw)
    if isinstance(store, MemoryStore):
        app.state.portal.hdfs = EmptyHdfs()     # in-memory rows: the lifecycle finds no HDFS files
    for name, role in users.items():
        app.state.portal.users.add(name, role, password)
    return app
