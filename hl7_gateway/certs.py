"""Development PKI for the gateway's mutual TLS: a CA, a server and a client certificate.

``pacs certs init`` writes, under ``$PACS_HOME/certs/``: ``ca.pem`` (the dev CA's certificate),
``server.pem``/``server.key`` (SAN 127.0.0.1 and localhost, serverAuth) and
``client.pem``/``client.key`` (the HAS client, clientAuth). The CA's private key is kept apart
from the server material, in the sibling folder ``certs-ca-offline/ca.key``
(`offline_ca_dir`): the gateway and the edge never read it; only issuing a certificate does.
In production that folder does not stay on the gateway host at all (deploy/cluster/README.md,
"The offline CA"). Keys are EC P-256 (fast handshakes). Every file is created 0600 in folders
created 0700 (`pacs_hdfs.hardening`). Production replaces these with the hospital's PKI.

``pacs certs edge NAME`` adds ``edges/NAME.pem``/``edges/NAME.key``: a hospital edge's client
certificate (CN=NAME, OU=``pacs_hdfs.dicom.edge_identity.EDGE_ORG_UNIT``, clientAuth), signed by
the same CA. Only such certificates may store images over STOW-RS; one per edge, so the MDC
records which edge sent each object.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pacs_hdfs.dicom.edge_identity import EDGE_NAME, EDGE_ORG_UNIT
from pacs_hdfs.hardening import private_dir, write_private

VALID_DAYS = 825
EDGES_DIR = "edges"
CA_OFFLINE_SUFFIX = "-ca-offline"


def offline_ca_dir(directory: str | Path) -> Path:
    """Where the CA key of the PKI in ``directory`` lives: the sibling ``<name>-ca-offline``
    (``$PACS_HOME/certs`` -> ``$PACS_HOME/certs-ca-offline``)."""
    directory = Path(directory)
    return directory.with_name(directory.name + CA_OFFLINE_SUFFIX)


@dataclass(frozen=True)
class CertPaths:
    """Where the PEM files of one PKI directory live; the CA key is in ``ca_directory``
    (default `offline_ca_dir`)."""
    directory: Path
    ca_directory: Path | None = field(default=None, compare=False)

    def _p(self, name: str) -> Path:
        return self.directory / name

    ca_cert = property(lambda self: self._p("ca.pem"))
    ca_key = property(lambda self: (self.ca_directory or offline_ca_dir(self.directory)) / "ca.key")
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


def _move_old_ca_key(paths: CertPaths) -> None:
    """An older `pacs certs init` left ``ca.key`` next to the server material: move it to the
    offline folder (same file system, one rename)."""
    old = paths.directory / "ca.key"
    if old.exists():
        private_dir(paths.ca_key.parent)
        os.replace(old, paths.ca_key)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_dev_pki(directory: str | Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                   force: bool = False, ca_directory: str | Path | None = None) -> CertPaths:
    """Create CA, server and client certificates in ``directory`` and the CA key in
    ``ca_directory`` (default `offline_ca_dir`); a complete set is kept unless ``force``."""
    paths = CertPaths(Path(directory), Path(ca_directory) if ca_directory else None)
    _move_old_ca_key(paths)
    if paths.complete() and not force:
        return paths
    private_dir(paths.directory)
    private_dir(paths.ca_key.parent)
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
    write_private(paths.ca_key, _key_pem(ca_key))
    for path, pem in ((paths.ca_cert, _cert_pem(ca_cert)),
                      (paths.server_key, _key_pem(server_key)),
                      (paths.server_cert, _cert_pem(server_cert)),
                      (paths.client_key, _key_pem(client_key)),
                      (paths.client_cert, _cert_pem(client_cert))):
        write_private(path, pem)
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


def issue_edge_cert(directory: str | Path, name: str, force: bool = False,
                    ca_directory: str | Path | None = None) -> EdgeCert:
    """A client certificate for the edge ``name``, signed by the CA of ``directory`` (created
    by `create_dev_pki`; its key in ``ca_directory``, default `offline_ca_dir`); an existing one
    is kept unless ``force``. Raises ValueError for a name that is not an edge name,
    FileNotFoundError when there is no CA or its key is not here (kept offline)."""
    if not EDGE_NAME.match(name):
        raise ValueError(f"edge name must match {EDGE_NAME.pattern[:-2]}")
    out = edge_cert_paths(directory, name)
    if out.cert.exists() and out.key.exists() and not force:
        return out
    paths = CertPaths(Path(directory), Path(ca_directory) if ca_directory else None)
    _move_old_ca_key(paths)
    if not paths.ca_cert.exists():
        raise FileNotFoundError(f"no CA in {paths.directory}: run `pacs certs init` first")
    if not paths.ca_key.exists():
        raise FileNotFoundError(f"the CA key is not at {paths.ca_key} (kept offline?): issue "
                                "the certificate where the CA key is, with --ca-dir "
                                "(deploy/cluster/README.md, \"The offline CA\")")
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    key, cert = _leaf(name, ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_cert, unit=EDGE_ORG_UNIT)
    private_dir(out.cert.parent)
    write_private(out.key, _key_pem(key))
    write_private(out.cert, _cert_pem(cert))
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
