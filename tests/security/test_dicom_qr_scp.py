"""The hostile tester's DICOM rows, reversed, against the real MDC service (`pacs scp`) on the
cluster, in a scratch namespace (its own tables, so its audit trail holds only these events).

| attempt (issue 15) | now |
|---|---|
| C-ECHO / C-FIND / C-GET, calling AE `ZZ_NOBODY`, called AE `WRONGCALLED` (dcmtk) | association rejected: called AE not recognized (0x07); to `MDC`: calling AE not recognized (0x03) |
| the SCP on 0.0.0.0 | 127.0.0.1 only (`test_binds.py` checks every socket) |
| the audit page after a Q/R: no event | association, query, retrieve and end events with AE, address, studies and counts, as PS3.15 A.5 XML |
| `scp.log` without the calling AE or the association | every association line (JSON) carries `assoc`, `ae`, `peer`, rejections their reason |

Also: an allow-listed AE from a source address it is not bound to (127.0.0.2) is rejected; on a
non-loopback address, a peer without TLS is rejected and one with a client certificate of the
CA is served over the TLS listener (pynetdicom and dcmtk's `+tls` as peers).
"""
from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

from pacs_hdfs import audit, audit_messages, logs
from tests.security.dicom_security_support import (
    CALLING_NOT_RECOGNIZED, HOST, MDC_AE, NO_REASON, TESTER_CALLED, TESTER_CALLING, TESTER_ROWS,
    associate, can_make_interfaces, deidentified_series, find, free_port, get, mdc_scp_process,
    non_loopback_address, rejection, store_studies, tls_pki)

pytestmark = pytest.mark.cluster
DCMTK = shutil.which("findscu")
#: dcmtk's default calling AE titles, and one bound to 127.0.0.1
QR_AES = "FINDSCU,GETSCU,ECHOSCU,PYSCU,SRC@127.0.0.1"


@pytest.fixture(scope="module")
def namespace(cluster, tmp_path_factory):
    from tests.namespace_support import scratch_namespace
    with scratch_namespace("secqr", tmp_path_factory.mktemp("home")) as (s, env):
        yield s, env


@pytest.fixture(scope="module")
def mdc(namespace, tmp_path_factory):
    s, env = namespace
    with mdc_scp_process(tmp_path_factory.mktemp("scp"), env, QR_AES) as running:
        studies = deidentified_series(2, 3)
        store_studies(running.port, studies)
        running.studies = studies
        running.settings = s
        yield running


