"""Validation of a received DICOM object at ingest: refuse what cannot be archived, flag the rest.

`check(ds)` looks at the data set **as received** (before de-identification, file meta present,
read lazily; pixel data is never decoded) and returns a `Verdict`:

* a **refusal** - a failure status and a short ErrorComment - for an object the archive must not
  answer with success: its SOP Class is missing, garbled or not a storage class (Q/R and C-GET
  could never serve it), it cannot be indexed (no instance/series/study UID), or its pixel module
  contradicts itself or the Pixel Data (a viewer would show garbage, or nothing);
* **warnings** for defects that are acceptable to store (a missing Modality or type-2
  attribute): the object is stored exactly as sent and the sender gets 0xB007. Nothing is ever
  repaired here - this module only reads.

Why a separate pure module: the SCP calls it on every object (hundreds per second), the
integration tests and the fuzz call it without a cluster, and the rules are listed as data
below so the conformance statement (docs/DICOM_CONFORMANCE.md, "Validation at ingest") can be
checked against them line by line.

Statuses (PS3.4 Table B.2-1, C-STORE):

| status | meaning here |
|---|---|
| 0x0000 | success: no finding |
| 0xB007 | warning "Data Set does not match SOP Class": stored as sent, see `Verdict.warnings` |
| 0xA900 | failure "Data Set does not match SOP Class": the object is understood but violates its IOD (PS3.3): a type-1 attribute missing, values incoherent, Pixel Data length not what the pixel module describes, SOP class not a storage class |
| 0xC000 | failure "Cannot understand": the object cannot be interpreted (PS3.5 encoding level): SOP Class UID missing or not a UID, unknown transfer syntax, a value that does not parse as its VR / VM, encapsulated Pixel Data in a native syntax or the reverse, broken fragments, and any exception raised while checking |

ErrorComments name attributes and this module's own numbers only; they never echo a string from
the data set, because the data set is not yet de-identified (a garbled attribute could hold
PHI) and the comment is logged and sent back.

Float Pixel Data (7FE0,0008) and Double Float Pixel Data (7FE0,0009) (parametric maps) are
handled, not rejected: Rows, Columns, SamplesPerPixel 1, MONOCHROME2 and BitsAllocated 32 / 64
are required and the native length is checked; BitsStored, HighBit and PixelRepresentation do
not apply to them (PS3.3 C.7.6.24) and are ignored if present.

What is deliberately *not* checked, because it would need decoding: whether compressed
fragments hold Rows x Columns pixels, and whether pixel values fit BitsStored.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from pydicom.dataelem import RawDataElement
from pydicom.uid import UID, MPEGTransferSyntaxes
from pynetdicom import AllStoragePresentationContexts

# --------------------------------------------------------------------------------------------
# Statuses
# --------------------------------------------------------------------------------------------

SUCCESS = 0x0000
#: Warning: Data Set does not match SOP Class (stored as sent).
WARNING = 0xB007
#: Error: Data Set does not match SOP Class (IOD-level defect).
MISMATCH = 0xA900
#: Error: Cannot understand (encoding-level defect, or the check itself failed).
CANNOT_UNDERSTAND = 0xC000

#: DICOM ErrorComment (0000,0902) is LO: at most 64 characters.
MAX_COMMENT = 64


@dataclass(frozen=True)
class Verdict:
    """What `check` found. `refusal` is (failure status, ErrorComment) or None; `warnings` are
    short texts for acceptable defects (ignored when there is a refusal)."""

    refusal: tuple[int, str] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        """The C-STORE status to answer: the refusal's, else 0xB007 if warned, else 0x0000."""
        if self.refusal is not None:
            return self.refusal[0]
        return WARNING if self.warnings else SUCCESS

    @property
    def storable(self) -> bool:
        """True when the object may be stored (success or warning)."""
        return self.refusal is None

    @property
    def comment(self) -> str:
        """ErrorComment for the response (<= 64 chars): the refusal reason, or the warnings."""
        if self.refusal is not None:
            return self.refusal[1]
        return _clip("; ".join(self.warnings))


def _clip(text: str) -> str:
    # LO: no backslash, no control characters, at most 64 characters.
    text = "".join(c if c.isprintable() and c != "\\" else "?" for c in text)
    return text if len(text) <= MAX_COMMENT else text[:MAX_COMMENT - 3] + "..."


