"""The STOW-RS answer (PS3.18 10.5.3): per-instance results -> HTTP status and dicom+json body.

Pure. The body is one data set in ``application/dicom+json``:

* (0008,1199) ReferencedSOPSequence - one item per stored instance: ReferencedSOPClassUID,
  ReferencedSOPInstanceUID and, when it was stored with a warning, WarningReason (0008,1196);
* (0008,1198) FailedSOPSequence - one item per refused instance: ReferencedSOPClassUID,
  ReferencedSOPInstanceUID (either empty when the part could not be read) and FailureReason
  (0008,1197).

A sequence with no items is left out. HTTP status (PS3.18 Table 10.5.3-1): 200 every instance
stored without warning (a re-sent identical instance counts as stored); 202 stored, but some
failed or carry a warning; 409 none stored; 503 none stored and every failure is 0xA700 (storage
unavailable: the whole request may be sent again). Clients read the per-instance reasons in any
case: 0xA700 means "send this one again later" whatever the HTTP status.
"""
from __future__ import annotations

from dataclasses import dataclass

#: FailureReason codes this service answers (PS3.18 Table 10.5.3-2 / PS3.4 C-STORE classes).
FAILURE_REASONS: dict[int, str] = {
    0xA700: "Refused: out of resources - storage unavailable, send again later",
    0xA900: "Error: data set does not match SOP Class (IOD defect), or not of the target study",
    0xC000: "Error: cannot understand - not a readable DICOM file, or not de-identified",
    0xC001: "Error: SOP Instance UID already stored with different content (first kept)",
}
#: WarningReason codes (PS3.18 Table 10.5.3-3).
WARNING_REASONS: dict[int, str] = {
    0xB007: "Data set does not match SOP Class: stored as sent",
}
OUT_OF_RESOURCES = 0xA700

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"


@dataclass(frozen=True)
class InstanceResult:
    """What happened to one instance of the request."""

    sop_class: str = ""
    sop_instance: str = ""
    failure: int | None = None     # FailureReason; None when stored
    warning: int | None = None     # WarningReason of a stored instance

    @property
    def stored(self) -> bool:
        return self.failure is None

    @property
    def status_code(self) -> int:
        """Its DICOM status: the failure, else the warning, else 0x0000 (success)."""
        return self.failure if self.failure is not None else (self.warning or 0)


def _uid(value: str) -> dict:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _item(r: InstanceResult) -> dict:
    item = {REFERENCED_SOP_CLASS_UID: _uid(r.sop_class),
            REFERENCED_SOP_INSTANCE_UID: _uid(r.sop_instance)}
    if r.failure is not None:
        item[FAILURE_REASON] = {"vr": "US", "Value": [r.failure]}
    elif r.warning is not None:
        item[WARNING_REASON] = {"vr": "US", "Value": [r.warning]}
    return dict(sorted(item.items()))


def response_json(results: list[InstanceResult]) -> dict:
    """The dicom+json data set of a STOW-RS response."""
    out = {}
    failed = [_item(r) for r in results if not r.stored]
    stored = [_item(r) for r in results if r.stored]
    if failed:
        out[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": failed}
    if stored:
        out[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": stored}
    return out


def http_status(results: list[InstanceResult]) -> int:
    """The HTTP status of a response with these (one or more) results."""
    failures = [r.failure for r in results if not r.stored]
    if not failures:
        return 202 if any(r.warning is not None for r in results) else 200
    if len(failures) < len(results):
        return 202
    return 503 if all(f == OUT_OF_RESOURCES for f in failures) else 409
