"""Quarantine review through the portal on the real cluster: objects sent to a real `pacs scp`
are held (secondary capture: possible burned-in PHI); an admin releases one and rejects another
through the portal's forms; the effect is checked in HBase and through C-FIND, as the CLI test
in test_dicom_scp.py does, and the audit rows are in the HBase audit table."""
from __future__ import annotations

import re
import secrets
import socket

import pytest
from fastapi.testclient import TestClient

from pacs_hdfs.schema import row_key
from portal import audit
from portal.testing import csrf_token, login
from tests.integration.dicom_support import (DCMTK, deid_uid, find, fresh_copy, instance_row,
                                             scp_process, store)

pytestmark = pytest.mark.cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scp(cluster, tmp_path_factory):
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    # own ports: the SCP test module may run its SCP on 11112 at the same time
    with scp_process(tmp_path_factory.mktemp("qscp"), _free_port(), _free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def stores(settings):
    from types import SimpleNamespace

    from pacs_hdfs import clients
    return SimpleNamespace(hbase=clients.hbase(settings), hdfs=clients.hdfs(settings))


@pytest.fixture(scope="module")
def admin_client(cluster, settings):
    from portal.app import create_app
    app = create_app(settings)
    name, pw = f"it-qadmin-{secrets.token_hex(4)}", "pw-" + secrets.token_hex(8)
    app.state.portal.users.add(name, "admin", pw)
    c = TestClient(app)
    assert login(c, name, pw).status_code == 303
    return name, c


def test_release_and_reject_through_the_portal(scp, stores, admin_client, settings, tmp_path):
    user, c = admin_client
    sent = [fresh_copy("SC_rgb_small_odd.dcm", tmp_path / str(i))[1] for i in range(2)]
    store([tmp_path / str(i) / f"{ds.SOPInstanceUID}.dcm" for i, ds in enumerate(sent)],
          port=scp.port)
    (kept, dropped) = [(deid_uid(scp, ds.StudyInstanceUID), deid_uid(scp, ds.SOPInstanceUID))
                       for ds in sent]
    for ds in sent:
        assert instance_row(stores, scp, ds)[b"l:quarantine"]

    listing = c.get("/admin/quarantine")
    assert listing.status_code == 200
    assert f'href="/admin/quarantine/{kept[1]}"' in listing.text

    page = c.get(f"/admin/quarantine/{kept[1]}")
    assert page.status_code == 200 and 'class="q-held">held' in page.text
    assert re.search(r"<th scope=\"row\">SOPInstanceUID</th><td>" + re.escape(kept[1]), page.text)
    for ds in sent:                                      # nothing of what the hospital sent
        assert ds.PatientID not in page.text and ds.SOPInstanceUID not in page.text

    preview = c.get(f"/admin/quarantine/{kept[1]}/preview.png")
    assert preview.status_code == 200, preview.text
    assert preview.content[:8] == b"\x89PNG\r\n\x1a\n"

    token = csrf_token(c)
    r = c.post(f"/admin/quarantine/{kept[1]}/release", data={"csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    r = c.post(f"/admin/quarantine/{dropped[1]}/reject", data={"csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 303, r.text

    # HBase: states, the quarantine flag, parent rows (as `pacs quarantine release` leaves them)
    hb = stores.hbase
    assert hb.get("quarantine", row_key(kept[1]))[b"q:state"] == b"released"
    assert hb.get("quarantine", row_key(dropped[1]))[b"q:state"] == b"rejected"
    assert b"l:quarantine" not in instance_row(stores, scp, sent[0])
    assert instance_row(stores, scp, sent[1])[b"l:quarantine"]
    assert hb.get("study", row_key(kept[0])) and not hb.get("study", row_key(dropped[0]))

    # Q/R: the released object is found, the rejected one stays invisible
    images = find(scp, tmp_path, "IMAGE", f"StudyInstanceUID={kept[0]}", "SOPInstanceUID")
    assert [i.SOPInstanceUID for i in images] == [kept[1]]
    assert find(scp, tmp_path, "IMAGE", f"StudyInstanceUID={dropped[0]}", "SOPInstanceUID") == []

    # decided objects answer 409; the page says so
    for sop, action in ((kept[1], "reject"), (dropped[1], "release")):
        again = c.post(f"/admin/quarantine/{sop}/{action}", data={"csrf_token": token})
        assert again.status_code == 409
    assert "Already decided: released" in c.get(f"/admin/quarantine/{kept[1]}").text

    events = audit.query(settings, user=user, limit=10)
    decided = {(e.action, e.target) for e in events}
    assert ("quarantine-release", kept[1]) in decided
    assert ("quarantine-reject", dropped[1]) in decided


def test_unknown_sop_uid_is_404(admin_client):
    _, c = admin_client
    assert c.get("/admin/quarantine/2.25.1").status_code == 404
    r = c.post("/admin/quarantine/2.25.1/release", headers={"X-CSRF-Token": csrf_token(c)})
    assert r.status_code == 404
