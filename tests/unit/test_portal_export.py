"""The export routes on the in-memory portal: the zip goes to its owner and admins only, each
download audited with bytes and sha256; teachers cannot export; a search without criteria is
refused. (The search -> job path with a live index runs in tests/integration/test_export.py.)"""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pacs_hdfs import audit
from tests.memory_store import MemoryStore
from tests.portal_doubles import FakeJobService, csrf_token, fast_hashing, login, portal_app

PASSWORD = "correct-horse-2"
ZIP = b"PK\x03\x04 pretend zip bytes"


class ZipHdfs:
    def __init__(self):
        self.read = []

    def read_chunks(self, path, offset=0, length=None, chunk_size=1 << 20):
        self.read.append(path)
        yield ZIP[:10]
        yield ZIP[10:]


@pytest.fixture(scope="module")
def world():
    with fast_hashing():
        store, jobs = MemoryStore(), FakeJobService()
        app = portal_app({"owner": "analyst", "other": "analyst", "boss": "admin",
                          "teach": "teacher"}, PASSWORD, store, jobs)
        app.state.portal.hdfs = ZipHdfs()
        rec = jobs.submit("export", {"pseudonyms": ["RSAAAABBBBCCCCDDDD"]}, user="owner")
        jobs.finish(rec.id, {"numbers": {"cases": 1},
                             "export": {"bytes": len(ZIP), "sha256": "ab" * 32}},
                    chart=False, extra={"export.zip": ZIP})
        clients = {}
        for name in ("owner", "other", "boss", "teach"):
            c = TestClient(app)
            assert login(c, name, PASSWORD).status_code == 303
            clients[name] = c
        yield app, store, rec.id, clients


def test_owner_and_admin_download_and_are_audited(world):
    app, store, job_id, clients = world
    for name in ("owner", "boss"):
        r = clients[name].get(f"/jobs/{job_id}/export.zip")
        assert r.status_code == 200 and r.content == ZIP
        assert r.headers["content-type"] == "application/zip"
        assert r.headers["content-length"] == str(len(ZIP))
    events = audit.query(app.state.portal.settings, action="download-export", store=store)
    assert sorted(e.user for e in events) == ["boss", "owner"]
    assert all(e.details["job"] == job_id and e.details["bytes"] == len(ZIP)
               and e.details["sha256"] == "ab" * 32 for e in events)


def test_other_analyst_and_teacher_are_refused(world):
    app, store, job_id, clients = world
    assert clients["other"].get(f"/jobs/{job_id}/export.zip").status_code == 403
    assert clients["teach"].get(f"/jobs/{job_id}/export.zip").status_code == 403
    denied = audit.query(app.state.portal.settings, action="download-denied", store=store)
    assert [e.user for e in denied] == ["other"]


def test_job_page_links_the_download(world):
    _app, _store, job_id, clients = world
    assert 'id="download-export"' in clients["owner"].get(f"/jobs/{job_id}").text


def test_export_needs_an_analyst_and_criteria(world):
    _app, _store, _job, clients = world
    c = clients["teach"]
    r = c.post("/search/export", data={"icd10": "C50", "csrf_token": csrf_token(c)})
    assert r.status_code == 403
    c = clients["owner"]
    r = c.post("/search/export", data={"csrf_token": csrf_token(c)})
    assert r.status_code == 422 and "criterion" in r.text
