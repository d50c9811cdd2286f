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

**Hospitals.** Every client certificate acts for one hospital: its id is written into the
certificate as the subjectAltName URI ``urn:pacs-mdc:hospital:<id>``
(`pacs_hdfs.dicom.edge_identity.HOSPITAL_URI`), which the gateway reads
(`hl7_gateway.identity`). ``pacs certs init`` issues the HAS client for `DEFAULT_HOSPITAL` (or
``--hospital``); ``pacs certs client NAME --hospital ID`` issues another hospital's HAS client
into ``clients/NAME/`` (``client.pem``, ``client.key`` and ``ca.pem``: the folder that hospital's
``pacs has --certs`` uses); ``pacs certs edge NAME --hospital ID`` an edge of that hospital. A
name, once issued, keeps its hospital: re-issuing it for another hospital needs ``--force``
(edge names are what instance rows record, so one name must never serve two hospitals).
Certificates issued before hospitals existed are re-issued for `DEFAULT_HOSPITAL` the next time
their command runs (e.g. ``pacs up``), when the CA key is at hand.

**Revocation.** ``pacs certs revoke NAME`` adds the certificate's serial to ``revoked.crl``
(PEM, signed by the CA, next to ``ca.pem``), which the gateway re-reads when it changes.
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

from pacs_hdfs.dicom.edge_identity import (DEFAULT_HOSPITAL, EDGE_NAME, EDGE_ORG_UNIT,
                                           HOSPITAL_ID, HOSPITAL_URI, certificate_hospital)
from pacs_hdfs.hardening import private_dir, write_private

VALID_DAYS = 825
EDGES_DIR = "edges"
CLIENTS_DIR = "clients"
CRL_FILE = "revoked.crl"
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
    crl = property(lambda self: self._p(CRL_FILE))

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


def hospital_san(hospital: str) -> list[x509.GeneralName]:
    """The subjectAltName entry naming ``hospital``; ValueError for a malformed id."""
    if not HOSPITAL_ID.match(hospital):
        raise ValueError(f"hospital id must match {HOSPITAL_ID.pattern[:-2]}")
    return [x509.UniformResourceIdentifier(HOSPITAL_URI + hospital)]


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


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ca(paths: CertPaths):
    """(CA certificate, CA key) of ``paths``; FileNotFoundError when there is no CA or its key
    is not here (kept offline)."""
    _move_old_ca_key(paths)
    if not paths.ca_cert.exists():
        raise FileNotFoundError(f"no CA in {paths.directory}: run `pacs certs init` first")
    if not paths.ca_key.exists():
        raise FileNotFoundError(f"the CA key is not at {paths.ca_key} (kept offline?): issue "
                                "the certificate where the CA key is, with --ca-dir "
                                "(deploy/cluster/README.md, \"The offline CA\")")
    return (_load_cert(paths.ca_cert),
            serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None))


def _keep(cert_path: Path, key_path: Path, hospital: str | None, force: bool,
          what: str, paths: CertPaths) -> bool:
    """Whether an issued certificate stays as it is. It does when it names a hospital and
    ``hospital`` is None or that one; one that names none (issued before hospitals) is
    re-issued when the CA key is here (else kept: map its CN in ``gateway_hospitals``);
    another hospital than asked is a ValueError unless ``force``."""
    if force or not (cert_path.exists() and key_path.exists()):
        return False
    issued = certificate_hospital(_load_cert(cert_path))
    if issued is None:
        return hospital is None and not paths.ca_key.exists()
    if hospital is not None and issued != hospital:
        raise ValueError(f"{what} is issued for hospital {issued}, not {hospital}: --force "
                         "re-issues it (revoke the old one: `pacs certs revoke`)")
    return True


