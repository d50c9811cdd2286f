"""The MDC DIMSE service's audit: every association (accepted, rejected, ended), C-FIND, C-GET
and C-MOVE, and the service's start and stop, as a DICOM audit message (PS3.15 A.5, built by
`pacs_hdfs.audit_messages`), recorded in the audit trail the portal shows
(`pacs_hdfs.audit.record`) and, when `mdc_dimse_audit_syslog` names a target, sent to syslog.

| what | trail action | EventID / EventTypeCode (PS3.15 A.5.3) | outcome |
|---|---|---|---|
| service start / stop | dicom-service-start / -stop | 110100 Application Activity / 110120 Start, 110121 Stop | 0 |
| association accepted | dicom-association | 110114 User Authentication / 110122 Login | 0 |
| rejected: unknown calling or called AE | dicom-association-rejected | 110114 User Authentication / 110122 Login | 4 |
| rejected: wrong source address, no TLS client certificate, policy error | dicom-association-rejected | 110113 Security Alert / 110126 Node Authentication | 4 |
| association released / aborted | dicom-association-end | 110114 User Authentication / 110123 Logout | 0 / 4 |
| C-FIND | dicom-find | 110112 Query (E) | `STATUS_OUTCOMES` |
| C-GET / C-MOVE | dicom-get / dicom-move | 110104 DICOM Instances Transferred (R) | `STATUS_OUTCOMES` |

Who: the trail's user is `ae:<calling AE>`; the message's active participants are the peer
(calling AE, its IP address, the TLS client certificate's subject as UserName) and this service
(AE title, process id, its address), with Source / Destination roles for transfers (a C-MOVE
adds its destination AE). What: the query (SOP class, the identifier as sent, its transfer
syntax, level), the studies (Study Instance UID, SOP classes and instance counts, marked
Anonymized: the MDC holds de-identified objects only) and their (pseudonymous) patients. How
many: matches, and for retrieves the final sub-operation counts (completed, failed, warning).
The trail event's details carry the same as plain fields plus the XML (`xml`).

When: a Q/R operation is recorded when its final response is sent (EVT_DIMSE_SENT), so the
counts are pynetdicom's own; an operation still open when the association ends (abort) is
recorded then, with outcome 8 and what is known. Recording never breaks the service: a failed
write is logged with the event's summary.
"""
from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from pacs_hdfs import audit_messages as am
from pacs_hdfs import audit_syslog
from pacs_hdfs.dicom.config import REJECTIONS, Peer, ip_address_of, rejection_text

log = logging.getLogger(__name__)

#: at most this many studies are named in one message (a C-FIND may match thousands); the
#: total is always given
MAX_STUDIES = 500

#: the audit trail's action names, per event (the module's table)
TRAIL_ACTIONS = {"start": "dicom-service-start", "stop": "dicom-service-stop",
                 "accepted": "dicom-association", "rejected": "dicom-association-rejected",
                 "ended": "dicom-association-end",
                 "C-FIND": "dicom-find", "C-GET": "dicom-get", "C-MOVE": "dicom-move"}
#: final DIMSE status class -> EventOutcomeIndicator (PS3.7 C.4 status classes)
STATUS_OUTCOMES = (
    (lambda s: s == 0x0000, "success"),
    (lambda s: s in (0xFE00, 0xB000) or 0xB000 <= s <= 0xBFFF, "minor_failure"),
    (lambda s: True, "serious_failure"),
)
#: rejection kind (config.Rejection.audit) -> (EventID, EventTypeCode)
REJECTION_EVENTS = {"user": ("user_authentication", "login"),
                    "node": ("security_alert", "node_authentication")}

#: (user, action, target, details) -> None: where events go (`pacs_hdfs.audit.record`)
Sink = Callable[[str, str, str, dict], None]


def outcome_of(status: int) -> str:
    return next(o for test, o in STATUS_OUTCOMES if test(status))