class _Refuse(Exception):
    def __init__(self, status: int, comment: str):
        super().__init__(comment)
        self.status = status
        self.comment = _clip(comment)


# --------------------------------------------------------------------------------------------
# Rule tables
# --------------------------------------------------------------------------------------------

#: Storage SOP classes the SCP negotiates (pynetdicom's AllStoragePresentationContexts, 170
#: classes). A valid UID outside this set -> 0xA900: we could never send it back out (C-GET /
#: C-MOVE sub-operations propose the same set).
STORAGE_SOP_CLASSES: frozenset[str] = frozenset(
    str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)

#: Storage classes whose IOD makes Pixel Data (or Float / Double Float Pixel Data) mandatory:
#: every "... Image Storage" class by pydicom's UID dictionary, plus these without "Image" in
#: their name. Such an object without pixel data -> 0xA900. Other classes (SR, PDF, RT plans,
#: presentation states, waveforms) may have no pixel data; if they do, it is checked.
PIXEL_DATA_REQUIRED: frozenset[str] = frozenset(
    uid for uid in STORAGE_SOP_CLASSES if "Image Storage" in UID(uid).name) | frozenset({
        "1.2.840.10008.5.1.4.1.1.66.4",    # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.30",      # Parametric Map Storage
        "1.2.840.10008.5.1.4.1.1.6.2",     # Enhanced US Volume Storage
    })

#: Identity attributes: without them the object cannot be indexed (study/series/instance rows)
#: nor de-identified consistently -> 0xA900 when missing or empty.
IDENTITY_ATTRIBUTES: tuple[str, ...] = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")

#: Transfer syntaxes whose Pixel Data is native (uncompressed, defined length): its length is
#: checked exactly. Every other known transfer syntax is encapsulated (fragments).
NATIVE_TRANSFER_SYNTAXES: frozenset[str] = frozenset({
    "1.2.840.10008.1.2",         # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",       # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",    # Deflated Explicit VR Little Endian (inflated when read)
    "1.2.840.10008.1.2.2",       # Explicit VR Big Endian (retired, still received)
})

#: Encapsulated syntaxes where one fragment may hold several frames (video streams), so the
#: "at least one fragment per frame" rule (PS3.5 A.4) does not apply.
MULTI_FRAME_FRAGMENT_SYNTAXES: frozenset[str] = frozenset(str(u) for u in MPEGTransferSyntaxes)


@dataclass(frozen=True)
class PixelElement:
    """One of the three pixel data elements and what its pixel module must say."""

    keyword: str
    bits_allocated: frozenset[int]
    required: tuple[str, ...]     # type-1 attributes (PlanarConfiguration: see below)


_COMMON = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation")

#: tag -> pixel element. More than one present -> 0xA900.
PIXEL_ELEMENTS: dict[int, PixelElement] = {
    0x7FE00010: PixelElement("PixelData", frozenset({1, 8, 16, 32, 64}),
                             _COMMON + ("BitsStored", "HighBit", "PixelRepresentation")),
    0x7FE00008: PixelElement("FloatPixelData", frozenset({32}), _COMMON),
    0x7FE00009: PixelElement("DoubleFloatPixelData", frozenset({64}), _COMMON),
}

#: Integer pixel-module attributes and their allowed values (PS3.3 C.7.6.3). Outside -> 0xA900.
PIXEL_DOMAINS: dict[str, range | frozenset[int]] = {
    "Rows": range(1, 0x10000),
    "Columns": range(1, 0x10000),
    "BitsAllocated": frozenset({1, 8, 16, 32, 64}),
    "BitsStored": range(1, 65),
    "HighBit": range(0, 64),
    "PixelRepresentation": frozenset({0, 1}),
    "SamplesPerPixel": frozenset({1, 3}),
    "NumberOfFrames": range(1, 2 ** 31),
    "PlanarConfiguration": frozenset({0, 1}),
}


@dataclass(frozen=True)
class Photometric:
    """A Photometric Interpretation: samples per pixel, and how many samples per pixel the
    native encoding carries (None: only valid inside a compressed bit stream)."""

    samples: int
    native_samples: int | None


