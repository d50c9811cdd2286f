"""The MDC DIMSE service's policy, read from the one `Settings` (`mdc_dimse_*`): who may
associate, from where and over what, for what; where C-MOVE may send; the DICOM TLS context.

Secure by default: it binds 127.0.0.1, and with both allow-lists empty nobody can associate.

Allow-lists (`mdc_dimse_qr_aes` for Query/Retrieve, `mdc_dimse_store_aes` for C-STORE of
de-identified objects) are comma-separated entries, each a calling AE title bound to where it
may call from:

| entry | admits the calling AE from |
|---|---|
| `FINDSCU` | loopback only (127.0.0.0/8, ::1): the same host |
| `WS1@10.0.0.5` | that address only |
| `WS2@10.0.0.0/24` | that network |

The AE title ends at the last `@`. A peer that is not on loopback must, in addition, come over
the TLS listener (`mdc_dimse_tls_*`) with a client certificate signed by `mdc_dimse_tls_ca`.

`DimsePolicy.refusal` decides at A-ASSOCIATE-RQ, before any presentation context is negotiated;
a refusal is a key of `REJECTIONS`, which gives the A-ASSOCIATE-RJ (PS3.8 9.3.4: result,
source, reason) and what the audit trail records. The checks run in `CHECKS` order, so a peer
learns no more than the first thing wrong with its request.
"""
from __future__ import annotations

import ipaddress
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from pacs_hdfs.hardening import harden
from pacs_hdfs.settings import Settings

#: The only member of pynetdicom's calling-AE list when nobody is allowed (an empty list would
#: allow all, and pynetdicom accepts only valid AE titles): 16 random hex characters chosen per
#: process and never logged, which no peer can be expected to present.
NOBODY = secrets.token_hex(8).upper()

PERMANENT, TRANSIENT = 0x01, 0x02
SERVICE_USER = 0x01


@dataclass(frozen=True)
class Rejection:
    """One A-ASSOCIATE-RJ: result, source, reason/diag. (PS3.8 Table 9-21) and its meaning."""
    result: int
    source: int
    diagnostic: int
    text: str
    #: "user" = an identity the service does not know (PS3.15 A.5.3.11 User Authentication,
    #: failed login), "node" = a node failing authentication (A.5.3.13 Security Alert)
    audit: str


REJECTIONS: dict[str, Rejection] = {
    "called_ae": Rejection(PERMANENT, SERVICE_USER, 0x07, "called AE title not recognized",
                           "user"),
    "calling_ae": Rejection(PERMANENT, SERVICE_USER, 0x03, "calling AE title not recognized",
                            "user"),
    # a known AE from an address its entries do not name: to the peer, an unknown AE
    "source": Rejection(PERMANENT, SERVICE_USER, 0x03,
                        "calling AE title not recognized from this address", "node"),
    # PS3.8 has no reason for "use TLS"; the log and the audit trail say it
    "tls_required": Rejection(PERMANENT, SERVICE_USER, 0x01,
                              "no reason given (peer not on loopback, without a verified TLS "
                              "client certificate)", "node"),
    "error": Rejection(PERMANENT, SERVICE_USER, 0x01, "no reason given (policy check failed)",
                       "node"),
}

#: A-ASSOCIATE-RJ that pynetdicom sends on its own, (source, diagnostic) -> text, for the log
#: and the audit trail of associations it refuses before or after our check
PYNETDICOM_REJECTIONS: dict[tuple[int, int], str] = {
    (0x01, 0x01): "no reason given",
    (0x01, 0x02): "application context name not supported",
    (0x01, 0x03): "calling AE title not recognized",
    (0x01, 0x07): "called AE title not recognized",
    (0x02, 0x01): "no reason given (ACSE)",
    (0x02, 0x02): "protocol version not supported",
    (0x03, 0x01): "temporary congestion",
    (0x03, 0x02): "local limit exceeded (too many associations)",
}


def rejection_text(source: int, diagnostic: int) -> str:
    return PYNETDICOM_REJECTIONS.get((source, diagnostic),
                                     f"source 0x{source:02X} reason 0x{diagnostic:02X}")


def ip_address_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's address; an IPv4-mapped IPv6 address (a dual-stack listener) as IPv4."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str) -> bool:
    ip = ip_address_of(address)
    return ip is not None and ip.is_loopback


@dataclass(frozen=True)
class Grant:
    """One allow-list entry: a calling AE title and where it may call from (None = loopback)."""
    ae: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    @classmethod
    def parse(cls, entry: str) -> Grant:
        ae, at, where = entry.strip().rpartition("@")
        if not at:
            return cls(entry.strip())
        try:
            network = ipaddress.ip_network(where.strip(), strict=False)
        except ValueError:
            raise ValueError(f"bad allow-list entry {entry!r}: want AE, AE@address or "
                             "AE@network/prefix") from None
        if not ae.strip():
            raise ValueError(f"bad allow-list entry {entry!r}: no AE title")
        return cls(ae.strip(), network)

    def admits_from(self, address: str) -> bool:
        ip = ip_address_of(address)
        if ip is None:
            return False
        if self.network is None:
            return ip.is_loopback
        return ip.version == self.network.version and ip in self.network

    def __str__(self) -> str:
        return self.ae if self.network is None else f"{self.ae}@{self.network}"