def create_dev_pki(directory: str | Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                   force: bool = False, ca_directory: str | Path | None = None,
                   hospital: str | None = None) -> CertPaths:
    """Create CA, server and client certificates in ``directory`` and the CA key in
    ``ca_directory`` (default `offline_ca_dir`); a complete set is kept unless ``force``. The
    client certificate acts for ``hospital`` (default `DEFAULT_HOSPITAL`); a kept one that names
    no hospital yet is re-issued when the CA key is here."""
    paths = CertPaths(Path(directory), Path(ca_directory) if ca_directory else None)
    _move_old_ca_key(paths)
    if paths.complete() and not force:
        issued = certificate_hospital(_load_cert(paths.client_cert))
        if issued is None and paths.ca_key.exists():
            _write_leaf(paths.client_cert, paths.client_key, *_ca(paths), "pacs-mdc HAS client",
                        hospital or DEFAULT_HOSPITAL)
        elif hospital is not None and issued not in (None, hospital):
            raise ValueError(f"the HAS client of {paths.directory} acts for hospital {issued}; "
                             f"issue one for {hospital} with `pacs certs client NAME "
                             f"--hospital {hospital}`")
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
    write_private(paths.ca_key, _key_pem(ca_key))
    for path, pem in ((paths.ca_cert, _cert_pem(ca_cert)),
                      (paths.server_key, _key_pem(server_key)),
                      (paths.server_cert, _cert_pem(server_cert))):
        write_private(path, pem)
    _write_leaf(paths.client_cert, paths.client_key, ca_cert, ca_key, "pacs-mdc HAS client",
                hospital or DEFAULT_HOSPITAL)
    if paths.crl.exists():
        paths.crl.unlink()  # the old CA's list; nothing of the new CA is revoked yet
    return paths


def _write_leaf(cert_path: Path, key_path: Path, ca_cert: x509.Certificate, ca_key,
                common_name: str, hospital: str, unit: str | None = None) -> None:
    """Issue a clientAuth certificate for ``hospital`` and write it and its key (0600)."""
    key, cert = _leaf(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_cert,
                      hospital_san(hospital), unit)
    private_dir(cert_path.parent)
    write_private(key_path, _key_pem(key))
    write_private(cert_path, _cert_pem(cert))


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


def client_cert_paths(directory: str | Path, name: str) -> CertPaths:
    """The folder of the HAS client ``name`` (`issue_client_cert`), as `pacs has --certs` reads
    it (``client.pem``, ``client.key``, ``ca.pem``)."""
    return CertPaths(Path(directory) / CLIENTS_DIR / name)


def _check_name(directory: Path, name: str, kind: str) -> None:
    """ValueError unless ``name`` is a valid certificate name not issued as the other kind
    (`pacs certs revoke NAME` and `gateway_hospitals` name certificates by it)."""
    if not EDGE_NAME.match(name):
        raise ValueError(f"{kind} name must match {EDGE_NAME.pattern[:-2]}")
    other, other_kind = ((client_cert_paths(directory, name).client_cert, "a HAS client")
                         if kind == "edge" else (edge_cert_paths(directory, name).cert, "an edge"))
    if other.exists():
        raise ValueError(f"{name!r} is already issued as {other_kind}")


def issue_edge_cert(directory: str | Path, name: str, force: bool = False,
                    ca_directory: str | Path | None = None,
                    hospital: str | None = None) -> EdgeCert:
    """A client certificate for the edge ``name`` of ``hospital`` (default `DEFAULT_HOSPITAL`),
    signed by the CA of ``directory`` (created by `create_dev_pki`; its key in
    ``ca_directory``, default `offline_ca_dir`). An existing one is kept unless ``force`` or it
    names no hospital yet (`_keep`). Raises ValueError for a name that is not an edge name or a
    hospital that differs from the issued one, FileNotFoundError when there is no CA or its key
    is not here (kept offline)."""
    _check_name(Path(directory), name, "edge")
    out = edge_cert_paths(directory, name)
    paths = CertPaths(Path(directory), Path(ca_directory) if ca_directory else None)
    _move_old_ca_key(paths)
    if _keep(out.cert, out.key, hospital, force, f"edge {name}", paths):
        return out
    _write_leaf(out.cert, out.key, *_ca(paths), name, hospital or DEFAULT_HOSPITAL,
                EDGE_ORG_UNIT)
    return out


