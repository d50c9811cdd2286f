"""Development PKI for the gateway's mutual TLS: a CA, a server and a client certificate.

``pacs certs init`` writes, under ``$PACS_HOME/certs/``: ``ca.pem``/``ca.key`` (the dev CA),
``server.pem``/``server.key`` (SAN 127.0.0.1 and localhost, serverAuth) and
``client.pem``/``client.key`` (the HAS client, clientAuth). Keys are EC P-256 (fast handshakes),
written with mode 0600. Production replaces these with certificates from the hospital's PKI.

``pacs certs edge NAME`` adds ``edges/NAME.pem``/``edges/NAME.key``: a hospital edge's client
certificate (CN=NAME, OU=``pacs_hdfs.dicom.edge_identity.EDGE_ORG_UNIT``, clientAuth), signed by
the same CA. Only such certificates may store images over STOW-RS; one per edge, so the MDC
records which edge sent each object.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pacs_hdfs.dicom.edge_identity import EDGE_NAME, EDGE_ORG_UNIT

VALID_DAYS = 825
EDGES_DIR = "edges"


@dataclass(frozen=True)
class CertPaths:
    """Where the PEM files of one PKI directory live."""
    directory: Path

    def _p(self, name: str) -> Path:
        return self.directory / name

    ca_cert = property(lambda self: self._p("ca.pem"))
    ca_key = property(lambda self: self._p("ca.key"))
    server_cert = property(lambda self: self._p("server.pem"))
    server_key = property(lambda self: self._p("server.key"))
    client_cert = property(lambda self: self._p("client.pem"))
    client_key = property(lambda self: self._p("client.key"))

    def complete(self) -> bool:
        return all(p.exists() for p in (self.ca_cert, self.server_cert, self.server_key,
                                        self.client_cert, self.client_key))


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pacs-mdc dev"),
                      *([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)] if unit
                        else []),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key,
             unit: str | None = None) -> x509.CertificateBuilder:
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(_name(subject, unit)).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=VALID_DAYS)))


def _leaf(common_name: str, usage, ca_key, ca_cert: x509.Certificate,
          san: list[x509.GeneralName] | None = None, unit: str | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_builder(common_name, ca_cert.subject, key.public_key(), unit)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if secret:
        os.chmod(path, 0o600)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_dev_pki(directory: str | Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                   force: bool = False) -> CertPaths:
    """Create CA, server and client certificates in ``directory`` (kept if complete, unless force)."""
    paths = CertPaths(Path(directory))
    if paths.complete() and not force:
        return paths
    paths.directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("pacs-mdc dev CA")
    ca_cert = (_builder("pacs-mdc dev CA", ca_name, ca_key.public_key())
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                              critical=False)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    san = [x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h)
           for h in hosts]
    server_key, server_cert = _leaf("pacs-mdc gateway", ExtendedKeyUsageOID.SERVER_AUTH,
                                    ca_key, ca_cert, san)
    client_key, client_cert = _leaf("pacs-mdc HAS client", ExtendedKeyUsageOID.CLIENT_AUTH,
                                    ca_key, ca_cert)
    _write(paths.ca_key, _key_pem(ca_key), secret=True)
    _write(paths.ca_cert, _cert_pem(ca_cert))
    _write(paths.server_key, _key_pem(server_key), secret=True)
    _write(paths.server_cert, _cert_pem(server_cert))
    _write(paths.client_key, _key_pem(client_key), secret=True)
    _write(paths.client_cert, _cert_pem(client_cert))
    return paths


@dataclass(frozen=True)
class EdgeCert:
    """Where one edge's client certificate, its key and the CA that signed them are."""
    name: str
    cert: Path
    key: Path
    ca_cert: Path


def edge_cert_paths(directory: str | Path, name: str) -> EdgeCert:
    base = Path(directory)
    return EdgeCert(name, base / EDGES_DIR / f"{name}.pem", base / EDGES_DIR / f"{name}.key",
                    CertPaths(base).ca_cert)


def issue_edge_cert(directory: str | Path, name: str, force: bool = False) -> EdgeCert:
    """A client certificate for the edge ``name``, signed by the CA in ``directory`` (created by
    `create_dev_pki`); an existing one is kept unless ``force``. Raises ValueError for a name
    that is not an edge name, FileNotFoundError when there is no CA."""
    if not EDGE_NAME.match(name):
        raise ValueError(f"edge name must match {EDGE_NAME.pattern[:-2]}")
    out = edge_cert_paths(directory, name)
    if out.cert.exists() and out.key.exists() and not force:
        return out
    paths = CertPaths(Path(directory))
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        raise FileNotFoundError(f"no CA in {paths.directory}: run `pacs certs init` first")
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    key, cert = _leaf(name, ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_cert, unit=EDGE_ORG_UNIT)
    out.cert.parent.mkdir(parents=True, exist_ok=True)
    _write(out.key, _key_pem(key), secret=True)
    _write(out.cert, _cert_pem(cert))
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
