"""The dev PKI: chain, SANs, key modes, and a real mutual-TLS handshake on loopback."""
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509

from hl7_gateway.certs import create_dev_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return create_dev_pki(tmp_path_factory.mktemp("certs"))


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_chain_sans_and_key_modes(pki):
    ca = load(pki.ca_cert)
    for leaf in (pki.server_cert, pki.client_cert):
        load(leaf).verify_directly_issued_by(ca)
    san = load(pki.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert {str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    for key in (pki.ca_key, pki.server_key, pki.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_existing_pki_is_kept_unless_forced(pki):
    before = pki.ca_cert.read_bytes()
    assert create_dev_pki(pki.directory).ca_cert.read_bytes() == before
    assert create_dev_pki(pki.directory, force=True).ca_cert.read_bytes() != before


def _handshake(pki, client_ctx) -> str | None:
    """Run one TLS handshake against a CERT_REQUIRED server; the server's error, if any."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    server_ctx.load_verify_locations(pki.ca_cert)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    errors = []

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname()) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"x")
                tls.recv(1)
    except (ssl.SSLError, OSError):
        pass
    thread.join(10)
    listener.close()
    return errors[0] if errors else None


def _client_ctx(pki, with_cert: bool):
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


def test_mutual_tls_accepts_client_cert_and_refuses_none(pki):
    assert _handshake(pki, _client_ctx(pki, True)) is None
    assert "certificate" in (_handshake(pki, _client_ctx(pki, False)) or "").lower()
