"""`pacs scp`: the MDC's DICOM service - Verification, Query/Retrieve, and Storage of objects
that are already de-identified (`ingest.py`).

Who may associate is decided at the A-ASSOCIATE-RQ (`Handlers.admit`, EVT_REQUESTED) by
`config.DimsePolicy.refusal`: the called AE must be ours, the calling AE allow-listed for the
peer's source address, and a peer off loopback must come over TLS with a verified client
certificate; a refusal is an A-ASSOCIATE-RJ with its PS3.8 reason (`config.REJECTIONS`), sent
before any presentation context is negotiated. Within an association, an AE listed only for
the other service is answered 0x0124 "Refused: Not Authorized" (PS3.7 C.5) with a log line.
Every association, C-FIND, C-GET and C-MOVE is audited (`dimse_audit`).
Handlers are thin: storage goes to `ingest.Ingestor`, queries and retrieves to `query`.
Every failure becomes a DICOM status here, with a log line naming what failed (no PHI: only
de-identified UIDs, AE titles and exception types are logged); each line carries the
association's id, calling AE, peer and operation (`scp_logging`). C-GET / C-MOVE send every
readable object and report each unreadable one as a failed sub-operation (`Handlers._send`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, build_context, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pacs_hdfs import metrics
from pacs_hdfs.dicom import query
from pacs_hdfs.dicom.config import REJECTIONS, DimsePolicy, Peer
from pacs_hdfs.dicom.dimse_audit import DimseAudit, Operation, association_peer
from pacs_hdfs.dicom.commit import STATUS
from pacs_hdfs.dicom.ingest import Ingestor
from pacs_hdfs.dicom.part10 import TRANSFER_SYNTAXES, UNCOMPRESSED
from pacs_hdfs.dicom.scp_logging import (notification_handlers, operation,
                                         sub_association_handlers)
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import attributes, instance

log = logging.getLogger(__name__)

QR_MODELS = (PatientRootQueryRetrieveInformationModelFind,
             StudyRootQueryRetrieveInformationModelFind,
             PatientRootQueryRetrieveInformationModelMove,
             StudyRootQueryRetrieveInformationModelMove,
             PatientRootQueryRetrieveInformationModelGet,
             StudyRootQueryRetrieveInformationModelGet)

#: Q/R failure statuses, as data (PS3.4 C.4.1.1.4 for C-FIND, C.4.2.1.5 / C.4.3.1.4 for C-MOVE /
#: C-GET: A700 is C-FIND's "out of resources"; a retrieve that cannot count its matches
#: answers A701).
QR_STATUS = {"not_authorized": 0x0124, "bad_identifier": 0xA900, "storage_unavailable": 0xA700,
             "cannot_count_matches": 0xA701, "unknown_destination": 0xA801,
             "cannot_process": 0xC000}


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


def unsendable(sop_uid: str) -> Dataset:
    """What a retrieve yields for an object we cannot read: a data set that carries only its
    SOP Instance UID. pynetdicom's `send_c_store` refuses it before anything goes on the wire
    (it raises AttributeError for a data set without SOP Class UID, as documented), and
    `_get_scp` / `_move_scp` count a C-STORE that raised as a failed sub-operation and add the
    data set's SOP Instance UID to the Failed SOP Instance UID List. See `Handlers._send`."""
    ds = Dataset()
    ds.SOPInstanceUID = sop_uid
    return ds