#: PS3.3 C.7.6.3.1.2. Unknown or retired values (HSV, ARGB, CMYK) -> 0xA900.
PHOTOMETRIC: dict[str, Photometric] = {
    "MONOCHROME1": Photometric(1, 1),
    "MONOCHROME2": Photometric(1, 1),
    "PALETTE COLOR": Photometric(1, 1),
    "RGB": Photometric(3, 3),
    "YBR_FULL": Photometric(3, 3),
    "YBR_FULL_422": Photometric(3, 2),      # native: Y Y Cb Cr per pixel pair
    "YBR_PARTIAL_422": Photometric(3, 2),   # retired, same layout
    "YBR_PARTIAL_420": Photometric(3, None),  # MPEG only
    "YBR_ICT": Photometric(3, None),        # JPEG 2000 only
    "YBR_RCT": Photometric(3, None),        # JPEG 2000 only
    "XYB": Photometric(3, None),            # JPEG XL only
}

#: Attributes a Photometric Interpretation needs to be displayable -> 0xA900 when missing.
PHOTOMETRIC_REQUIRES: dict[str, tuple[str, ...]] = {
    "PALETTE COLOR": ("RedPaletteColorLookupTableDescriptor",
                      "GreenPaletteColorLookupTableDescriptor",
                      "BluePaletteColorLookupTableDescriptor"),
}

#: Coherence of the pixel module: (applies to integer Pixel Data only, predicate over the parsed
#: attributes `p`, ErrorComment template). First failing relation -> 0xA900.
PIXEL_RELATIONS: tuple[tuple[bool, Callable[[dict], bool], str], ...] = (
    (False, lambda p: p["BitsAllocated"] in p["_element"].bits_allocated,
     "BitsAllocated {BitsAllocated} invalid for {_keyword}"),
    (True, lambda p: p["BitsStored"] <= p["BitsAllocated"],
     "BitsStored {BitsStored} > BitsAllocated {BitsAllocated}"),
    (True, lambda p: p["HighBit"] == p["BitsStored"] - 1,
     "HighBit {HighBit} is not BitsStored {BitsStored} - 1"),
    (False, lambda p: p["SamplesPerPixel"] == PHOTOMETRIC[p["PhotometricInterpretation"]].samples,
     "SamplesPerPixel {SamplesPerPixel} != {PhotometricInterpretation}"),
    (False, lambda p: p["BitsAllocated"] != 1 or p["SamplesPerPixel"] == 1,
     "BitsAllocated 1 with SamplesPerPixel {SamplesPerPixel}"),
    (False, lambda p: p["_keyword"] == "PixelData" or (
        p["SamplesPerPixel"] == 1 and p["PhotometricInterpretation"] == "MONOCHROME2"),
     "{_keyword} must be MONOCHROME2, 1 sample"),
)


@dataclass(frozen=True)
class Expected:
    """An attribute whose absence is acceptable to store but worth telling the sender."""

    keyword: str
    empty_ok: bool    # type 2: present but empty is conformant; type 1: empty is a defect too
    why: str


#: Checked on every object -> warning 0xB007, stored as sent. Kept short on purpose: these are
#: present in every storage IOD (General Study / Series / Image or their SR/document variants)
#: and are what Q/R and the quarantine rules look at.
EXPECTED_ATTRIBUTES: tuple[Expected, ...] = (
    Expected("Modality", False, "type 1; Q/R by modality and quarantine rules use it"),
    Expected("StudyDate", True, "type 2; study date matching"),
    Expected("SeriesNumber", True, "type 2; series ordering"),
    Expected("InstanceNumber", True, "type 2; instance ordering"),
)

# --------------------------------------------------------------------------------------------
# Reading values without trusting them
# --------------------------------------------------------------------------------------------

_UNDEFINED = 0xFFFFFFFF
_ITEM = struct.Struct("<HHI")   # encapsulated fragments are always little endian