def dcmtk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def trail(mdc, until=None, wait: float = 10.0, **kw) -> list:
    """The namespace's audit events, newest first; with `until`, polled until it holds (the
    service records an association's end after answering the release)."""
    deadline = time.monotonic() + wait
    while True:
        events = audit.query(mdc.settings, limit=2000, **kw)
        if until is None or until(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


@pytest.mark.skipif(not DCMTK, reason="dcmtk is not installed")
@pytest.mark.parametrize("tool,extra", [
    ("echoscu", ()),
    ("findscu", ("-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID")),
    ("getscu", ("-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2.3")),
])
def test_tester_rows_with_dcmtk_are_rejected(mdc, tool, extra):
    """dcmtk as the tester used it; echoscu and findscu print the reason, getscu only that the
    association was rejected (the reasons are checked with pynetdicom below)."""
    for called, reason in ((TESTER_CALLED, "Called AE Title Not Recognized"),
                           (MDC_AE, "Calling AE Title Not Recognized")):
        res = dcmtk(tool, "-aet", TESTER_CALLING, "-aec", called, *extra, HOST, str(mdc.port))
        assert res.returncode != 0 and "Association Rejected" in res.stderr, res.stderr[-1500:]
        assert tool == "getscu" or reason in res.stderr, res.stderr[-1500:]


@pytest.mark.parametrize("calling,called,expected", TESTER_ROWS)
def test_tester_rows_are_rejected_with_their_reason(mdc, calling, called, expected):
    assoc = associate(calling, mdc.port, called)
    assert not assoc.is_established and rejection(assoc) == expected


def test_allow_listed_ae_from_a_wrong_source_is_rejected(mdc):
    assert rejection(associate("SRC", mdc.port, source="127.0.0.2")) == CALLING_NOT_RECOGNIZED
    assoc = associate("SRC", mdc.port, source="127.0.0.1")
    assert assoc.is_established
    assoc.release()


def _association(events, ae: str, before: set[str]) -> str:
    ids = {e.details["association"] for e in events
           if e.action == "dicom-association" and e.details["ae"] == ae} - before
    assert len(ids) == 1, ids
    return ids.pop()


def test_query_retrieve_is_audited_and_logged(mdc, tmp_path):
    """dcmtk findscu (C-FIND) and a pynetdicom C-GET, then the namespace's audit trail and the
    scp log: who (AE, address), what (level, studies), how many (matches, sub-operations)."""
    uids = {s[0].StudyInstanceUID for s in mdc.studies}
    before = {e.details["association"] for e in trail(mdc, action="dicom-association")}
    # earlier tests' rejections (dcmtk's own calling AEs) must not satisfy the wait below
    rejected_before = {e.target for e in trail(mdc, action="dicom-association-rejected")}
    if DCMTK:
        out = tmp_path / "find"
        out.mkdir()
        res = dcmtk("findscu", "-S", "-X", "-od", str(out), "-aec", MDC_AE, "-k",
                    "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", HOST, str(mdc.port))
        assert res.returncode == 0, res.stderr[-1500:]
        assert len(list(out.glob("rsp*.dcm"))) == len(uids)
    else:
        assoc = associate("FINDSCU", mdc.port)
        assert len(find(assoc)[0]) == len(uids)
        assoc.release()
    assoc = associate("GETSCU", mdc.port, storage=True)
    target = mdc.studies[0]
    assert get(assoc, target[0].StudyInstanceUID) == (0, len(target))
    assoc.release()
    associate(TESTER_CALLING, mdc.port, TESTER_CALLED)

    def mine_rejected(events) -> list:
        return [e for e in events if e.action == "dicom-association-rejected"
                and e.details["called_ae"] == TESTER_CALLED and e.target not in rejected_before]

    def complete(events) -> bool:
        ended = {e.details.get("association") for e in events
                 if e.action == "dicom-association-end"}
        started = {e.details["association"] for e in events
                   if e.action == "dicom-association"} - before
        return len(started) >= 2 and started <= ended and bool(mine_rejected(events))
    events = trail(mdc, until=complete)
    finder = _association(events, "FINDSCU", before)
    getter = _association(events, "GETSCU", before)
    by = {(e.action, e.details.get("association")): e for e in events}
    q = by[("dicom-find", finder)]
    assert q.user == "ae:FINDSCU" and q.details["address"] == HOST
    assert q.details["matches"] == len(uids) and set(q.details["studies"]) == uids
    g = by[("dicom-get", getter)]
    assert g.details["completed"] == len(target) and g.details["failed"] == 0
    assert g.details["studies"] == [target[0].StudyInstanceUID]
    assert ("dicom-association-end", finder) in by and ("dicom-association-end", getter) in by
    rejected = mine_rejected(events)
    assert rejected and rejected[0].user == f"ae:{TESTER_CALLING}"
    for e in (q, g, by[("dicom-association", finder)], rejected[0]):
        assert audit_messages.validate(e.details["xml"].encode()) == [], e.action
    assert any(e.action == "dicom-service-start" for e in events)

    records = logs.read(mdc.log)
    for ae, assoc_id in (("FINDSCU", finder), ("GETSCU", getter)):
        mine = [r for r in records if r.get("assoc") == assoc_id]
        assert any("association accepted" in r["event"] for r in mine)
        assert any("association released" in r["event"] for r in mine)
        assert all(r["ae"] == ae for r in mine), mine
    assert any(r["event"] == "association rejected (result 0x01, source 0x01, reason 0x07: "
               "called AE title not recognized)" and r.get("ae") == TESTER_CALLING
               and r.get("peer") for r in records)


@pytest.fixture(scope="module")
def outside(namespace, tmp_path_factory):
    """`pacs scp` with its plain and TLS listeners on a non-loopback address of this host."""
    if not can_make_interfaces():
        pytest.skip("needs root and iproute2 for a non-loopback test address")
    s, env = namespace
    with non_loopback_address() as address:
        pki = tls_pki(tmp_path_factory.mktemp("pki"), address)
        settings = dict(bind=address, tls_bind=address, tls_port=free_port(),
                        tls_cert=pki.paths.server_cert, tls_key=pki.paths.server_key,
                        tls_ca=pki.paths.ca_cert)
        with mdc_scp_process(tmp_path_factory.mktemp("scp-out"), env, f"PEER@{address}",
                             **settings) as running:
            running.address, running.pki, running.tls_port = address, pki, settings["tls_port"]
            running.settings = s
            yield running


def test_non_loopback_peer_needs_tls_with_a_client_certificate(outside):
    peer = f"PEER{uuid.uuid4().hex[:4].upper()}"   # not allow-listed: a plain-text refusal
    assert rejection(associate(peer, outside.port, host=outside.address)) == \
        CALLING_NOT_RECOGNIZED
    assert rejection(associate("PEER", outside.port, host=outside.address)) == NO_REASON
    assoc = associate("PEER", outside.tls_port, host=outside.address, tls=outside.pki.client())
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    find(assoc)
    assoc.release()
    assert not associate("PEER", outside.tls_port, host=outside.address,
                         tls=outside.pki.client(with_cert=False)).is_established
    events = [e for e in trail(outside, action="dicom-find", until=bool)
              if e.details["address"] == outside.address]
    assert events and events[0].details["tls_subject"] == outside.pki.client_subject


@pytest.mark.skipif(not shutil.which("echoscu"), reason="dcmtk is not installed")
def test_dcmtk_tls_peer_with_a_client_certificate(outside):
    p = outside.pki.paths
    res = dcmtk("echoscu", "-aet", "PEER", "-aec", MDC_AE, "+tls", str(p.client_key),
                str(p.client_cert), "+cf", str(p.ca_cert), outside.address, str(outside.tls_port))
    assert res.returncode == 0, res.stderr[-1500:]
    res = dcmtk("echoscu", "-aet", "PEER", "-aec", MDC_AE, outside.address, str(outside.port))
    assert res.returncode != 0 and "Association Rejected" in res.stderr