def issue_client_cert(directory: str | Path, name: str, hospital: str, force: bool = False,
                      ca_directory: str | Path | None = None) -> CertPaths:
    """A HAS client certificate (CN=``name``) for ``hospital`` in ``clients/NAME/``, with a copy
    of ``ca.pem``: the folder to carry to that hospital (`pacs has sync --certs`). Kept when it
    exists for that hospital, unless ``force``."""
    _check_name(Path(directory), name, "client")
    out = client_cert_paths(directory, name)
    paths = CertPaths(Path(directory), Path(ca_directory) if ca_directory else None)
    if _keep(out.client_cert, out.client_key, hospital, force, f"client {name}", paths):
        return out
    ca_cert, ca_key = _ca(paths)
    _write_leaf(out.client_cert, out.client_key, ca_cert, ca_key, name, hospital)
    write_private(out.ca_cert, _cert_pem(ca_cert))
    return out


# --- revocation --------------------------------------------------------------------------------

def issued_certificate(directory: str | Path, name: str) -> Path:
    """The certificate file `pacs certs revoke NAME` means: ``client`` (the HAS client of
    `pacs certs init`), an edge, a client of `issue_client_cert`, or a path to a PEM file.
    FileNotFoundError when none matches."""
    directory = Path(directory)
    candidates = [p for p in (
        CertPaths(directory).client_cert if name == "client" else None,
        edge_cert_paths(directory, name).cert if EDGE_NAME.match(name) else None,
        client_cert_paths(directory, name).client_cert if EDGE_NAME.match(name) else None,
        Path(name)) if p is not None and p.is_file()]
    if not candidates:
        raise FileNotFoundError(f"no certificate named {name!r} in {directory} (an edge, a "
                                "client, `client`, or a PEM file)")
    return candidates[0]


def read_crl(path: Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList | None:
    """The CRL at ``path`` (None when there is none); ValueError when it is unreadable, from
    another issuer or its signature does not verify against ``ca_cert``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM CRL") from exc
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key()):
        raise ValueError(f"{path} is not signed by our CA ({ca_cert.subject.rfc4514_string()})")
    return crl


@dataclass(frozen=True)
class Revoked:
    serial: int
    revoked: datetime


def revoked_serials(paths: CertPaths) -> list[Revoked]:
    """What the CRL of ``paths`` lists (verified, `read_crl`)."""
    crl = read_crl(paths.crl, _load_cert(paths.ca_cert))
    return [Revoked(r.serial_number, r.revocation_date_utc) for r in (crl or [])]


def revoke(directory: str | Path, serials: list[int],
           ca_directory: str | Path | None = None) -> list[Revoked]:
    """Add ``serials`` to the CRL ``revoked.crl`` of ``directory`` (created when missing),
    re-signed by the CA with the next CRL number; returns every revoked serial. The gateway
    re-reads the file when it changes; on a gateway host without the CA key, copy it there."""
    paths = CertPaths(Path(directory), Path(ca_directory) if ca_directory else None)
    ca_cert, ca_key = _ca(paths)
    old = read_crl(paths.crl, ca_cert)
    now = datetime.now(timezone.utc)
    entries = {r.serial_number: r.revocation_date_utc for r in (old or [])}
    for serial in serials:
        entries.setdefault(serial, now)
    number = 1
    if old is not None:
        try:
            number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        except x509.ExtensionNotFound:
            pass
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now).next_update(now + timedelta(days=VALID_DAYS))
               .add_extension(x509.CRLNumber(number), critical=False))
    for serial, when in sorted(entries.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    write_private(paths.crl, builder.sign(ca_key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM))
    return [Revoked(serial, when) for serial, when in sorted(entries.items())]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