@dataclass
class Operation:
    """One Q/R request being answered: what was asked and what was found."""
    op: str                               # C-FIND | C-GET | C-MOVE
    message_id: int
    sop_class: str
    identifier: bytes
    transfer_syntax: str
    level: str = ""
    destination: tuple[str, str, int] | None = None   # C-MOVE: (AE, host, port)
    matches: int = 0
    studies: dict[str, dict[str, int]] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)

    def add(self, study: str, sop_class: str = "", patient_id: str = "",
            patient_name: str = "") -> None:
        classes = self.studies.setdefault(study, {}) if study else None
        if classes is not None and sop_class:
            classes[sop_class] = classes.get(sop_class, 0) + 1
        if patient_id:
            self.patients.setdefault(patient_id, patient_name)


@dataclass
class _Association:
    id: str
    peer: Peer
    local: str
    rejection: str = ""                   # key of REJECTIONS when our check refused it
    open: dict[int, Operation] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)


def association_peer(assoc) -> Peer:
    """The peer of an association being requested: AE titles from the A-ASSOCIATE-RQ,
    address from the socket, and the verified TLS client certificate's subject if any."""
    import ssl

    from pacs_hdfs.dicom.config import certificate_subject
    rq = assoc.requestor.primitive
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    tls = isinstance(sock, ssl.SSLSocket)
    subject = ""
    if tls:
        try:
            subject = certificate_subject(sock.getpeercert())
        except (ValueError, OSError):   # no handshake: no verified certificate
            subject = ""
    return Peer(str(rq.calling_ae_title).strip(), str(rq.called_ae_title).strip(),
                str(assoc.requestor.address), int(assoc.requestor.port or 0), tls, subject)


def _local_address(assoc) -> str:
    try:
        return assoc.dul.socket.socket.getsockname()[0]
    except (AttributeError, OSError, IndexError):
        return ""


