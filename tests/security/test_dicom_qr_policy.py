"""Authenticated DICOM Q/R at the MDC (issue 15, item 2), on the service's own handlers
(`pacs_hdfs.dicom.server`) and real sockets, in this process over an in-memory archive and
audit trail (`dicom_security_support.in_process_mdc`); `test_dicom_qr_scp.py` repeats the
tester's rows against the real `pacs scp` on the cluster.

- who may associate: the called AE must be ours (0x07), the calling AE allow-listed (0x03) for
  the peer's source address (0x03), and a peer off loopback must use TLS with a client
  certificate (no reason given, 0x01); all rejected-permanent by the service user (PS3.8);
- every association, C-FIND, C-GET and C-MOVE is in the audit trail as a PS3.15 A.5 message that
  validates against the schema, naming the AE, its address, the studies and the counts;
- the same messages go to syslog (RFC 5424) when a target is configured.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest
from lxml import etree
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from pacs_hdfs import audit_messages, audit_syslog
from pacs_hdfs.dicom.config import (CHECKS, REJECTIONS, DimsePolicy, Grant, Peer, grants,
                                    ssl_context)
from pacs_hdfs.settings import Settings
from tests.security.dicom_security_support import (
    CALLING_NOT_RECOGNIZED, HOST, MDC_AE, NO_REASON, TESTER_CALLED, TESTER_CALLING, TESTER_ROWS,
    associate, can_make_interfaces, find, get, in_process_mdc, non_loopback_address, rejection,
    tls_pki)

ALLOWED = "FINDSCU,GETSCU,MOVESCU,SRC@127.0.0.1,NET@127.0.0.0/30"


# --- the policy as data --------------------------------------------------------------------------

@pytest.mark.parametrize("entry,ae,net", [
    ("FINDSCU", "FINDSCU", None),
    ("WS1@10.0.0.5", "WS1", "10.0.0.5/32"),
    ("WS2@10.0.0.0/24", "WS2", "10.0.0.0/24"),
    (" WS3 @ fd00::7 ", "WS3", "fd00::7/128"),
    ("A@B@127.0.0.1", "A@B", "127.0.0.1/32"),
])
def test_allow_list_entries(entry, ae, net):
    g = Grant.parse(entry)
    assert g.ae == ae and (str(g.network) if g.network else None) == net


@pytest.mark.parametrize("entry", ["WS@nowhere", "@10.0.0.1", "WS@10.0.0.300"])
def test_bad_allow_list_entries_are_refused_at_start(entry):
    with pytest.raises(ValueError):
        DimsePolicy.from_settings(Settings(mdc_dimse_qr_aes=entry))


PEER = dict(called_ae=MDC_AE, port=1)


@pytest.mark.parametrize("peer,expected", [
    (Peer("FINDSCU", address="127.0.0.1", **PEER), None),
    (Peer("FINDSCU", address="127.0.0.9", **PEER), None),                 # plain = loopback
    (Peer("FINDSCU", address="::1", **PEER), None),
    (Peer("FINDSCU", address="10.0.0.5", **PEER), "source"),              # plain, not loopback
    (Peer("ZZ_NOBODY", address="127.0.0.1", **PEER), "calling_ae"),
    (Peer("ZZ_NOBODY", "WRONGCALLED", "127.0.0.1"), "called_ae"),         # called AE first
    (Peer("WS1", address="10.0.0.5", **PEER), "tls_required"),
    (Peer("WS1", address="10.0.0.5", tls=True, **PEER), "tls_required"),  # TLS without cert
    (Peer("WS1", address="10.0.0.5", tls=True, tls_subject="CN=ws1", **PEER), None),
    (Peer("WS1", address="::ffff:10.0.0.5", tls=True, tls_subject="CN=ws1", **PEER), None),
    (Peer("WS1", address="10.0.0.6", tls=True, tls_subject="CN=ws1", **PEER), "source"),
    (Peer("WS2", address="10.0.0.77", tls=True, tls_subject="CN=ws2", **PEER), None),
    (Peer("WS2", address="10.0.1.77", tls=True, tls_subject="CN=ws2", **PEER), "source"),
])
def test_association_policy(peer, expected):
    policy = DimsePolicy(grants("FINDSCU,WS1@10.0.0.5,WS2@10.0.0.0/24"), (), {})
    assert policy.refusal(peer, MDC_AE) == expected
    if expected:
        r = REJECTIONS[expected]
        assert (r.result, r.source) == (0x01, 0x01)  # rejected-permanent, service user


def test_each_service_checks_the_source_too():
    """Q/R and C-STORE grants are separate, each with its source."""
    policy = DimsePolicy(grants("WS1@10.0.0.5"), grants("HOSP@10.0.0.9,LOCAL"), {})
    assert policy.may_query("WS1", "10.0.0.5") and not policy.may_store("WS1", "10.0.0.5")
    assert policy.may_store("HOSP", "10.0.0.9") and not policy.may_store("HOSP", "10.0.0.5")
    assert policy.may_store("LOCAL", "127.0.0.1") and not policy.may_query("LOCAL", "127.0.0.1")


def test_rejection_reasons_are_ps38_values():
    assert {k for k, _ in CHECKS} <= set(REJECTIONS)
    assert REJECTIONS["called_ae"].diagnostic == 0x07
    assert REJECTIONS["calling_ae"].diagnostic == REJECTIONS["source"].diagnostic == 0x03
    assert REJECTIONS["tls_required"].diagnostic == 0x01


def test_tls_context_needs_client_certificates_and_aead(tmp_path):
    pki = tls_pki(tmp_path, HOST)
    ctx = ssl_context(Settings(mdc_dimse_tls_cert=pki.paths.server_cert,
                               mdc_dimse_tls_key=pki.paths.server_key,
                               mdc_dimse_tls_ca=pki.paths.ca_cert))
    import ssl
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["aead"] for c in tls12)


# --- on the wire -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mdc():
    with in_process_mdc(ALLOWED, destinations="NOWHERE=127.0.0.1:1") as running:
        yield running


@pytest.mark.parametrize("calling,called,expected", TESTER_ROWS)
def test_unknown_aes_are_rejected_with_their_reason(mdc, calling, called, expected):
    assoc = associate(calling, mdc.port, called)
    assert not assoc.is_established
    assert rejection(assoc) == expected


@pytest.mark.parametrize("calling,source,expected", [
    ("SRC", "127.0.0.1", None),
    ("SRC", "127.0.0.2", CALLING_NOT_RECOGNIZED),     # bound to 127.0.0.1
    ("FINDSCU", "127.0.0.2", None),                   # plain entry: any loopback address
    ("NET", "127.0.0.2", None),                       # 127.0.0.0/30
    ("NET", "127.0.0.5", CALLING_NOT_RECOGNIZED),
])
def test_allow_listed_ae_only_from_its_source(mdc, calling, source, expected):
    assoc = associate(calling, mdc.port, source=source)
    try:
        assert rejection(assoc) == expected
        assert assoc.is_established == (expected is None)
        if assoc.is_established:
            assert assoc.send_c_echo().Status == 0
    finally:
        if assoc.is_established:
            assoc.release()


def test_a_failing_check_refuses(mdc, monkeypatch):
    """Fail closed: an error in the association check is a refusal, never an acceptance."""
    def broken(*_a):
        raise RuntimeError("bug")
    monkeypatch.setattr(DimsePolicy, "refusal", broken)
    assert rejection(associate("FINDSCU", mdc.port)) == NO_REASON


def _events(mdc, action, association=None, wait: float = 5.0):
    """The trail's events of this action (and association). The service records an
    association's end after answering the release, so a test may look first: wait a little
    for at least one."""
    deadline = time.monotonic() + wait
    while True:
        found = [e for e in mdc.trail(action=action, limit=1000)
                 if association is None or e.details["association"] == association]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _xml(event) -> etree._Element:
    xml = event.details["xml"].encode()
    assert audit_messages.validate(xml) == [], audit_messages.validate(xml)
    return etree.fromstring(xml)


def _codes(root, tag) -> set[str]:
    return {e.get("csd-code") for e in root.iter(tag)}


def _association_of(mdc, ae: str, before: set[str]) -> str:
    ids = [e.details["association"] for e in _events(mdc, "dicom-association")
           if e.details["ae"] == ae and e.details["association"] not in before]
    assert len(ids) == 1, ids
    return ids[0]


def _known(mdc) -> set[str]:
    return {e.details["association"] for e in _events(mdc, "dicom-association")}


def test_query_and_retrieve_are_audited(mdc):
    """C-FIND and C-GET from allow-listed AEs: association (login), query, transfer and end
    (logout) are in the trail with the AE, its address, the studies and the counts."""
    study_uids = {s[0].StudyInstanceUID for s in mdc.studies}
    before = _known(mdc)
    assoc = associate("FINDSCU", mdc.port)
    matches, final = find(assoc)
    assoc.release()
    assert final == 0 and {m.StudyInstanceUID for m in matches} == study_uids
    find_assoc = _association_of(mdc, "FINDSCU", before)
    (q,) = _events(mdc, "dicom-find", find_assoc)
    assert q.user == "ae:FINDSCU" and q.details["address"] == HOST
    assert q.details["matches"] == len(study_uids) and set(q.details["studies"]) == study_uids
    assert q.details["level"] == "STUDY" and q.details["status"] == "0x0000"
    root = _xml(q)
    assert _codes(root, "EventID") == {"110112"}
    assert root.find("EventIdentification").get("EventActionCode") == "E"
    requestor = root.find("ActiveParticipant[@UserIsRequestor='true']")
    assert requestor.get("UserID") == "FINDSCU" and requestor.get("NetworkAccessPointID") == HOST
    objects = {o.get("ParticipantObjectID"): o
               for o in root.iter("ParticipantObjectIdentification")}
    assert study_uids <= set(objects)
    query_object = objects["1.2.840.10008.5.1.4.1.2.2.1"]  # Study Root FIND
    assert query_object.find("ParticipantObjectQuery") is not None
    assert _events(mdc, "dicom-association-end", find_assoc)

    target = mdc.studies[0]
    before = _known(mdc)
    assoc = associate("GETSCU", mdc.port, storage=True)
    status, received = get(assoc, target[0].StudyInstanceUID)
    assoc.release()
    assert status == 0 and received == len(target)
    get_assoc = _association_of(mdc, "GETSCU", before)
    (g,) = _events(mdc, "dicom-get", get_assoc)
    assert g.details["matches"] == g.details["completed"] == len(target)
    assert g.details["failed"] == 0 and g.details["studies"] == [target[0].StudyInstanceUID]
    root = _xml(g)
    assert _codes(root, "EventID") == {"110104"}
    assert root.find("EventIdentification").get("EventActionCode") == "R"
    roles = {p.get("UserID"): _codes(p, "RoleIDCode") for p in root.iter("ActiveParticipant")}
    assert roles == {MDC_AE: {"110153"}, "GETSCU": {"110152"}}
    sop = root.find(".//ParticipantObjectDescription/SOPClass")
    assert sop.get("NumberOfInstances") == str(len(target))
    (login,) = _events(mdc, "dicom-association", get_assoc)
    assert _codes(_xml(login), "EventTypeCode") == {"110122"}
    (logout,) = _events(mdc, "dicom-association-end", get_assoc)
    assert _codes(_xml(logout), "EventTypeCode") == {"110123"}
    assert logout.details["operations"] == {"C-GET": 1}


def test_move_to_an_unknown_destination_is_audited(mdc):
    before = _known(mdc)
    assoc = associate("MOVESCU", mdc.port)
    from pydicom import Dataset
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = mdc.studies[1][0].StudyInstanceUID
    statuses = [s.Status for s, _ in assoc.send_c_move(q, "ELSEWHERE",
                                                       StudyRootQueryRetrieveInformationModelMove)
                if s is not None]
    assoc.release()
    assert statuses[-1] == 0xA801
    (m,) = _events(mdc, "dicom-move", _association_of(mdc, "MOVESCU", before))
    assert m.details["status"] == "0xA801" and m.details["outcome"] == "8"
    assert _xml(m).find("EventIdentification").get("EventOutcomeIndicator") == "8"


def test_rejected_associations_are_audited(mdc):
    associate(TESTER_CALLING, mdc.port, TESTER_CALLED)
    associate("SRC", mdc.port, source="127.0.0.2")
    rejected = _events(mdc, "dicom-association-rejected")
    by_rule = {e.details["rule"]: e for e in rejected}
    called = by_rule["called_ae"]
    assert called.user == f"ae:{TESTER_CALLING}" and called.details["called_ae"] == TESTER_CALLED
    assert called.details["diagnostic"] == 0x07
    root = _xml(called)
    assert _codes(root, "EventID") == {"110114"}
    assert root.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    assert "called AE" in root.findtext("EventIdentification/EventOutcomeDescription")
    source = by_rule["source"]
    assert source.details["address"] == "127.0.0.2" and source.details["diagnostic"] == 0x03
    root = _xml(source)
    assert _codes(root, "EventID") == {"110113"} and _codes(root, "EventTypeCode") == {"110126"}


def test_a_silent_tls_peer_does_not_hold_the_listener(tmp_path):
    """The TLS handshake runs in the association's thread: a peer that connects and sends
    nothing does not stop the next one (pynetdicom wraps sockets in its accept loop)."""
    pki = tls_pki(tmp_path, HOST)
    server = ssl_context(Settings(mdc_dimse_tls_cert=pki.paths.server_cert,
                                  mdc_dimse_tls_key=pki.paths.server_key,
                                  mdc_dimse_tls_ca=pki.paths.ca_cert))
    with in_process_mdc("FINDSCU", tls=server, studies=[]) as running:
        silent = socket.create_connection((HOST, running.tls_port))
        established = []

        def second_peer():
            assoc = associate("FINDSCU", running.tls_port, tls=pki.client())
            established.append(assoc.is_established)
            if assoc.is_established:
                assoc.release()
        try:
            peer = threading.Thread(target=second_peer, daemon=True)
            peer.start()
            peer.join(10)
            assert established == [True], "a silent TLS peer held the listener"
        finally:
            silent.close()
            peer.join(30)


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """The MDC listening (plain and TLS) on a non-loopback address of this host only."""
    if not can_make_interfaces():
        pytest.skip("needs root and iproute2 for a non-loopback test address")
    with non_loopback_address() as address:
        pki = tls_pki(tmp_path_factory.mktemp("pki"), address)
        server = ssl_context(Settings(mdc_dimse_tls_cert=pki.paths.server_cert,
                                      mdc_dimse_tls_key=pki.paths.server_key,
                                      mdc_dimse_tls_ca=pki.paths.ca_cert))
        with in_process_mdc(f"PEER@{address},FINDSCU", bind=address, tls=server) as running:
            yield running, address, pki


def test_non_loopback_peer_without_tls_is_rejected(outside):
    mdc, address, _pki = outside
    assoc = associate("PEER", mdc.port, host=address)
    assert rejection(assoc) == NO_REASON
    rules = {e.details["rule"] for e in _events(mdc, "dicom-association-rejected")
             if e.details["ae"] == "PEER"}
    assert rules == {"tls_required"}


def test_non_loopback_peer_with_tls_client_certificate_is_accepted(outside):
    mdc, address, pki = outside
    before = _known(mdc)
    assoc = associate("PEER", mdc.tls_port, host=address, tls=pki.client())
    assert assoc.is_established
    matches, final = find(assoc)
    assoc.release()
    assert final == 0 and len(matches) == len(mdc.studies)
    (q,) = _events(mdc, "dicom-find", _association_of(mdc, "PEER", before))
    assert q.details["address"] == address and q.details["tls"] is True
    assert q.details["tls_subject"] == pki.client_subject
    requestor = _xml(q).find("ActiveParticipant[@UserIsRequestor='true']")
    assert requestor.get("UserName") == pki.client_subject


def test_tls_peer_without_client_certificate_cannot_connect(outside):
    mdc, address, pki = outside
    assoc = associate("PEER", mdc.tls_port, host=address, tls=pki.client(with_cert=False))
    assert not assoc.is_established


def test_loopback_only_ae_is_rejected_from_outside_even_with_tls(outside):
    mdc, address, pki = outside
    assoc = associate("FINDSCU", mdc.tls_port, host=address, tls=pki.client())
    assert rejection(assoc) == CALLING_NOT_RECOGNIZED


# --- syslog ----------------------------------------------------------------------------------

def _udp_receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(10)
    return sock


def test_audit_messages_go_to_syslog_as_rfc5424():
    receiver = _udp_receiver()
    with receiver, in_process_mdc("FINDSCU", studies=[]) as mdc:
        mdc.handlers.audit.syslog_target = f"udp://{HOST}:{receiver.getsockname()[1]}"
        assoc = associate("FINDSCU", mdc.port)
        assoc.release()
        data = receiver.recv(65536)
    header, _, body = data.partition(audit_syslog.BOM)
    fields = header.decode().split(" ")
    assert fields[0] == "<85>1" and fields[3] == f"pacs-scp-{MDC_AE}"
    assert fields[5] == "IHE+RFC-3881"
    assert fields[6] == "-" and audit_messages.validate(body) == []
    assert etree.fromstring(body).find("EventIdentification/EventID").get("csd-code") == "110114"


def test_syslog_over_tcp_uses_octet_counting():
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen(1)
    got = []

    def accept():
        conn, _ = server.accept()
        with conn:
            got.append(b"".join(iter(lambda: conn.recv(65536), b"")))
    t = threading.Thread(target=accept)
    t.start()
    msg = audit_syslog.format_message(b"<AuditMessage/>", "app", host="h", procid=1)
    assert audit_syslog.send(f"tcp://{HOST}:{server.getsockname()[1]}", msg)
    t.join(10)
    server.close()
    length, _, rest = got[0].partition(b" ")
    assert int(length) == len(rest) == len(msg) and rest.endswith(b"<AuditMessage/>")


def test_syslog_down_costs_a_warning_only(caplog):
    msg = audit_syslog.format_message(b"<AuditMessage/>", "app")
    assert audit_syslog.send("tcp://127.0.0.1:1", msg) is False
    assert audit_syslog.send("unix:///nonexistent/log", msg) is False
    with pytest.raises(ValueError):
        audit_syslog.parse_target("http://x")
