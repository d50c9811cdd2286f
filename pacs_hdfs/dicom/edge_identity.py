"""Which hospital edge is calling: the identity in its TLS client certificate.

An edge identity is a client certificate issued by `pacs certs edge NAME`
(`hl7_gateway.certs.issue_edge_cert`): subject CN=NAME and OU=`EDGE_ORG_UNIT`, extended key usage
clientAuth. The TLS layer has already checked that our CA signed it (the gateway requires client
certificates: `hl7_gateway/server.py`); this module only decides whether a verified certificate is
an *edge* - the HAS client certificate of `pacs certs init` is not, so it cannot store images.

The peer certificate reaches the app in the ASGI TLS extension (``scope["extensions"]["tls"]
["client_cert_chain"]``, PEM strings, leaf first), which `hl7_gateway.tls_scope` adds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The organisational unit that marks a certificate as a PACS edge identity.
EDGE_ORG_UNIT = "pacs-mdc edge"
#: An edge name: what CN carries, what `l:edge` records, what the certificate files are named.
EDGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass(frozen=True)
class Peer:
    """The caller as far as its certificate tells: the edge name (None when not an edge) and a
    short description for log lines (the subject's CN and OU - names of machines, not people)."""

    edge: str | None
    described: str


def edge_name(cert: x509.Certificate) -> str | None:
    """The edge name of a (CA-verified) client certificate, or None if it is not an edge's."""
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if EDGE_ORG_UNIT not in units or len(names) != 1 or not EDGE_NAME.match(str(names[0])):
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return str(names[0]) if ExtendedKeyUsageOID.CLIENT_AUTH in usages else None


_DESCRIBED = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATIONAL_UNIT_NAME: "OU"}


def _describe(cert: x509.Certificate) -> str:
    parts = [f"{_DESCRIBED[a.oid]}={a.value}" for a in cert.subject if a.oid in _DESCRIBED]
    return ",".join(parts)[:200] or "(no CN)"


def peer_from_scope(scope: dict) -> Peer:
    """The caller of an ASGI request, from the TLS extension's client certificate chain."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return Peer(None, "(no client certificate)")
    try:
        cert = x509.load_pem_x509_certificate(chain[0].encode("ascii"))
    except (ValueError, TypeError, UnicodeError):
        return Peer(None, "(unreadable client certificate)")
    return Peer(edge_name(cert), _describe(cert))