class DimseAudit:
    """Builds and records the service's audit events (see the module's table)."""

    def __init__(self, ae_title: str, sink: Sink | None, syslog_target: str = "",
                 source_id: str | None = None, association_id: Callable[[object], str] = None):
        from pacs_hdfs.dicom.scp_logging import association_id as default_id
        self.ae_title = ae_title
        self.sink = sink
        self.syslog_target = syslog_target
        self.source_id = source_id or f"{ae_title}@{socket.gethostname()}"
        self.association_id = association_id or default_id
        self._state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # --- per association ----------------------------------------------------------------------
    def _get(self, assoc) -> _Association:
        with self._lock:
            state = self._state.get(assoc)
            if state is None:
                state = self._state[assoc] = _Association(
                    self.association_id(assoc), association_peer(assoc), _local_address(assoc))
            return state

    def requested(self, assoc, peer: Peer, rejection: str | None) -> None:
        """Our check's verdict on an A-ASSOCIATE-RQ (before pynetdicom answers it)."""
        with self._lock:
            self._state[assoc] = _Association(self.association_id(assoc), peer,
                                              _local_address(assoc), rejection or "")

    def accepted(self, event) -> None:
        a = self._get(event.assoc)
        self._emit(a, TRAIL_ACTIONS["accepted"], f"association {a.id}",
                   am.Event("user_authentication", "execute", "success", ("login",)),
                   self._participants(a), [],
                   {"contexts": len(event.assoc.accepted_contexts)})

    def rejected(self, event) -> None:
        a = self._get(event.assoc)
        rsd = getattr(event.assoc.acceptor, "primitive", None)
        result, source, diagnostic = (getattr(rsd, "result", 0), getattr(rsd, "result_source", 0),
                                      getattr(rsd, "diagnostic", 0))
        ours = REJECTIONS.get(a.rejection)
        reason = ours.text if ours else rejection_text(source or 0, diagnostic or 0)
        kind = ours.audit if ours else "user"
        event_id, event_type = REJECTION_EVENTS[kind]
        node = [am.ParticipantObject(a.peer.address or "?", "node_id")] if kind == "node" else []
        self._emit(a, TRAIL_ACTIONS["rejected"], f"association {a.id}",
                   am.Event(event_id, "execute", "minor_failure", (event_type,), reason),
                   self._participants(a), node,
                   {"reason": reason, "rule": a.rejection or "pynetdicom",
                    "result": result, "source": source, "diagnostic": diagnostic})

    def ended(self, event, aborted: bool) -> None:
        a = self._get(event.assoc)
        for operation in list(a.open.values()):
            self._operation(a, operation, None, {})
        a.open.clear()
        how = "aborted" if aborted else "released"
        self._emit(a, TRAIL_ACTIONS["ended"], f"association {a.id}",
                   am.Event("user_authentication", "execute",
                            "minor_failure" if aborted else "success", ("logout",),
                            how if aborted else ""),
                   self._participants(a), [], {"ended": how, "operations": dict(a.done)})

    # --- Q/R operations -----------------------------------------------------------------------
    def begin(self, event, op: str, level: str,
              destination: tuple[str, str, int] | None = None) -> Operation:
        """Called by a Q/R handler when it starts; it then adds what it finds."""
        request = event.request
        ident = request.Identifier.getvalue() if request.Identifier is not None else b""
        operation = Operation(op, int(request.MessageID), str(request.AffectedSOPClassUID or ""),
                              ident, str(getattr(event.context, "transfer_syntax", "") or ""),
                              level, destination)
        a = self._get(event.assoc)
        with self._lock:
            a.open[operation.message_id] = operation
        return operation

    def sent(self, event) -> None:
        """EVT_DIMSE_SENT: a final C-FIND / C-GET / C-MOVE response records its operation."""
        msg = event.message
        if type(msg).__name__ not in ("C_FIND_RSP", "C_GET_RSP", "C_MOVE_RSP"):
            return
        cs = msg.command_set
        status = int(getattr(cs, "Status", 0) or 0)
        if status in (0xFF00, 0xFF01):
            return
        a = self._get(event.assoc)
        with self._lock:
            operation = a.open.pop(int(getattr(cs, "MessageIDBeingRespondedTo", -1)), None)
        if operation is not None:
            counts = {k: int(getattr(cs, f"NumberOf{k.title()}Suboperations", 0) or 0)
                      for k in ("completed", "failed", "warning")} \
                if operation.op != "C-FIND" else {}
            self._operation(a, operation, status, counts)

    def _operation(self, a: _Association, operation: Operation, status: int | None,
                   counts: dict) -> None:
        """Record one finished (status) or abandoned (None) Q/R operation."""
        a.done[operation.op] = a.done.get(operation.op, 0) + 1
        outcome = outcome_of(status) if status is not None else "serious_failure"
        description = "" if status == 0 else (
            f"final status 0x{status:04X}" if status is not None else "association ended first")
        studies = list(operation.studies.items())[:MAX_STUDIES]
        objects = [am.study(uid, classes, anonymized=True) for uid, classes in studies]
        objects += [am.patient(pid, name) for pid, name in
                    list(operation.patients.items())[:MAX_STUDIES]]
        details = {"level": operation.level, "matches": operation.matches,
                   "studies": [uid for uid, _ in studies],
                   "studies_total": len(operation.studies),
                   "status": f"0x{status:04X}" if status is not None else None, **counts}
        if operation.op == "C-FIND":
            objects.insert(0, am.query(operation.sop_class, operation.identifier,
                                       operation.transfer_syntax,
                                       (("QueryRetrieveLevel", operation.level.encode()),
                                        ("NumberOfMatches", str(operation.matches).encode()))))
            event = am.Event("query", "execute", outcome, (), description)
            participants = self._participants(a, peer_role="source", our_role="destination")
        else:
            event = am.Event("instances_transferred", "read", outcome, (), description)
            participants = self._transfer_participants(a, operation)
            if operation.destination:
                details["destination"] = "%s=%s:%d" % operation.destination
        self._emit(a, TRAIL_ACTIONS[operation.op], _target(operation), event,
                   participants, objects, details)

    # --- service ------------------------------------------------------------------------------
    def application(self, started: bool, address: str = "") -> None:
        """The service starting or stopping (110100 Application Activity)."""
        me = am.Participant(self.ae_title, False, "application", str(os.getpid()),
                            address=address if address not in ("", "0.0.0.0", "::") else "")
        launcher = am.Participant(_user(), True, "application_launcher")
        kind = "start" if started else "stop"
        msg = am.message(am.Event("application_activity", "execute", "success",
                                  (f"application_{kind}",)), [me, launcher], self.source_id)
        self._record("-", TRAIL_ACTIONS[kind], self.ae_title, msg, {"pid": os.getpid()})

    # --- building and recording ---------------------------------------------------------------
    def _participants(self, a: _Association, peer_role: str | None = None,
                      our_role: str | None = None) -> list[am.Participant]:
        return [am.Participant(a.peer.calling_ae or "?", True, peer_role,
                               user_name=a.peer.tls_subject, address=a.peer.address),
                am.Participant(self.ae_title, False, our_role, str(os.getpid()),
                               address=a.local)]

    def _transfer_participants(self, a: _Association, op: Operation) -> list[am.Participant]:
        """A.5.3.4: we are the source; the destination is the peer (C-GET) or the C-MOVE
        destination, and a C-MOVE's requestor is a third participant."""
        us = am.Participant(self.ae_title, False, "source", str(os.getpid()), address=a.local)
        if op.destination is None:
            return [us, am.Participant(a.peer.calling_ae or "?", True, "destination",
                                       user_name=a.peer.tls_subject, address=a.peer.address)]
        dest_ae, host, _port = op.destination
        return [us, am.Participant(dest_ae, False, "destination", address=_ip_or_empty(host)),
                am.Participant(a.peer.calling_ae or "?", True, None,
                               user_name=a.peer.tls_subject, address=a.peer.address)]

    def _emit(self, a: _Association, action: str, target: str, event: am.Event,
              participants: list[am.Participant], objects: list[am.ParticipantObject],
              details: dict) -> None:
        msg = am.message(event, participants, self.source_id, objects)
        who = {"association": a.id, "ae": a.peer.calling_ae, "called_ae": a.peer.called_ae,
               "address": a.peer.address, "port": a.peer.port, "tls": a.peer.tls,
               "tls_subject": a.peer.tls_subject, "outcome": am.OUTCOMES[event.outcome]}
        self._record(f"ae:{a.peer.calling_ae or '?'}", action, target, msg, {**who, **details})

    def _record(self, user: str, action: str, target: str, msg, details: dict) -> None:
        xml = am.to_bytes(msg)
        if self.sink is not None:
            try:
                self.sink(user, action, target, {**details, "xml": xml.decode()})
            except Exception as e:  # noqa: BLE001 - the service goes on; the log keeps the event
                log.error("audit event not recorded (%s: %s): %s %s %s %s", type(e).__name__,
                          str(e)[:200], user, action, target,
                          {k: v for k, v in details.items() if k != "studies"})
        if self.syslog_target:
            audit_syslog.send(self.syslog_target,
                              audit_syslog.format_message(xml, f"pacs-scp-{self.ae_title}"))


def _target(operation: Operation) -> str:
    uids = list(operation.studies)
    if not uids:
        return f"{operation.level or '?'} query, no study"
    more = f" (+{len(uids) - 1} more)" if len(uids) > 1 else ""
    return uids[0] + more


def _ip_or_empty(host: str) -> str:
    return host if ip_address_of(host) is not None else ""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