def _get(ds, keyword: str):
    """The value of `keyword`, or None when absent or empty. A value pydicom cannot convert is
    the sender's fault -> 0xC000 naming the attribute."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - hostile input may make any conversion fail
        raise _Refuse(CANNOT_UNDERSTAND, f"{keyword}: cannot understand value") from None
    if value is None or (isinstance(value, (str, bytes, list, tuple)) and len(value) == 0):
        return None
    return value


def _int(ds, keyword: str) -> int | None:
    """A single integer value (US, IS...), None when absent/empty; else 0xC000."""
    value = _get(ds, keyword)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refuse(CANNOT_UNDERSTAND, f"{keyword}: cannot understand value")
    return int(value)


def _text(ds, keyword: str) -> str | None:
    """A single string value, None when absent/empty; multi-valued or binary -> 0xC000."""
    value = _get(ds, keyword)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Refuse(CANNOT_UNDERSTAND, f"{keyword}: cannot understand value")
    value = value.strip(" \x00")
    return value or None


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------

def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        raise _Refuse(CANNOT_UNDERSTAND, "no file meta information")
    ts = _text(meta, "TransferSyntaxUID")
    if ts is None:
        raise _Refuse(CANNOT_UNDERSTAND, "TransferSyntaxUID missing")
    if not UID(ts).is_transfer_syntax:
        raise _Refuse(CANNOT_UNDERSTAND, "TransferSyntaxUID not a known transfer syntax")
    return ts


def _sop_class(ds) -> str:
    """SOPClassUID: present, a valid UID, a storage class, and the same as the file meta's
    MediaStorageSOPClassUID (which, at the SCP, is the C-STORE's Affected SOP Class)."""
    sop = _text(ds, "SOPClassUID")
    if sop is None:
        raise _Refuse(CANNOT_UNDERSTAND, "SOPClassUID missing")
    if not UID(sop).is_valid:
        raise _Refuse(CANNOT_UNDERSTAND, "SOPClassUID is not a valid UID")
    meta = _text(ds.file_meta, "MediaStorageSOPClassUID")
    if meta is not None and meta != sop:
        raise _Refuse(MISMATCH, "SOPClassUID differs from MediaStorageSOPClassUID")
    if sop not in STORAGE_SOP_CLASSES:
        raise _Refuse(MISMATCH, "SOPClassUID is not a storage SOP class")
    return sop


def _identity(ds) -> None:
    for keyword in IDENTITY_ATTRIBUTES:
        if _text(ds, keyword) is None:
            raise _Refuse(MISMATCH, f"{keyword} missing")


def _pixel_element(ds) -> tuple[PixelElement, object] | None:
    present = [(PIXEL_ELEMENTS[tag], ds.get_item(tag)) for tag in PIXEL_ELEMENTS if tag in ds]
    if len(present) > 1:
        raise _Refuse(MISMATCH, "more than one pixel data element")
    return present[0] if present else None


def _pixel_module(ds, element: PixelElement) -> dict:
    """The pixel module as parsed integers / strings, checked against the tables."""
    p: dict = {"_element": element, "_keyword": element.keyword}
    for keyword in element.required:
        value = (_text(ds, keyword) if keyword == "PhotometricInterpretation"
                 else _int(ds, keyword))
        if value is None:
            raise _Refuse(MISMATCH, f"{keyword} missing")
        p[keyword] = value
    frames = _int(ds, "NumberOfFrames")
    p["NumberOfFrames"] = 1 if frames is None else frames
    if p["SamplesPerPixel"] > 1:
        planar = _int(ds, "PlanarConfiguration")
        if planar is None:
            raise _Refuse(MISMATCH, "PlanarConfiguration missing")
        p["PlanarConfiguration"] = planar
    for keyword, allowed in PIXEL_DOMAINS.items():
        if keyword in p and p[keyword] not in allowed:
            raise _Refuse(MISMATCH, f"{keyword} {p[keyword]} out of range")
    if p["PhotometricInterpretation"] not in PHOTOMETRIC:
        raise _Refuse(MISMATCH, "PhotometricInterpretation not recognised")
    integer = element.keyword == "PixelData"
    for integer_only, holds, comment in PIXEL_RELATIONS:
        if (integer or not integer_only) and not holds(p):
            raise _Refuse(MISMATCH, comment.format(**p))
    for keyword in PHOTOMETRIC_REQUIRES.get(p["PhotometricInterpretation"], ()):
        if _get(ds, keyword) is None:
            raise _Refuse(MISMATCH, f"{keyword[:40]} missing")
    return p


def _raw(elem) -> tuple[bytes, bool, int | None]:
    """(value, undefined length?, declared length or None) without converting the element."""
    if isinstance(elem, RawDataElement):
        return elem.value, elem.length == _UNDEFINED, (None if elem.length == _UNDEFINED
                                                        else elem.length)
    return elem.value, bool(getattr(elem, "is_undefined_length", False)), None


def expected_native_length(p: dict) -> int:
    """Bytes of native Pixel Data the module describes: Rows x Columns x samples x frames x
    BitsAllocated bits, bit-packed for BitsAllocated 1, padded to even (PS3.5 8.1.1, 8.1.2)."""
    samples = PHOTOMETRIC[p["PhotometricInterpretation"]].native_samples
    bits = int(p["Rows"] * p["Columns"] * samples * p["NumberOfFrames"] * p["BitsAllocated"])
    size = (bits + 7) // 8
    return size + (size & 1)


def _native_pixels(p: dict, value: bytes, undefined: bool) -> None:
    keyword = p["_keyword"]
    if undefined:
        raise _Refuse(CANNOT_UNDERSTAND, f"{keyword} encapsulated in a native syntax")
    if PHOTOMETRIC[p["PhotometricInterpretation"]].native_samples is None:
        raise _Refuse(MISMATCH, "PhotometricInterpretation needs a compressed syntax")
    expected = expected_native_length(p)
    if len(value) != expected:
        raise _Refuse(MISMATCH, f"{keyword} {len(value)} bytes, expected {expected}")


def _encapsulated_pixels(p: dict, value: bytes, undefined: bool, ts: str) -> None:
    """Walk the item headers only (Basic Offset Table, then >= 1 fragment): no decoding."""
    keyword = p["_keyword"]
    if not undefined:
        raise _Refuse(CANNOT_UNDERSTAND, f"{keyword} not encapsulated in a compressed syntax")
    offset, items, end = 0, 0, len(value)
    while offset < end:
        if offset + 8 > end:
            raise _Refuse(CANNOT_UNDERSTAND, f"{keyword} fragment header truncated")
        group, elem, length = _ITEM.unpack_from(value, offset)
        if (group, elem) != (0xFFFE, 0xE000) or length == _UNDEFINED or offset + 8 + length > end:
            raise _Refuse(CANNOT_UNDERSTAND, f"{keyword} fragments malformed")
        offset += 8 + length
        items += 1
    fragments = items - 1   # the first item is the Basic Offset Table (possibly empty)
    if fragments < 1:
        raise _Refuse(MISMATCH, f"{keyword} has no fragments")
    if ts not in MULTI_FRAME_FRAGMENT_SYNTAXES and fragments < p["NumberOfFrames"]:
        raise _Refuse(MISMATCH, f"{fragments} fragments for {p['NumberOfFrames']} frames")


def _pixels(ds, sop: str, ts: str) -> None:
    found = _pixel_element(ds)
    if found is None:
        if sop in PIXEL_DATA_REQUIRED:
            raise _Refuse(MISMATCH, "Pixel Data missing")
        return
    element, elem = found
    p = _pixel_module(ds, element)
    value, undefined, declared = _raw(elem)
    if value is None:
        raise _Refuse(CANNOT_UNDERSTAND, f"{element.keyword} not read")
    if declared is not None and declared != len(value):
        raise _Refuse(CANNOT_UNDERSTAND, f"{element.keyword} truncated")
    if ts in NATIVE_TRANSFER_SYNTAXES:
        _native_pixels(p, value, undefined)
    else:
        _encapsulated_pixels(p, value, undefined, ts)


def _warnings(ds) -> tuple[str, ...]:
    found = []
    for exp in EXPECTED_ATTRIBUTES:
        if exp.keyword not in ds:
            found.append(f"{exp.keyword} missing")
        elif not exp.empty_ok and _get(ds, exp.keyword) is None:
            found.append(f"{exp.keyword} empty")
    return tuple(found)


def check(ds) -> Verdict:
    """Validate one received data set (see the module docstring). Never raises: an exception
    inside a rule becomes 0xC000 with a comment naming the rule's subject."""
    step = "data set"
    try:
        step = "TransferSyntaxUID"
        ts = _transfer_syntax(ds)
        step = "SOPClassUID"
        sop = _sop_class(ds)
        step = "instance UIDs"
        _identity(ds)
        step = "pixel module"
        _pixels(ds, sop, ts)
        step = "expected attributes"
        return Verdict(None, _warnings(ds))
    except _Refuse as r:
        return Verdict((r.status, r.comment))
    except Exception as e:  # noqa: BLE001 - hostile input must never crash the SCP
        return Verdict((CANNOT_UNDERSTAND, _clip(f"cannot check {step} ({type(e).__name__})")))
