"""DICOMweb STOW-RS (PS3.18 10.5) as the edge's forwarder speaks it: the request body and the
reading of the MDC's answer, as pure functions (no I/O, tested alone).

Request: `POST {mdc}/dicomweb/studies`, `Content-Type: multipart/related;
type="application/dicom"; boundary=...`, each part `Content-Type: application/dicom` holding
one DICOM Part 10 file. Response (`application/dicom+json`): one data set with
ReferencedSOPSequence (0008,1199) for stored instances and FailedSOPSequence (0008,1198) with a
FailureReason (0008,1197) for the others.

What the edge does with each instance is decided here, from tables (`HTTP_ACTIONS`,
`REASON_ACTIONS`): ACK (delete from the spool), RETRY (keep, back off), REJECT (move to
rejected/ for an admin) or SPLIT (the batch as a whole was refused: send smaller batches to
find the object at fault).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

# The DICOM JSON tags of the answer, as the MDC writes them (one definition for both sides).
from pacs_hdfs.dicom.stow_response import (  # noqa: F401 - re-exported for the forwarder's tests
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    REFERENCED_SOP_CLASS_UID,
    REFERENCED_SOP_INSTANCE_UID,
    REFERENCED_SOP_SEQUENCE,
    WARNING_REASON,
)

ACK, RETRY, REJECT, SPLIT = "ack", "retry", "reject", "split"

#: HTTP status -> what it means for the whole batch; 200/202/409 are read per instance
HTTP_ACTIONS: dict[int, str] = {
    200: "per-instance", 202: "per-instance", 409: "per-instance",
    400: SPLIT,    # malformed request: find the object that makes it so
    413: SPLIT,    # too large: smaller batches (a single object too large is rejected)
    401: RETRY, 403: RETRY,   # certificate not (yet) accepted: an admin must act, nothing lost
    415: RETRY,    # wrong media type: a bug or a proxy; keep everything
    408: RETRY, 429: RETRY,
    500: RETRY, 502: RETRY, 503: RETRY, 504: RETRY,
}

#: FailureReason -> action; unknown reasons keep the object and retry (never lose data)
REASON_ACTIONS: dict[int, str] = {
    0xA700: RETRY,    # out of resources: storage unavailable, try later
    0xA701: RETRY, 0xA702: RETRY,
    0xC001: REJECT,   # already stored with different content
    0xC000: REJECT,   # cannot understand / not de-identified
    0xA900: REJECT,   # does not match SOP class
    0x0110: REJECT,   # processing failure (refused)
    0x0122: REJECT,   # SOP class not supported
    0x0124: REJECT,   # not authorized
}

REASON_TEXT: dict[int, str] = {
    0xA700: "out of resources", 0xC001: "already stored with different content",
    0xC000: "cannot understand (not de-identified?)", 0xA900: "does not match SOP class",
    0x0110: "processing failure", 0x0122: "SOP class not supported", 0x0124: "not authorized",
}


def reason_text(code: int) -> str:
    return f"0x{code:04X} {REASON_TEXT.get(code, 'failure')}"


@dataclass(frozen=True)
class Body:
    content_type: str
    data: bytes


def multipart(parts: list[bytes]) -> Body:
    """The STOW-RS request body for DICOM Part 10 files."""
    boundary = f"pacs-edge-{uuid.uuid4().hex}"
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    chunks = []
    for p in parts:
        chunks += [head, p, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return Body(f'multipart/related; type="application/dicom"; boundary={boundary}',
                b"".join(chunks))


@dataclass
class Verdicts:
    """Per sent SOP Instance UID: (action, reason text)."""
    by_uid: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: a batch-level action (SPLIT / RETRY) with its reason, when the answer is not per instance
    batch: tuple[str, str] | None = None


def _first(item: dict, tag: str):
    try:
        return item[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        return None


def _items(doc: dict, tag: str) -> list[dict]:
    value = (doc.get(tag) or {}).get("Value") or []
    return [v for v in value if isinstance(v, dict)]


def read_response(status: int, body: bytes, sent: list[str]) -> Verdicts:
    """What to do with each of `sent` (SOP Instance UIDs, in order) given the MDC's answer.
    An instance the answer does not mention is retried."""
    action = HTTP_ACTIONS.get(status, RETRY if status >= 500 else SPLIT)
    if action != "per-instance":
        return Verdicts(batch=(action, f"HTTP {status}{_detail(body)}"))
    try:
        doc = json.loads(body or b"{}")
        if isinstance(doc, list):  # some servers wrap the one data set in an array
            doc = doc[0] if doc else {}
        if not isinstance(doc, dict):
            raise ValueError("not a data set")
    except (ValueError, IndexError) as e:
        return Verdicts(batch=(RETRY, f"HTTP {status} with an unreadable body ({type(e).__name__})"))
    out = Verdicts()
    for item in _items(doc, REFERENCED_SOP_SEQUENCE):
        uid = _first(item, REFERENCED_SOP_INSTANCE_UID)
        if uid:
            warning = _first(item, WARNING_REASON)
            out.by_uid[str(uid)] = (ACK, f"warning 0x{int(warning):04X}" if warning else "")
    for item in _items(doc, FAILED_SOP_SEQUENCE):
        uid = _first(item, REFERENCED_SOP_INSTANCE_UID)
        if not uid:
            continue
        try:
            code = int(_first(item, FAILURE_REASON))
        except (TypeError, ValueError):
            code = 0x0110
        out.by_uid[str(uid)] = (REASON_ACTIONS.get(code, RETRY), reason_text(code))
    for uid in sent:
        out.by_uid.setdefault(uid, (RETRY, f"HTTP {status}: not in the MDC's answer"))
    for uid in list(out.by_uid):
        if uid not in sent:
            del out.by_uid[uid]  # never act on a UID we did not send
    return out


def _detail(body: bytes) -> str:
    text = (body or b"")[:200].decode("utf-8", "replace").strip().replace("\n", " ")
    return f": {text}" if text else ""
