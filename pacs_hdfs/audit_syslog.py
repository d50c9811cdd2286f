"""Audit messages to syslog, as RFC 5424 messages (the transport of IHE ATNA / PS3.15 A.5).

Target (a setting such as `mdc_dimse_audit_syslog`):

| target | transport |
|---|---|
| `udp://host:port` | one datagram per message (RFC 5426) |
| `tcp://host:port` | octet-counting framing, `LEN SP MSG` (RFC 6587 3.4.1, as RFC 5425 on TLS) |
| `unix:///dev/log` | one datagram per message on a local socket (rsyslog, syslog-ng, journald) |

The message: PRI 85 (facility 10 security/authorization, severity 5 notice), version 1, UTC
timestamp, host name, APP-NAME, PROCID, MSGID `IHE+RFC-3881`, no structured data, then the XML
as UTF-8 with its BOM. Sending never raises: the audit trail in HBase is the record, syslog a
copy, so a syslog that is down costs a warning in the log and nothing else. Each send opens its
own socket (audit events are few: one per association and per query/retrieve), connected to
the target, so no unconnected socket is left listening.
"""
from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timezone
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

FACILITY_AUTHPRIV, SEVERITY_NOTICE = 10, 5
MSGID = "IHE+RFC-3881"
BOM = b"\xef\xbb\xbf"
TIMEOUT_S = 2.0
SCHEMES = {"udp": socket.SOCK_DGRAM, "tcp": socket.SOCK_STREAM, "unix": socket.SOCK_DGRAM}


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most `limit` long, or "-"."""
    text = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def format_message(xml: bytes, app_name: str, when: datetime | None = None,
                   host: str | None = None, procid: int | None = None) -> bytes:
    """One RFC 5424 message carrying `xml`."""
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    header = " ".join([
        f"<{FACILITY_AUTHPRIV * 8 + SEVERITY_NOTICE}>1",
        when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        _field(host or socket.gethostname(), 255),
        _field(app_name, 48),
        _field(str(procid if procid is not None else os.getpid()), 128),
        MSGID,
        "-",  # no STRUCTURED-DATA
    ])
    return header.encode("ascii") + b" " + BOM + xml


def parse_target(target: str) -> tuple[str, object]:
    """`udp://h:p` -> ("udp", (h, p)); `unix:///path` -> ("unix", "/path")."""
    parts = urlsplit(target)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"syslog target {target!r}: want udp://host:port, tcp://host:port "
                         "or unix:///path")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"syslog target {target!r}: no socket path")
        return "unix", parts.path
    if not parts.hostname or not parts.port:
        raise ValueError(f"syslog target {target!r}: want host and port")
    return parts.scheme, (parts.hostname, parts.port)


def send(target: str, message: bytes) -> bool:
    """Send one formatted message; False (and a warning) when it could not be sent."""
    try:
        scheme, address = parse_target(target)
        if scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, SCHEMES[scheme])
        else:
            family = socket.getaddrinfo(*address, type=SCHEMES[scheme])[0][0]
            sock = socket.socket(family, SCHEMES[scheme])
        with sock:
            sock.settimeout(TIMEOUT_S)
            sock.connect(address)
            if scheme == "tcp":
                sock.sendall(str(len(message)).encode() + b" " + message)
            else:
                sock.send(message)
        return True
    except (OSError, ValueError) as e:
        log.warning("audit message not sent to syslog %s: %s: %s", target, type(e).__name__, e)
        return False
