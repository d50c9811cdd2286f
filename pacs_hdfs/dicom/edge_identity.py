"""Which hospital edge is calling: the identity in its TLS client certificate.

An edge identity is a client certificate issued by `pacs certs edge NAME`
(`hl7_gateway.certs.issue_edge_cert`): subject CN=NAME and OU=`EDGE_ORG_UNIT`, extended key usage
clientAuth. The TLS layer has already checked that our CA signed it (the gateway requires client
certificates: `hl7_gateway/server.py`); this module only decides whether a verified certificate is
an *edge* - the HAS client certificate of `pacs certs init` is not, so it cannot store images.

The peer certificate reaches the app in the ASGI TLS extension (``scope["extensions"]["tls"]
["client_cert_chain"]``, PEM strings, leaf first), which `hl7_gateway.tls_scope` adds.

Every gateway client acts for one **hospital**. `pacs certs` writes the hospital id into the
certificates it issues, as a subjectAltName URI ``urn:pacs-mdc:hospital:<id>``
(`certificate_hospital` reads it); the gateway may also map a certificate's CN to a hospital by
configuration, and refuses revoked certificates (`hl7_gateway.identity`, which resolves the
caller once per request and leaves the `Peer` in the scope under `PEER_SCOPE_KEY`).
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
#: A hospital id: what the certificate's hospital URI carries and visit/subject rows record.
HOSPITAL_ID = EDGE_NAME
#: subjectAltName URI prefix naming the hospital a certificate acts for (`pacs certs --hospital`)
HOSPITAL_URI = "urn:pacs-mdc:hospital:"
#: The hospital `pacs certs init` / `pacs certs edge` issue for when given none.
DEFAULT_HOSPITAL = "hospital1"
#: Where `hl7_gateway.identity.IdentityGate` leaves the resolved `Peer` of a request.
PEER_SCOPE_KEY = "pacs.peer"


@dataclass(frozen=True)
class Peer:
    """The caller as far as its certificate tells: the edge name (None when not an edge), a
    short description for log lines (the subject's CN and OU - names of machines, not people)
    and, once the gateway's identity gate resolved it, the hospital it acts for."""

    edge: str | None
    described: str
    hospital: str | None = None


def edge_name(cert: x509.Certificate) -> str | None:
    """The edge name of a (CA-verified) client certificate, or None if it is not an edge's."""
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    name = common_name(cert)
    if EDGE_ORG_UNIT not in units or name is None or not EDGE_NAME.match(name):
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return name if ExtendedKeyUsageOID.CLIENT_AUTH in usages else None


def certificate_hospital(cert: x509.Certificate) -> str | None:
    """The hospital id the certificate's issuer wrote into it (subjectAltName URI
    ``urn:pacs-mdc:hospital:<id>``), or None: no such URI, a malformed id, or two different
    ones (an ambiguous certificate acts for nobody)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    found = {uri[len(HOSPITAL_URI):] for uri in san.get_values_for_type(
        x509.UniformResourceIdentifier) if uri.startswith(HOSPITAL_URI)}
    if len(found) != 1:
        return None
    hospital = found.pop()
    return hospital if HOSPITAL_ID.match(hospital) else None


def common_name(cert: x509.Certificate) -> str | None:
    """The subject's single CN, or None (none or several)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if len(names) == 1 else None


_DESCRIBED = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATIONAL_UNIT_NAME: "OU"}


def describe(cert: x509.Certificate) -> str:
    """The subject's CN and OU for log lines and the audit trail (machines' names)."""
    parts = [f"{_DESCRIBED[a.oid]}={a.value}" for a in cert.subject if a.oid in _DESCRIBED]
    return ",".join(parts)[:200] or "(no CN)"


def leaf_certificate(scope: dict) -> x509.Certificate | None:
    """The client certificate of an ASGI request (the TLS extension's leaf), or None when there
    is none; ValueError when it cannot be read."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    try:
        return x509.load_pem_x509_certificate(chain[0].encode("ascii"))
    except (ValueError, TypeError, UnicodeError, AttributeError):
        raise ValueError("unreadable client certificate") from None


def peer_from_scope(scope: dict) -> Peer:
    """The caller of an ASGI request: the `Peer` the gateway's identity gate resolved, else
    (no gate in front, e.g. a bare router in a unit test) from the TLS extension's client
    certificate chain, without a hospital."""
    if PEER_SCOPE_KEY in scope:
        return scope[PEER_SCOPE_KEY]
    try:
        cert = leaf_certificate(scope)
    except ValueError:
        return Peer(None, "(unreadable client certificate)")
    if cert is None:
        return Peer(None, "(no client certificate)")
    return Peer(edge_name(cert), describe(cert))
