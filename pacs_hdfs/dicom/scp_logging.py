"""The DICOM services' log (the MDC's `pacs scp` and the hospital's `pacs edge`): every line
once, as JSON (pacs_hdfs/logs.py), and every line written while an association is being served
tagged with that association.

Association context. pynetdicom serves each association in its own thread and calls our event
handlers in that thread, so a `ContextVar` set there is seen by every log call made while the
association is served, our handlers' generators included (they run in the thread that iterates
them). `on_requested` (EVT_REQUESTED) gives the association a short id and records the calling AE
title and the peer address; `operation()` wraps each service handler to add which operation is
running. `AssociationFilter` (on the handlers) sets the fields `assoc`, `ae`, `peer` and `op` of
each such line; pynetdicom's DUL threads and a C-MOVE's sub-association (linked at its
EVT_CONN_OPEN) are looked up by thread. Lines outside an association carry none. A rejected
association's line gives the A-ASSOCIATE-RJ sent (result, source, reason and its meaning); the
association id (`association_id`) is also what the audit trail records.

No PHI: only de-identified UIDs, AE titles, addresses and exception types are logged by us.
pynetdicom's own lines are kept from WARNING up (association aborts, failed sub-operations,
encoding failures: the failures the SCP used to swallow silently); `logs.RedactFilter` cuts its
tracebacks down to the exception type, since an exception message may quote a data value.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import logging
import os
import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

from pacs_hdfs import logs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssocInfo:
    id: str
    ae: str
    peer: str
    op: str = ""

    def fields(self) -> dict[str, str]:
        """The log fields of this association (`op` only while an operation runs)."""
        doc = {"assoc": self.id, "ae": self.ae, "peer": self.peer}
        return {**doc, "op": self.op} if self.op else doc


_current: ContextVar[AssocInfo | None] = ContextVar("pacs_scp_association", default=None)
_known: "weakref.WeakKeyDictionary[object, AssocInfo]" = weakref.WeakKeyDictionary()
_known_lock = threading.Lock()
_serial = itertools.count(1)
_prefix = f"{os.getpid() & 0xFFFF:04x}"


def _new_id() -> str:
    """Short and unique within the process (pid-derived prefix + a counter)."""
    return f"{_prefix}-{next(_serial)}"


def _describe(assoc) -> AssocInfo:
    """The association's info, created on first sight."""
    with _known_lock:
        try:
            info = _known.get(assoc)
        except TypeError:  # not weak-referenceable (a test double): describe, don't remember
            return _new_info(assoc)
        if info is None:
            info = _known[assoc] = _new_info(assoc)
        return info


def _new_info(assoc) -> AssocInfo:
    req = getattr(assoc, "requestor", None)
    # at EVT_REQUESTED only the A-ASSOCIATE-RQ primitive knows the calling AE title
    primitive = getattr(req, "primitive", None)
    ae = getattr(primitive, "calling_ae_title", None) or getattr(req, "ae_title", "")
    try:
        peer = f"{req.address}:{req.port}"
    except (AttributeError, ValueError):  # pynetdicom raises ValueError before it is known
        peer = "?"
    return AssocInfo(_new_id(), str(ae or "?").strip() or "?", peer)


def association_id(assoc) -> str:
    """The association's short id, as in its log lines (the audit trail records it too)."""
    return _describe(assoc).id


def _enter(event, op: str = "") -> None:
    assoc = getattr(event, "assoc", None)
    if assoc is None:
        return
    info = _describe(assoc)
    _current.set(replace(info, op=op) if op else info)


def on_requested(event) -> None:
    """EVT_REQUESTED: an A-ASSOCIATE-RQ arrived; from now on this thread's lines carry its id."""
    _enter(event)
    log.info("association requested (called AE %s, %d presentation contexts proposed)",
             str(getattr(event.assoc.acceptor, "ae_title", "")).strip() or "?",
             len(getattr(event.assoc.requestor, "requested_contexts", None) or []))


def on_rejected(event) -> None:
    """The A-ASSOCIATE-RJ as sent (ours, `config.REJECTIONS`, or pynetdicom's own)."""
    from pacs_hdfs.dicom.config import rejection_text
    _enter(event)
    rj = getattr(event.assoc.acceptor, "primitive", None)
    source, reason = getattr(rj, "result_source", None), getattr(rj, "diagnostic", None)
    if source is None or reason is None:
        log.warning("association rejected")
        return
    log.warning("association rejected (result 0x%02X, source 0x%02X, reason 0x%02X: %s)",
                getattr(rj, "result", 0) or 0, source, reason, rejection_text(source, reason))


def on_accepted(event) -> None:
    _enter(event)
    log.info("association accepted (%d presentation contexts accepted)",
             len(event.assoc.accepted_contexts))


def on_released(event) -> None:
    _enter(event)
    log.info("association released")


def on_aborted(event) -> None:
    _enter(event)
    log.warning("association aborted")


def notification_handlers() -> list:
    from pynetdicom import evt
    return [(evt.EVT_REQUESTED, on_requested), (evt.EVT_ACCEPTED, on_accepted),
            (evt.EVT_REJECTED, on_rejected), (evt.EVT_RELEASED, on_released),
            (evt.EVT_ABORTED, on_aborted)]


def sub_association_handlers() -> list:
    """evt_handlers for a C-MOVE sub-association opened from the current one: its threads'
    lines (pynetdicom's, e.g. the destination aborting) carry the parent's tag."""
    from pynetdicom import evt
    parent = _current.get()
    if parent is None:
        return []

    def link(event) -> None:
        with _known_lock:
            try:
                _known[event.assoc] = replace(parent, op=f"{parent.op or 'C-MOVE'} sub-association")
            except TypeError:
                pass
    return [(evt.EVT_CONN_OPEN, link)]


def _thread_info() -> AssocInfo | None:
    """The info of the association the current thread serves, for threads where no context
    was set: pynetdicom's per-association DUL threads and C-MOVE sub-associations."""
    t = threading.current_thread()
    with _known_lock:
        for candidate in (t, getattr(t, "assoc", None)):
            try:
                if candidate is not None and (info := _known.get(candidate)):
                    return info
            except TypeError:  # not weak-referenceable
                pass
    return None


def operation(op: str, handler):
    """`handler` (a pynetdicom event handler, plain or generator) run with `op` in the log
    context; the association's context without `op` is restored when it is done."""
    def leave(event):
        assoc = getattr(event, "assoc", None)
        if assoc is not None:
            _current.set(_describe(assoc))

    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def gen(event, *args):
            _enter(event, op)
            try:
                yield from handler(event, *args)
            finally:
                leave(event)
        return gen

    @functools.wraps(handler)
    def plain(event, *args):
        _enter(event, op)
        try:
            return handler(event, *args)
        finally:
            leave(event)
    return plain


class AssociationFilter(logging.Filter):
    """Sets `assoc`, `ae`, `peer` and `op` on records written while an association is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = _current.get() or _thread_info()
        for name, value in (info.fields() if info else {}).items():
            setattr(record, name, value)
        return True


def setup(path: Path, stream=None, service: str = "scp") -> list[logging.Handler]:
    """The service's JSON log (`logs.setup`) with the association fields. Idempotent."""
    return logs.setup(service, path, stream=stream, filters=(AssociationFilter(),))
