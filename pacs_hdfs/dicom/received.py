"""One object received by the MDC over STOW-RS: accepted (ready to commit) or refused, and why.

`receive(data, edge, study)` runs, on the bytes of one request part and in this order:

1. Part 10 reading: a missing 128-byte preamble + ``DICM`` is added (dicomweb-client omits it
   when the data set it encodes has none; nothing else is ever changed, so a re-sent object has
   the same bytes and sha256); file meta with a TransferSyntaxUID is required, and no element may
   be shorter than its declared length. Failure -> 0xC000.
2. `validation.check` (the same rules as the DIMSE ingest): a refusal keeps its status (0xA900 /
   0xC000); warnings make the object stored with WarningReason 0xB007.
3. `deid.verify.verify_deidentified`: any problem -> 0xC000 (PS3.18 defines no FailureReason for
   "not de-identified"; the log line and the response's Warning header say which it was).
4. With a target study in the URL, an object of another study -> 0xA900 (PS3.18 10.5.1).

Nothing here stores anything; `stow.py` commits every accepted object of a request together.
`prepare` is the one place the index attributes are read; `made_in_mdc` gives objects the data
center makes itself (the FDK job's CT series) the same reading, validation and attributes.
Refusal reasons name rules and attributes only, never a value (the object may hold PHI), and
the SOP Instance UID is logged only when it has the de-identified ``2.25.`` form.
"""
from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread

from deid.verify import is_deidentified_uid, verify_deidentified
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom import validation
from pacs_hdfs.dicom.commit import Prepared
from pacs_hdfs.dicom.part10 import check_lengths

PREAMBLE = b"\x00" * 128 + b"DICM"
FILE_META_START = b"\x02\x00"          # (0002,xxxx), always explicit VR little endian
NOT_DEIDENTIFIED = 0xC000
OTHER_STUDY = 0xA900
MALFORMED = 0xC000
#: why-kinds (short, fixed words) used in log lines and the response's Warning header
KIND_MALFORMED, KIND_INVALID, KIND_NOT_DEID, KIND_OTHER_STUDY = (
    "malformed", "invalid", "not de-identified", "not of the target study")


@dataclass(frozen=True)
class Received:
    """An accepted object (``prepared`` set) or a refusal (``failure`` set)."""

    sop_class: str = ""
    sop_instance: str = ""
    prepared: Prepared | None = None
    warning: int | None = None      # 0xB007 when validation warned
    failure: int | None = None
    kind: str = ""                  # why refused (KIND_*)
    reason: str = ""                # the detail: rule and attribute names only

    @property
    def loggable_sop(self) -> str:
        """The SOP Instance UID when it has the de-identified form, else '(unverified)'."""
        return self.sop_instance if is_deidentified_uid(self.sop_instance) else "(unverified)"


def as_part10(data: bytes) -> bytes:
    """``data`` with the Part 10 preamble and prefix added when it starts with the file meta."""
    if data[128:132] != b"DICM" and data.startswith(FILE_META_START):
        return PREAMBLE + data
    return data


def summary(problems: list[str], shown: int = 5) -> str:
    """The first problems, for one log line."""
    more = len(problems) - shown
    return "; ".join(problems[:shown]) + (f"; +{more} more" if more > 0 else "")


def _read(data: bytes):
    ds = dcmread(BytesIO(data))   # no force: a Part 10 file (preamble, DICM, file meta)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        raise ValueError("no transfer syntax in file meta")
    check_lengths(ds)
    return ds


def _uid(ds, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip("\x00 ")
    except Exception:  # noqa: BLE001 - a value pydicom cannot convert
        return ""


def receive(data: bytes, edge: str, study: str | None = None) -> Received:
    """Decide about one received object (see the module docstring)."""
    data = as_part10(data)
    try:
        ds = _read(data)
    except Exception as e:  # noqa: BLE001 - any parse error is the sender's problem
        return Received(failure=MALFORMED, kind=KIND_MALFORMED,
                        reason=f"not a readable DICOM Part 10 file ({type(e).__name__})")
    sop_class, sop = _uid(ds, "SOPClassUID"), _uid(ds, "SOPInstanceUID")
    verdict = validation.check(ds)
    if verdict.refusal is not None:
        return Received(sop_class, sop, failure=verdict.status, kind=KIND_INVALID,
                        reason=verdict.comment)
    problems = verify_deidentified(ds)
    if problems:
        return Received(sop_class, sop, failure=NOT_DEIDENTIFIED, kind=KIND_NOT_DEID,
                        reason=summary(problems))
    try:
        prepared = prepare(data, ds, edge)
    except Exception as e:  # noqa: BLE001 - an indexed value pydicom cannot convert
        return Received(sop_class, sop, failure=MALFORMED, kind=KIND_MALFORMED,
                        reason=f"indexed attributes unreadable ({type(e).__name__})")
    if study is not None and prepared.attrs.get("StudyInstanceUID") != study:
        return Received(sop_class, sop, failure=OTHER_STUDY, kind=KIND_OTHER_STUDY,
                        reason="StudyInstanceUID differs from the study in the URL")
    warning = verdict.status if verdict.warnings else None
    return Received(sop_class, sop, prepared, warning=warning,
                    reason=verdict.comment if warning else "")


def prepare(data: bytes, ds, source: str) -> Prepared:
    """``data`` (whose data set is ``ds``) ready for the group commit: the indexed attributes
    every instance, series and study row is built from, and ``source`` recorded as ``l:edge``.
    Raises when pydicom cannot convert an indexed value."""
    attrs = ix.attributes(ds, ix.ALL_KEYS)
    attrs["TransferSyntaxUID"] = str(ds.file_meta.TransferSyntaxUID)
    return Prepared(data, attrs, source=source)


def made_in_mdc(data: bytes, source: str) -> Received:
    """Decide about an object the data center made itself (e.g. a reconstructed CT slice): the
    same Part 10 reading, `validation.check` and index attributes as `receive`, without the
    de-identification check, which is for what hospitals send (such an object never had PHI)."""
    try:
        ds = _read(data)
    except Exception as e:  # noqa: BLE001 - the maker's bug, reported like a sender's
        return Received(failure=MALFORMED, kind=KIND_MALFORMED,
                        reason=f"not a readable DICOM Part 10 file ({type(e).__name__})")
    sop_class, sop = _uid(ds, "SOPClassUID"), _uid(ds, "SOPInstanceUID")
    verdict = validation.check(ds)
    if verdict.refusal is not None:
        return Received(sop_class, sop, failure=verdict.status, kind=KIND_INVALID,
                        reason=verdict.comment)
    try:
        prepared = prepare(data, ds, source)
    except Exception as e:  # noqa: BLE001 - an indexed value pydicom cannot convert
        return Received(sop_class, sop, failure=MALFORMED, kind=KIND_MALFORMED,
                        reason=f"indexed attributes unreadable ({type(e).__name__})")
    warning = verdict.status if verdict.warnings else None
    return Received(sop_class, sop, prepared, warning=warning,
                    reason=verdict.comment if warning else "")
