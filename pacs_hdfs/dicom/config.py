"""The MDC DIMSE service's policy, read from the one `Settings` (`mdc_dimse_*`): who may
associate and for what, where C-MOVE may send, and the optional DICOM TLS context.

Secure by default: it binds 127.0.0.1, and with both allow-lists empty nobody can associate
(a calling AE must be listed for Query/Retrieve, `mdc_dimse_qr_aes`, or for C-STORE of
de-identified objects, `mdc_dimse_store_aes`).
"""
from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from pacs_hdfs.settings import Settings

#: The only member of pynetdicom's calling-AE list when nobody is allowed (an empty list would
#: allow all, and pynetdicom accepts only valid AE titles): 16 random hex characters chosen per
#: process and never logged, which no peer can be expected to present.
NOBODY = secrets.token_hex(8).upper()


def ae_list(text: str) -> frozenset[str]:
    return frozenset(a.strip() for a in text.split(",") if a.strip())


@dataclass(frozen=True)
class DimsePolicy:
    qr_aes: frozenset[str]
    store_aes: frozenset[str]
    destinations: dict[str, tuple[str, int]]

    @classmethod
    def from_settings(cls, s: Settings) -> DimsePolicy:
        return cls(ae_list(s.mdc_dimse_qr_aes), ae_list(s.mdc_dimse_store_aes),
                   parse_destinations(s.mdc_dimse_destinations))

    def calling_aes(self) -> list[str]:
        """What pynetdicom's `require_calling_aet` gets: the union, or NOBODY."""
        return sorted(self.qr_aes | self.store_aes) or [NOBODY]

    def may_query(self, calling_ae: str) -> bool:
        return calling_ae.strip() in self.qr_aes

    def may_store(self, calling_ae: str) -> bool:
        return calling_ae.strip() in self.store_aes


def log_path(s: Settings) -> Path:
    return s.mdc_dimse_log or s.path("logs", "scp.log")


def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """Server TLS context, or None when no certificate is configured."""
    if not s.mdc_dimse_tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(s.mdc_dimse_tls_cert, s.mdc_dimse_tls_key)
    if s.mdc_dimse_tls_ca:
        ctx.load_verify_locations(s.mdc_dimse_tls_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def parse_destinations(text: str) -> dict[str, tuple[str, int]]:
    """`AE=host:port,AE2=host:port` -> {AE: (host, port)}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        ae, _, addr = part.partition("=")
        host, _, port = addr.rpartition(":")
        if not ae or not host or not port.isdigit():
            raise ValueError(f"bad C-MOVE destination {part!r}: want AE=host:port")
        out[ae.strip()] = (host.strip(), int(port))
    return out
