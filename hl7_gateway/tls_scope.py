"""Hand the TLS client certificate to the app: uvicorn's HTTP protocol plus the ASGI TLS extension.

uvicorn verifies client certificates (``ssl_cert_reqs=CERT_REQUIRED``) but does not put the peer
certificate into the ASGI scope, and the app must know *which* client is calling (STOW-RS admits
edge identities only, `pacs_hdfs.dicom.edge_identity`). `PeerCertProtocol` is uvicorn's h11
protocol that, once the TLS handshake is done (``connection_made``), reads the verified peer
certificate of its connection and wraps the app so every request on that connection carries
``scope["extensions"]["tls"]`` as the ASGI TLS extension describes it (``client_cert_chain``: PEM
strings, leaf first; ``client_cert_name``: RFC 4514 subject; ``tls_version``). Plain-HTTP
connections get no extension. Use it as ``uvicorn.Config(..., http=PeerCertProtocol)``.
"""
from __future__ import annotations

import ssl

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

#: ssl version names -> the TLS protocol numbers the ASGI TLS extension uses
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(ssl_object: ssl.SSLObject | None) -> dict | None:
    """The ASGI TLS extension for a connection, or None when it is not TLS."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain, name = [], None
    if der:
        chain = [ssl.DER_cert_to_PEM_cert(der)]
        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return {"server_cert": None, "client_cert_chain": chain, "client_cert_name": name,
            "client_cert_error": None, "tls_version": TLS_VERSIONS.get(ssl_object.version()),
            "cipher_suite": None}


def with_tls(app, tls: dict):
    """``app`` with ``tls`` added to the extensions of every scope it is called with."""
    async def wrapped(scope, receive, send):
        scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": tls}}
        await app(scope, receive, send)
    return wrapped


class PeerCertProtocol(H11Protocol):
    """uvicorn's h11 protocol whose requests carry the connection's TLS extension."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport.get_extra_info("ssl_object"))
        if tls is not None:
            self.app = with_tls(self.app, tls)
