"""The de-identified object as Part 10 bytes, byte for byte what `pydicom.dcmwrite` writes, with
the per-element cost of pydicom's writer spent only where an element really changed.

Why: pydicom's writer costs some tens of microseconds per element even for an element that is
carried over raw (it re-buffers every value), about 2-3 ms for a CT header, more than the
de-identification itself, on the path every image takes. The de-identifier keeps unchanged
elements as the `RawDataElement`s they were read as, so their encoding is known: tag, VR,
length, value. `encode` writes those directly and hands every other element (changed values,
sequences, undefined lengths, values too long for a short VR) to pydicom's own
`write_data_element`; the file meta goes through pydicom as in `dcmwrite(...,
enforce_file_format=True)`.

Only little-endian, non-deflated transfer syntaxes read in the encoding they are written in take
this path (every syntax the edge accepts but Deflated and Big Endian); anything else is
`part10.serialize`. The unit tests compare both writers byte for byte over pydicom's test files.
"""
from __future__ import annotations

import struct

from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

try:
    from pacs_hdfs.dicom.part10 import serialize
except ImportError:  # before the Part 10 helpers moved out of the MDC's ingest module
    from pacs_hdfs.dicom.ingest import serialize

UNDEFINED = 0xFFFFFFFF
#: explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
                      "UV"})
_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2sHI")
_IMPLICIT = struct.Struct("<HHI")


def _fast_encoding(ds) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) when the fast path applies, else None."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None or not ts.is_transfer_syntax or ts.is_private:
        return None
    if ts == DeflatedExplicitVRLittleEndian or not ts.is_little_endian:
        return None
    encoding = (ts.is_implicit_VR, True)
    if ds.original_encoding != encoding or ds.original_character_set != ds._character_set:
        return None  # pydicom would re-encode raw values: let it
    return encoding


def encode(ds) -> bytes:
    """`ds` (with file meta) as DICOM Part 10 bytes; `ds.file_meta` is completed in place the
    way `dcmwrite(enforce_file_format=True)` completes its copy of it."""
    encoding = _fast_encoding(ds)
    if encoding is None:
        return serialize(ds)
    meta = ds.file_meta
    for meta_kw, ds_kw in (("MediaStorageSOPClassUID", "SOPClassUID"),
                           ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        value = ds.get(ds_kw)
        if meta.get(meta_kw) is None or (value and value != meta.get(meta_kw)):
            setattr(meta, meta_kw, value)
    validate_file_meta(meta, enforce_standard=True)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = encoding
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    implicit = encoding[0]
    charset = ds.get("SpecificCharacterSet", default_encoding)
    write = fp.write
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are not written (as pydicom)
        elem = ds.get_item(tag)
        if isinstance(elem, RawDataElement) and elem.length != UNDEFINED and elem.value is not None:
            value, vr = elem.value, elem.VR
            n = len(value)
            if implicit:
                write(_IMPLICIT.pack(tag.group, tag.element, n))
                write(value)
                continue
            if vr and len(vr) == 2 and vr != "SQ":
                if vr in LONG_VRS:
                    write(_LONG.pack(tag.group, tag.element, vr.encode(), 0, n))
                    write(value)
                    continue
                if n <= 0xFFFF:
                    write(_SHORT.pack(tag.group, tag.element, vr.encode(), n))
                    write(value)
                    continue
        write_data_element(fp, elem, charset)
    return fp.getvalue()
