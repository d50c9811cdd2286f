"""hl7_gateway.tls_scope over a real uvicorn server with mutual TLS (the gateway's own config):
each request sees its connection's verified client certificate in the ASGI TLS extension."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
import uvicorn
from cryptography import x509

from hl7_gateway.certs import create_dev_pki, issue_edge_cert
from hl7_gateway.server import uvicorn_config
from hl7_gateway.tls_scope import PeerCertProtocol


async def echo_tls(scope, receive, send):
    """An ASGI app answering with the subject and version of the TLS extension it was given."""
    if scope["type"] != "http":
        return
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    cn = (x509.load_pem_x509_certificate(chain[0].encode()).subject.rfc4514_string()
          if chain else "-")
    body = f"{cn}|{tls.get('client_cert_name')}|{tls.get('tls_version')}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    certs = create_dev_pki(directory)
    edge = issue_edge_cert(directory, "edge-tls")
    port = free_port()
    config = uvicorn_config(echo_tls, certs, "127.0.0.1", port)
    assert config.http_protocol_class is PeerCertProtocol
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"https://127.0.0.1:{port}", certs, edge
    srv.should_exit = True
    thread.join(10)


def _get(url, ca, cert=None):
    s = requests.Session()
    s.trust_env = False
    return s.get(url, verify=str(ca), cert=cert, timeout=10)


def test_each_connection_sees_its_own_client_certificate(server):
    url, certs, edge = server
    as_edge = _get(url, certs.ca_cert, (str(edge.cert), str(edge.key))).text.split("|")
    as_has = _get(url, certs.ca_cert, (str(certs.client_cert), str(certs.client_key))).text
    assert as_edge[0] == as_edge[1] and "CN=edge-tls" in as_edge[0]
    assert as_edge[2] in (str(0x0303), str(0x0304))
    assert "CN=pacs-mdc HAS client" in as_has and "edge-tls" not in as_has


def test_no_client_certificate_fails_at_tls(server):
    url, certs, _ = server
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        _get(url, certs.ca_cert)


def test_plain_connection_gets_no_extension():
    from hl7_gateway.tls_scope import tls_extension
    assert tls_extension(None) is None
