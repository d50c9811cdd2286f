"""Who calls the gateway: the hospital a client certificate acts for, and whether it is revoked.

The TLS handshake has already verified that our CA signed the client certificate
(`server.uvicorn_config`, ``CERT_REQUIRED``). `IdentityGate`, an ASGI middleware in front of
every route (HL7 v3, STOW-RS, edge WADO-RS, healthz), resolves each request's certificate
(`Identities.resolve`) with these checks, in this order (`REFUSALS`):

| check | refused as |
|---|---|
| no client certificate in the ASGI TLS extension | 403 ``no-certificate`` |
| the certificate cannot be parsed | 403 ``unreadable-certificate`` |
| the CRL file exists but is unreadable or not signed by our CA | 503 ``revocation-list-unusable`` (fail closed) |
| serial (hex) or SHA-256 fingerprint listed in ``gateway_revoked`` | 403 ``revoked`` |
| serial listed in the CRL (``gateway_crl``, default ``<certs>/revoked.crl``) | 403 ``revoked`` |
| CN not in ``gateway_hospitals`` and no hospital URI in the certificate (or ``gateway_certificate_hospitals`` false) | 403 ``no-hospital`` |

**Hospital of a certificate**: ``gateway_hospitals[CN]`` when the table names the CN (the
operator's word wins, e.g. for certificates of another PKI), else the hospital id our CA wrote
into it (`pacs_hdfs.dicom.edge_identity.certificate_hospital`, from `pacs certs --hospital`).

A refusal is answered ``{"detail": ..., "reason": <code>}``, logs one warning line (subject
CN/OU, serial, reason; never request content) and records an audit event ``gateway-refused``
(`pacs_hdfs.audit.record`), at most once per certificate and reason every `AUDIT_INTERVAL`
seconds so a client retrying in a loop cannot flood the trail. An admitted request carries its
`Peer` (edge name, hospital) under ``scope[PEER_SCOPE_KEY]`` for the routes.

The CRL is re-read when its file changes (size, mtime or inode), so `pacs certs revoke` takes
effect on the next request; ``gateway_revoked`` and ``gateway_hospitals`` are settings, read when
the gateway starts.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from hl7_gateway.certs import CertPaths, read_crl
from pacs_hdfs.dicom.edge_identity import (HOSPITAL_ID, PEER_SCOPE_KEY, Peer,
                                           certificate_hospital, common_name, describe,
                                           edge_name, leaf_certificate)

log = logging.getLogger("hl7_gateway.identity")

#: refusal code -> (HTTP status, what the client is told)
REFUSALS = {
    "no-certificate": (403, "a client certificate is required"),
    "unreadable-certificate": (403, "the client certificate cannot be read"),
    "revocation-list-unusable": (503, "the gateway's revocation list is unusable; "
                                      "retry when it is fixed"),
    "revoked": (403, "this client certificate is revoked"),
    "no-hospital": (403, "this client certificate acts for no hospital known to the gateway "
                         "(gateway_hospitals, or `pacs certs ... --hospital`)"),
}
#: path prefix -> what refusals log and audit as the target (ids in paths are not repeated;
#: anything else is cut to MAX_TARGET characters: the path is the caller's to choose)
ROUTES = (("/hl7/v3/visits/", "/hl7/v3/visits/{visit_id}"),
          ("/dicomweb/studies/", "/dicomweb/studies/{study}"))
MAX_TARGET = 100
AUDIT_ACTION = "gateway-refused"
AUDIT_INTERVAL = 60.0   # seconds between audit events of one certificate and reason
AUDIT_MEMORY = 10_000   # (certificate, reason) pairs remembered for that
FINGERPRINT_DIGITS = 64  # SHA-256, hex
MAX_SERIAL_DIGITS = 40   # RFC 5280: at most 20 octets


@dataclass(frozen=True)
class Refusal:
    """Why a request is not admitted: a `REFUSALS` code, the certificate as far as known."""
    code: str
    described: str
    serial: str = ""
    why: str = ""  # for the log and audit only (which list, which setting)

    @property
    def status(self) -> int:
        return REFUSALS[self.code][0]

    @property
    def detail(self) -> str:
        return REFUSALS[self.code][1]


def route(path: str) -> str:
    """The target a refusal names for ``path`` (`ROUTES`)."""
    for prefix, label in ROUTES:
        if path.startswith(prefix):
            return label
    return path[:MAX_TARGET]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex (what ``openssl x509 -fingerprint
    -sha256`` prints, without colons)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def parse_deny_list(entries: Iterable[str]) -> tuple[frozenset[int], frozenset[str]]:
    """(serials, fingerprints) of ``gateway_revoked``: each entry is hex, colons and a 0x prefix
    allowed; 64 digits is a SHA-256 fingerprint, up to 40 a serial. ValueError otherwise."""
    serials, prints = set(), set()
    for entry in entries:
        digits = entry.strip().lower().replace(":", "").removeprefix("0x")
        try:
            value = int(digits, 16)
        except ValueError:
            raise ValueError(f"gateway_revoked: {entry!r} is not hex") from None
        if len(digits) == FINGERPRINT_DIGITS:
            prints.add(digits)
        elif 0 < len(digits) <= MAX_SERIAL_DIGITS:
            serials.add(value)
        else:
            raise ValueError(f"gateway_revoked: {entry!r} is neither a serial (up to "
                             f"{MAX_SERIAL_DIGITS} hex digits) nor a SHA-256 fingerprint")
    return frozenset(serials), frozenset(prints)


class CrlUnusable(Exception):
    """The CRL file exists but cannot be trusted: refuse everyone until it is fixed."""


class Revocations:
    """The deny list of the settings plus the CRL file, re-read when the file changes."""

    def __init__(self, deny: Iterable[str], crl: Path, ca_cert: x509.Certificate):
        self.serials, self.fingerprints = parse_deny_list(deny)
        self.crl_path, self.ca_cert = Path(crl), ca_cert
        self._stamp: tuple | None = None
        self._listed: frozenset[int] = frozenset()
        self._error: str | None = None
        self._listed_serials()  # an unusable CRL is reported when the gateway starts

    def _listed_serials(self) -> frozenset[int]:
        try:
            st = os.stat(self.crl_path)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                crl = read_crl(self.crl_path, self.ca_cert) if stamp else None
            except (ValueError, OSError) as exc:
                self._error, self._listed = str(exc), frozenset()
                log.error("revocation list unusable, refusing every request: %s", exc)
            else:
                self._error = None
                self._listed = frozenset(r.serial_number for r in (crl or []))
                log.info("revocation list %s: %d serial(s)", self.crl_path, len(self._listed))
        if self._error is not None:
            raise CrlUnusable(self._error)
        return self._listed

    def why(self, cert: x509.Certificate) -> str | None:
        """Which list revokes ``cert``, or None; CrlUnusable when the CRL cannot be trusted."""
        listed = self._listed_serials()
        if cert.serial_number in self.serials:
            return "serial listed in gateway_revoked"
        if fingerprint(cert) in self.fingerprints:
            return "fingerprint listed in gateway_revoked"
        if cert.serial_number in listed:
            return f"serial listed in {self.crl_path.name}"
        return None


class Identities:
    """Certificate -> `Peer` (edge name, hospital) or `Refusal`."""

    def __init__(self, hospitals: Mapping[str, str], from_certificate: bool,
                 revocations: Revocations):
        bad = sorted(h for h in hospitals.values() if not HOSPITAL_ID.match(h))
        if bad:
            raise ValueError(f"gateway_hospitals: malformed hospital id(s) {bad}")
        self.hospitals = dict(hospitals)
        self.from_certificate = from_certificate
        self.revocations = revocations

    @classmethod
    def from_settings(cls, settings, certs: CertPaths) -> "Identities":
        """The gateway's identities: mapping and deny list from ``settings``, the CRL
        ``gateway_crl`` or ``<certs dir>/revoked.crl``, checked against ``certs.ca_cert``."""
        ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
        return cls(settings.gateway_hospitals, settings.gateway_certificate_hospitals,
                   Revocations(settings.gateway_revoked, settings.gateway_crl or certs.crl, ca))

    def hospital(self, cert: x509.Certificate) -> str | None:
        cn = common_name(cert)
        if cn is not None and cn in self.hospitals:
            return self.hospitals[cn]
        return certificate_hospital(cert) if self.from_certificate else None

    def resolve(self, scope: dict) -> Peer | Refusal:
        try:
            cert = leaf_certificate(scope)
        except ValueError:
            return Refusal("unreadable-certificate", "(unreadable client certificate)")
        if cert is None:
            return Refusal("no-certificate", "(no client certificate)")
        described, serial = describe(cert), format(cert.serial_number, "x")
        try:
            revoked = self.revocations.why(cert)
        except CrlUnusable as exc:
            return Refusal("revocation-list-unusable", described, serial, str(exc))
        if revoked:
            return Refusal("revoked", described, serial, revoked)
        hospital = self.hospital(cert)
        if hospital is None:
            return Refusal("no-hospital", described, serial,
                           "CN not in gateway_hospitals, no hospital in the certificate")
        return Peer(edge_name(cert), described, hospital)


Audit = Callable[..., object]  # audit(user, action, target, **details), e.g. audit.record


class IdentityGate:
    """ASGI middleware: admit a request with its `Peer` in the scope, or refuse it."""

    def __init__(self, app, identities: Identities, audit: Audit | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.app, self.identities, self.audit, self.clock = app, identities, audit, clock
        self._audited: dict[tuple[str, str], float] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        verdict = self.identities.resolve(scope)
        if isinstance(verdict, Peer):
            await self.app({**scope, PEER_SCOPE_KEY: verdict}, receive, send)
            return
        client, target = (scope.get("client") or ("-",))[0], route(scope["path"])
        log.warning("refused %s %s from %s: certificate %s serial %s: %s (%s), %d",
                    scope["method"], target, client, verdict.described, verdict.serial or "-",
                    verdict.code, verdict.why or verdict.detail, verdict.status)
        if self._should_audit(verdict):
            await run_in_threadpool(self._record, verdict, target, client)
        response = JSONResponse({"detail": verdict.detail, "reason": verdict.code},
                                status_code=verdict.status)
        await response(scope, receive, send)

    def _should_audit(self, verdict: Refusal) -> bool:
        if self.audit is None:
            return False
        now, key = self.clock(), (verdict.described + "/" + verdict.serial, verdict.code)
        if now - self._audited.get(key, float("-inf")) < AUDIT_INTERVAL:
            return False
        if len(self._audited) >= AUDIT_MEMORY:
            self._audited.clear()
        self._audited[key] = now
        return True

    def _record(self, verdict: Refusal, path: str, client: str) -> None:
        try:
            self.audit(verdict.described, AUDIT_ACTION, path, reason=verdict.code,
                       why=verdict.why, serial=verdict.serial, address=client)
        except Exception as exc:  # noqa: BLE001 - the refusal stands; say the trail missed it
            log.error("audit of a refusal failed: %s: %s", type(exc).__name__,
                      str(exc).splitlines()[0][:200] if str(exc) else "")