def grants(text: str) -> tuple[Grant, ...]:
    return tuple(Grant.parse(p) for p in text.split(",") if p.strip())


@dataclass(frozen=True)
class Peer:
    """Who asks for an association: from the A-ASSOCIATE-RQ and the transport."""
    calling_ae: str
    called_ae: str
    address: str
    port: int = 0
    tls: bool = False
    #: subject of the verified client certificate ("CN=…,OU=…,O=…"), "" without one
    tls_subject: str = ""

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address)


@dataclass(frozen=True)
class DimsePolicy:
    """Who may do what. `qr_aes` / `store_aes` take grants or plain AE titles (loopback)."""
    qr_aes: tuple[Grant, ...] | frozenset
    store_aes: tuple[Grant, ...] | frozenset
    destinations: dict[str, tuple[str, int]]

    def __post_init__(self):
        for name in ("qr_aes", "store_aes"):
            items = getattr(self, name)
            object.__setattr__(self, name, tuple(
                g if isinstance(g, Grant) else Grant.parse(g) for g in sorted(items, key=str)))

    @classmethod
    def from_settings(cls, s: Settings) -> DimsePolicy:
        return cls(grants(s.mdc_dimse_qr_aes), grants(s.mdc_dimse_store_aes),
                   parse_destinations(s.mdc_dimse_destinations))

    @property
    def titles(self) -> frozenset[str]:
        return frozenset(g.ae for g in self.qr_aes + self.store_aes)

    def calling_aes(self) -> list[str]:
        """What pynetdicom's `require_calling_aet` gets (a second check after `refusal`): the
        AE titles of both lists, or NOBODY."""
        return sorted(self.titles) or [NOBODY]

    def refusal(self, peer: Peer, our_ae: str) -> str | None:
        """Why this association is refused (a key of REJECTIONS), or None to go on."""
        for key, refused in CHECKS:
            if refused(self, peer, our_ae):
                return key
        return None

    def may_query(self, calling_ae: str, address: str = "127.0.0.1") -> bool:
        return _admitted(self.qr_aes, calling_ae, address)

    def may_store(self, calling_ae: str, address: str = "127.0.0.1") -> bool:
        return _admitted(self.store_aes, calling_ae, address)


def _admitted(entries: tuple[Grant, ...], calling_ae: str, address: str) -> bool:
    ae = calling_ae.strip()
    return any(g.ae == ae and g.admits_from(address) for g in entries)


#: The association checks, in order: (REJECTIONS key, refused(policy, peer, our AE title)).
CHECKS = (
    ("called_ae", lambda p, peer, ours: peer.called_ae.strip() != ours.strip()),
    ("calling_ae", lambda p, peer, ours: peer.calling_ae.strip() not in p.titles),
    ("source", lambda p, peer, ours: not (p.may_query(peer.calling_ae, peer.address)
                                          or p.may_store(peer.calling_ae, peer.address))),
    ("tls_required", lambda p, peer, ours: not peer.loopback and not peer.tls_subject),
)


def log_path(s: Settings) -> Path:
    return s.mdc_dimse_log or s.path("logs", "scp.log")


class LazyHandshakeContext(ssl.SSLContext):
    """A server context whose sockets do their handshake on first read, in the association's
    own thread. pynetdicom wraps each accepted socket in the accept loop; with the default
    handshake-on-wrap, one peer that connects and sends nothing would hold every other
    connection back (the accepted socket is blocking)."""

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    suppress_ragged_eofs=True, server_hostname=None, session=None):
        return super().wrap_socket(sock, server_side=server_side, do_handshake_on_connect=False,
                                   suppress_ragged_eofs=suppress_ragged_eofs,
                                   server_hostname=server_hostname, session=session)


def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """Server TLS context of the TLS listener, or None when no certificate is configured:
    the project's TLS policy (`pacs_hdfs.hardening.harden`: TLS 1.2+, AEAD suites only); with
    `mdc_dimse_tls_ca`, a client certificate it signed is required for the handshake."""
    if not s.mdc_dimse_tls_cert:
        return None
    ctx = harden(LazyHandshakeContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_cert_chain(s.mdc_dimse_tls_cert, s.mdc_dimse_tls_key)
    if s.mdc_dimse_tls_ca:
        ctx.load_verify_locations(s.mdc_dimse_tls_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def certificate_subject(cert: dict | None) -> str:
    """`ssl.SSLSocket.getpeercert()` subject as "CN=…,OU=…,O=…" (most specific first)."""
    short = {"commonName": "CN", "organizationalUnitName": "OU", "organizationName": "O",
             "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}
    parts = [f"{short.get(k, k)}={v}" for rdn in (cert or {}).get("subject", ()) for k, v in rdn]
    return ",".join(reversed(parts))


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
