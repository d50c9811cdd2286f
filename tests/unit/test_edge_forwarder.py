"""The forwarder against a real HTTPS (mutual TLS) STOW-RS stub: every object arrives exactly
once, whatever the MDC answers or however it fails; permanent refusals go to rejected/."""
from __future__ import annotations

import json
import time

import pytest

from deid.edge import stow
from deid.edge.forwarder import Forwarder, Target
from deid.edge.stages import StageStats
from deid.edge.state import EdgeState, status
from hl7_gateway.certs import create_dev_pki
from tests.edge_support import StowStub, edge_in, sha, small_ct, spool_contents

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return create_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def edge(tmp_path):
    e = edge_in(tmp_path)
    for raw in small_ct(10):
        assert e.receiver.store(raw).kind == "stored"
    e.expected = spool_contents(e.paths)
    return e


def forwarder(edge, certs, url: str, **kw) -> Forwarder:
    target = Target(url, certs.client_cert, certs.client_key, certs.ca_cert,
                    batch_objects=kw.pop("batch_objects", 4), retry_max=0.2, **kw)
    state = EdgeState("test-edge", url, StageStats())
    f = Forwarder(edge.spool, target, state)
    f.start()
    return f


def drained(edge, stub, f, timeout: float = 20.0, want: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not edge.spool.scan() and len(stub.stored) >= (want if want is not None else 0):
            time.sleep(0.1)
            return
        time.sleep(0.05)
    f.stop()
    raise AssertionError(f"not drained: spool {len(edge.spool.scan())}, stub {len(stub.stored)}")


def exactly_once(edge, stub) -> None:
    assert {uid: sha(data) for uid, data in stub.stored.items()} == edge.expected
    assert edge.spool.scan() == []


def test_batches_arrive_in_order_once(edge, certs):
    with StowStub(certs) as stub:
        f = forwarder(edge, certs, stub.url)
        drained(edge, stub, f, want=10)
        f.stop()
    exactly_once(edge, stub)
    assert [r["parts"] for r in stub.requests] == [4, 4, 2]
    r = stub.requests[0]
    assert r["path"] == "/dicomweb/studies" and r["accept"] == "application/dicom+json"
    assert r["content_type"].startswith('multipart/related; type="application/dicom"; boundary=')
    assert f.state.forwarded_objects == 10


def test_partial_failure_retries_the_retryable_and_rejects_the_refused(edge, certs):
    uids = [e.sop_uid for e in edge.spool.scan()]
    with StowStub(certs) as stub:
        stub.script = [f"partial:{uids[0]}=A700,{uids[1]}=C001"]
        f = forwarder(edge, certs, stub.url)
        drained(edge, stub, f, want=9)
        f.stop()
    assert uids[1] not in stub.stored and uids[0] in stub.stored and len(stub.stored) == 9
    rejected = edge.paths.rejected
    assert (rejected / f"{uids[1]}.dcm").exists()
    assert "0xC001" in json.loads((rejected / f"{uids[1]}.json").read_text())["reason"]
    del edge.expected[uids[1]]
    exactly_once(edge, stub)


def test_503_backs_off_and_loses_nothing(edge, certs):
    with StowStub(certs) as stub:
        stub.script = ["503", "503", "503"]
        f = forwarder(edge, certs, stub.url)
        drained(edge, stub, f, want=10)
        f.stop()
    exactly_once(edge, stub)
    assert "HTTP 503" in f.state.last_error["message"]
    assert [r["mode"] for r in stub.requests][:3] == ["503"] * 3


@pytest.mark.parametrize("how", ["die", "die-early"])
def test_mdc_dies_mid_request(edge, certs, how):
    """Stored at the MDC but the answer lost ("die"), or nothing read ("die-early"): the
    re-send is answered as stored and nothing is kept twice."""
    with StowStub(certs) as stub:
        stub.script = [how, how]
        f = forwarder(edge, certs, stub.url)
        drained(edge, stub, f, want=10)
        f.stop()
    exactly_once(edge, stub)
    assert "unreachable" in f.state.last_error["message"]


def test_refused_for_good_goes_to_rejected(edge, certs):
    with StowStub(certs) as stub:
        stub.script = ["refuse"] * 3
        f = forwarder(edge, certs, stub.url)
        deadline = time.monotonic() + 10
        while edge.spool.scan() and time.monotonic() < deadline:
            time.sleep(0.05)
        f.stop()
    assert stub.stored == {}
    assert len(list(edge.paths.rejected.glob("*.dcm"))) == 10
    assert sorted(f.stem for f in edge.paths.rejected.glob("*.dcm")) == sorted(edge.expected)


def test_too_large_batches_are_split(edge, certs):
    with StowStub(certs) as stub:
        stub.script = ["413>1"]
        f = forwarder(edge, certs, stub.url)
        drained(edge, stub, f, want=10)
        f.stop()
    exactly_once(edge, stub)
    sizes = [r["parts"] for r in stub.requests]
    assert sizes[:3] == [4, 2, 1] and 1 in sizes


def test_mdc_down_then_up(edge, certs):
    import socket
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = forwarder(edge, certs, f"https://127.0.0.1:{port}")
    time.sleep(1.0)
    assert len(edge.spool.scan()) == 10
    assert "unreachable" in f.state.last_error["message"]
    with StowStub(certs, port=port) as stub:
        drained(edge, stub, f, want=10)
        f.stop()
    exactly_once(edge, stub)


def test_untrusted_client_certificate_keeps_everything(edge, certs, tmp_path):
    other = create_dev_pki(tmp_path / "other-pki")  # a client cert from another CA
    with StowStub(certs) as stub:
        target = Target(stub.url, other.client_cert, other.client_key, certs.ca_cert,
                        batch_objects=4, retry_max=0.2)
        f = Forwarder(edge.spool, target, EdgeState("t", stub.url, StageStats()))
        f.start()
        time.sleep(1.0)
        f.stop()
    assert stub.stored == {} and len(edge.spool.scan()) == 10
    msg = f.state.last_error["message"]
    assert "TLS" in msg or "unreachable" in msg


def test_missing_certificate_is_reported(edge, certs, tmp_path):
    target = Target("https://127.0.0.1:9", tmp_path / "none.pem", tmp_path / "none.key",
                    certs.ca_cert)
    f = Forwarder(edge.spool, target, EdgeState("t", "x", StageStats()))
    f.start()
    time.sleep(0.5)
    f.stop()
    assert "no client certificate" in f.state.last_error["message"]
    assert len(edge.spool.scan()) == 10


def test_released_objects_are_picked_up_by_the_rescan(edge, certs, monkeypatch):
    from deid.edge import forwarder as fw
    monkeypatch.setattr(fw, "RESCAN_SECONDS", 0.2)
    with StowStub(certs) as stub:
        f = forwarder(edge, certs, stub.url)
        drained(edge, stub, f, want=10)
        extra = small_ct(1)[0]
        r = edge.receiver.store(extra)  # lands in the spool behind the forwarder's back
        edge.expected[r.sop_uid] = sha((edge.paths.spool / f"{r.sop_uid}.dcm").read_bytes())
        drained(edge, stub, f, want=11)
        f.stop()
    exactly_once(edge, stub)


def test_status_reads_what_the_forwarder_wrote(edge, certs):
    with StowStub(certs) as stub:
        stub.script = ["503"]
        f = forwarder(edge, certs, stub.url)
        drained(edge, stub, f, want=10)
        f.stop()
    s = status(edge.paths, "test-edge", stub.url)
    assert s["spool"] == {"objects": 0, "bytes": 0, "oldest_age_seconds": None}
    assert s["forwarded"]["objects"] == 10 and s["forwarded"]["bytes"] > 0
    assert s["running"] is False and s["forwarder"]["state"] == "stopped"
    assert "503" in s["last_error"]["message"]


def test_read_response_rules():
    sent = ["2.25.1", "2.25.2", "2.25.3", "2.25.4"]
    doc = {stow.REFERENCED_SOP_SEQUENCE: {"vr": "SQ", "Value": [
               {stow.REFERENCED_SOP_INSTANCE_UID: {"vr": "UI", "Value": ["2.25.1"]}},
               {stow.REFERENCED_SOP_INSTANCE_UID: {"vr": "UI", "Value": ["9.9.9"]}}]},
           stow.FAILED_SOP_SEQUENCE: {"vr": "SQ", "Value": [
               {stow.REFERENCED_SOP_INSTANCE_UID: {"vr": "UI", "Value": ["2.25.2"]},
                stow.FAILURE_REASON: {"vr": "US", "Value": [0xA700]}},
               {stow.REFERENCED_SOP_INSTANCE_UID: {"vr": "UI", "Value": ["2.25.3"]},
                stow.FAILURE_REASON: {"vr": "US", "Value": [0xC000]}}]}}
    v = stow.read_response(202, json.dumps(doc).encode(), sent)
    assert {u: a for u, (a, _) in v.by_uid.items()} == {
        "2.25.1": stow.ACK, "2.25.2": stow.RETRY, "2.25.3": stow.REJECT, "2.25.4": stow.RETRY}
    assert stow.read_response(200, json.dumps([doc]).encode(), sent).by_uid["2.25.1"][0] == stow.ACK
    assert stow.read_response(503, b"", sent).batch[0] == stow.RETRY
    assert stow.read_response(413, b"", sent).batch[0] == stow.SPLIT
    assert stow.read_response(200, b"<html>", sent).batch[0] == stow.RETRY
    assert stow.read_response(403, b"", sent).batch[0] == stow.RETRY


def test_multipart_body_shape():
    body = stow.multipart([b"one", b"two"])
    boundary = body.content_type.split("boundary=")[1]
    assert body.data.startswith(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\none\r\n"
                                .encode())
    assert body.data.endswith(f"--{boundary}--\r\n".encode())