def _calling_ae(event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def _peer_address(event) -> str:
    return str(event.assoc.requestor.address)


def reject(assoc, key: str) -> None:
    """Answer an A-ASSOCIATE-RQ with the A-ASSOCIATE-RJ of `config.REJECTIONS[key]`, from an
    EVT_REQUESTED handler, the way pynetdicom rejects on its own (send, EVT_REJECTED, kill);
    pynetdicom then skips its negotiation and closes the connection."""
    r = REJECTIONS[key]
    assoc.acse.send_reject(r.result, r.source, r.diagnostic)
    assoc.is_rejected = True
    evt.trigger(assoc, evt.EVT_REJECTED, {})
    assoc.kill()


def _level(event) -> str:
    try:
        return query.level_of(event.identifier)
    except Exception:  # noqa: BLE001 - only used in log lines
        return "?"


@dataclass
class Handlers:
    ingestor: Ingestor
    hbase: object
    hdfs: object
    policy: DimsePolicy
    audit: DimseAudit | None = None

    @property
    def destinations(self) -> dict[str, tuple[str, int]]:
        return self.policy.destinations

    def admit(self, event) -> None:
        """EVT_REQUESTED: refuse the association here unless the policy admits it. Fails
        closed: an error while checking is a refusal too."""
        assoc = event.assoc
        peer = None
        try:
            peer = association_peer(assoc)
            key = self.policy.refusal(peer, str(assoc.acceptor.ae_title))
        except Exception as e:  # noqa: BLE001 - never admit on a bug
            log.error("association check failed, refusing: %s", type(e).__name__)
            key = "error"
        if peer is None:
            peer = Peer("?", "?", str(getattr(assoc.requestor, "address", "?")))
        if self.audit is not None:
            try:
                self.audit.requested(assoc, peer, key)
            except Exception as e:  # noqa: BLE001 - the verdict stands whatever the audit does
                log.error("association audit failed: %s", type(e).__name__)
        if key is None:
            return
        log.warning("association refused: %s (called AE %r, from %s, %s)", REJECTIONS[key].text,
                    peer.called_ae, peer.address,
                    f"TLS client {peer.tls_subject}" if peer.tls_subject
                    else "TLS without client certificate" if peer.tls else "no TLS")
        reject(assoc, key)

    def _begin(self, event, op: str) -> Operation:
        """The audit record of this Q/R request (registered when auditing)."""
        if self.audit is not None:
            return self.audit.begin(event, op, _level(event))
        return Operation(op, 0, "", b"", "", _level(event))

    def echo(self, event) -> int:
        return 0x0000

    def store(self, event):
        with metrics.dicom_store("scp") as answer:
            response = self._store(event)
            answer["status"] = response if isinstance(response, int) else int(response.Status)
            return response

    def _store(self, event):
        try:
            calling = _calling_ae(event)
            if not self.policy.may_store(calling, _peer_address(event)):
                log.warning("C-STORE refused (0x%04X): calling AE %r may not store",
                            QR_STATUS["not_authorized"], calling)
                return _failure(QR_STATUS["not_authorized"], "Refused: not authorized")
            outcome = self.ingestor.store(event.encoded_dataset(include_meta=True), calling)
        except Exception as e:  # noqa: BLE001 - a bug must not kill the association or log PHI
            log.error("C-STORE failed unexpectedly, answered 0x%04X: %s", STATUS["cannot_process"][0],
                      type(e).__name__)
            return _failure(STATUS["cannot_process"][0], STATUS["cannot_process"][1])
        if outcome.status:
            log.warning("C-STORE of %s answered 0x%04X: %s", outcome.sop_uid or "(no UID)",
                        outcome.status, outcome.comment)
            return _failure(outcome.status, outcome.comment)
        if outcome.quarantine:
            log.info("stored %s in quarantine: %s", outcome.sop_uid, outcome.quarantine)
        return 0x0000

    def _matches(self, event, what: str):
        """The query's results, or a failure status (logged)."""
        answer = query.find if what == "find" else query.instance_locations
        op = f"C-{what.upper()}"
        calling = _calling_ae(event)
        if not self.policy.may_query(calling, _peer_address(event)):
            log.warning("%s refused (0x%04X): calling AE %r may not query or retrieve", op,
                        QR_STATUS["not_authorized"], calling)
            return None, QR_STATUS["not_authorized"]
        try:
            return list(answer(self.hbase, event.identifier)), None
        except query.QueryError as e:
            log.warning("%s refused (0x%04X): %s", op, QR_STATUS["bad_identifier"], e)
            return None, QR_STATUS["bad_identifier"]
        except StorageError as e:
            status = QR_STATUS["storage_unavailable" if what == "find" else "cannot_count_matches"]
            log.error("%s failed (0x%04X): index unavailable: %s", op, status, e)
            return None, status
        except Exception as e:  # noqa: BLE001 - e.g. an undecodable identifier
            log.error("%s failed (0x%04X): %s", op, QR_STATUS["cannot_process"], type(e).__name__)
            return None, QR_STATUS["cannot_process"]

    def find(self, event):
        audited = self._begin(event, "C-FIND")
        results, status = self._matches(event, "find")
        if status is not None:
            yield status, None
            return
        for ds in results:
            if event.is_cancelled:
                log.info("C-FIND cancelled by the peer")
                yield 0xFE00, None
                return
            audited.matches += 1
            audited.add(str(ds.get("StudyInstanceUID", "") or ""), "",
                        str(ds.get("PatientID", "") or ""), str(ds.get("PatientName", "") or ""))
            yield 0xFF00, ds
        log.info("C-FIND %s: %d matches", _level(event), len(results))

    def _send(self, event, op: str, stored: list[query.Stored]):
        """The (status, data set) pairs of a C-GET / C-MOVE after its sub-operation count.

        Every object that can be read is sent; one that cannot (StorageError: bytes missing,
        short, or not matching the indexed sha256; or a parse error) is logged and becomes a
        failed sub-operation, and the rest are still sent.

        How the failure is reported (pynetdicom 3, `service_class._get_scp` / `_move_scp`):
        yielding a Failure or Warning status mid-stream would end the whole operation at once,
        counting every remaining object as failed, and a Pending status with `None` is ignored
        without counting anything. So for an unreadable object we yield Pending with
        `unsendable(uid)`: pynetdicom's C-STORE of it fails before any byte is sent, and
        pynetdicom counts it like a sub-operation the peer refused: Number of Failed
        Sub-operations, and the UID in the Failed SOP Instance UID List (0008,0058). Its final
        response then carries the PS3.4 status (C.4.2.1.4 / C.4.3.1.4, C.4.2.3 / C.4.3.3):
        0x0000 when every sub-operation completed, 0xB000 "sub-operations complete, one or
        more failures" with the Failed SOP Instance UID List when some failed, 0xA702 "unable to
        perform sub-operations" when all failed - counting our unreadable objects and the
        peer's refusals alike, which a final status of our own could not do.
        """
        unreadable = 0
        for item in stored:
            if event.is_cancelled:
                log.info("%s cancelled by the peer after %d of %d", op,
                         stored.index(item), len(stored))
                yield 0xFE00, None
                return
            try:
                ds = query.load(self.hbase, self.hdfs, item)
            except StorageError as e:
                unreadable += 1
                log.error("%s: instance %s unreadable, counted as a failed sub-operation "
                          "(pynetdicom then logs a C-STORE it could not send): StorageError: %s",
                          op, item.sop_uid, str(e)[:300])
                yield 0xFF00, unsendable(item.sop_uid)
                continue
            except Exception as e:  # noqa: BLE001 - unparseable bytes: fail this one object only
                unreadable += 1
                log.error("%s: instance %s unreadable, counted as a failed sub-operation "
                          "(pynetdicom then logs a C-STORE it could not send): %s",
                          op, item.sop_uid, type(e).__name__)
                yield 0xFF00, unsendable(item.sop_uid)
                continue
            yield 0xFF00, ds
        log.info("%s %s: %d matched, %d read and offered to the peer, %d unreadable", op,
                 _level(event), len(stored), len(stored) - unreadable, unreadable)

    def move(self, event):
        audited = self._begin(event, "C-MOVE")
        stored, status = self._matches(event, "move")
        destination = self.destinations.get(event.move_destination.strip())
        audited.destination = (event.move_destination.strip(), *destination) \
            if destination else None
        _retrieved(audited, stored)
        if destination is None:
            log.warning("C-MOVE refused (0x%04X): unknown destination AE %r",
                        QR_STATUS["unknown_destination"], event.move_destination.strip())
            yield None, None
            return
        if status is not None:
            yield destination
            yield 1
            yield status, None
            return
        contexts = move_contexts(stored)
        yield destination[0], destination[1], {"contexts": contexts,
                                               "evt_handlers": sub_association_handlers()}
        yield len(stored)
        yield from self._send(event, "C-MOVE", stored)

    def get(self, event):
        audited = self._begin(event, "C-GET")
        stored, status = self._matches(event, "get")
        _retrieved(audited, stored)
        if status is not None:
            yield 1
            yield status, None
            return
        yield len(stored)
        yield from self._send(event, "C-GET", stored)


def _retrieved(audited: Operation, stored: list[query.Stored] | None) -> None:
    """What a C-GET / C-MOVE matched, for its audit record: studies (from the instance row
    keys, study\0series\0SOP), SOP classes, and the (pseudonymous) patients."""
    for item in stored or ():
        audited.matches += 1
        audited.add(instance.study_key_of(item.key).decode(errors="replace"), item.sop_class,
                    attributes.value(item.row, "PatientID", errors="replace"),
                    attributes.value(item.row, "PatientName", errors="replace"))


def move_contexts(stored: list[query.Stored]) -> list:
    """Presentation contexts for a C-MOVE sub-association: each SOP class in its stored
    transfer syntax (plus the uncompressed ones), at most 128."""
    wanted: dict[str, list[str]] = {}
    for s in stored:
        ts = wanted.setdefault(s.sop_class, list(UNCOMPRESSED))
        if s.transfer_syntax and s.transfer_syntax not in ts:
            ts.insert(0, s.transfer_syntax)
    return [build_context(cls, ts) for cls, ts in list(wanted.items())[:128]]


def build_ae(ae_title: str, policy: DimsePolicy) -> AE:
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = 0  # unlimited: fewer, larger PDUs on the store path
    # second line of defence behind Handlers.admit (which has already answered by then)
    ae.require_calling_aet = policy.calling_aes()
    ae.require_called_aet = True
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    for cx in AllStoragePresentationContexts:  # Storage SCP, and the C-GET SCP's sub-ops
        ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES,
                                 scp_role=True, scu_role=False)
    for model in QR_MODELS:
        ae.add_supported_context(model)
    ae.network_timeout = 60
    ae.dimse_timeout = 120
    ae.maximum_associations = 32
    return ae


def event_handlers(h: Handlers) -> list:
    """The service handlers, each run with its operation in the log context; the association
    notifications that give every log line its association id; then the association check
    (after the "requested" line, so a refusal is logged under its association) and the
    audit's notifications."""
    handlers = [(evt.EVT_C_ECHO, operation("C-ECHO", h.echo)),
                (evt.EVT_C_STORE, operation("C-STORE", h.store)),
                (evt.EVT_C_FIND, operation("C-FIND", h.find)),
                (evt.EVT_C_MOVE, operation("C-MOVE", h.move)),
                (evt.EVT_C_GET, operation("C-GET", h.get))] + notification_handlers()
    handlers.append((evt.EVT_REQUESTED, h.admit))
    if h.audit is not None:
        a = h.audit
        handlers += [(evt.EVT_ACCEPTED, a.accepted), (evt.EVT_REJECTED, a.rejected),
                     (evt.EVT_RELEASED, lambda e: a.ended(e, aborted=False)),
                     (evt.EVT_ABORTED, lambda e: a.ended(e, aborted=True)),
                     (evt.EVT_DIMSE_SENT, a.sent)]
    return handlers
