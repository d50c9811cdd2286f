"""The de-identified object as Part 10 bytes, byte for byte what `pydicom.dcmwrite` writes, with
the per-element cost of pydicom's writer spent only where an element really changed.

Why: pydicom's writer costs some tens of microseconds per element even for an element that is
carried over raw (it re-buffers every value), about 2-3 ms for a CT header, more than the
de-identification itself, on the path every image takes. The de-identifier keeps unchanged
elements as the `RawDataElement`s they were read as, so their encoding is known: tag, VR,
length, value. `encode` writes those directly and hands every other element (changed values,
sequences, undefined lengths, values too long for a short VR) to pydicom's own
`write_data_element`; the file meta is completed and validated as `dcmwrite(...,
enforce_file_format=True)` does and written element by element the same way.

Only little-endian, non-deflated transfer syntaxes read in the encoding they are written in take
this path (every syntax the edge accepts but Deflated and Big Endian); anything else is
`part10.serialize`. Changed elements whose value is a plain string or number (a list of
them, or a sequence of items holding only such elements) are cached as bytes: across a series most of them repeat (study and series UIDs, the
pseudonym, dates, the de-identification marks). The unit tests compare both writers byte for
byte over pydicom's test files.
"""
from __future__ import annotations

import struct

from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from pacs_hdfs.dicom.part10 import serialize

UNDEFINED = 0xFFFFFFFF
#: explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
                      "UV"})
_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2sHI")
_IMPLICIT = struct.Struct("<HHI")


#: encoded bytes of elements whose value repeats from object to object (the study's UIDs,
#: the pseudonym, shifted dates, SOP class, the de-identification marks), keyed by everything
#: their encoding depends on; only plain str / int / float values and lists of them
_CACHE: dict[tuple, bytes] = {}
_CACHE_MAX = 4096
_PLAIN = (str, int, float)


def _plain(value):
    """A hashable stand-in for `value` if it is plain data (str / int / float, a list of them,
    or a sequence whose items hold only such elements), else None."""
    if type(value) in _PLAIN:
        return (type(value), value)
    if isinstance(value, Sequence):
        items = []
        for item in value:
            if not isinstance(item, Dataset) or type(item) is not Dataset:
                return None
            fields = [getattr(item, "is_undefined_length_sequence_item", False),
                      item.original_encoding, str(item.original_character_set)]
            for tag in item.keys():
                elem = item.get_item(tag)
                if isinstance(elem, RawDataElement):
                    return None
                inner = _plain(elem.value)
                if inner is None:
                    return None
                fields.append((tag, elem.VR, elem.is_undefined_length, inner))
            items.append(tuple(fields))
        return (Sequence, getattr(value, "is_undefined_length", None), tuple(items))
    if isinstance(value, list) and all(type(v) in _PLAIN for v in value):
        return (list, tuple((type(v), v) for v in value))  # MultiValue is a list subclass
    return None


def _cache_key(elem, implicit: bool, charset) -> tuple | None:
    values = _plain(elem.value)
    if values is None:
        return None
    return (elem.tag, elem.VR, implicit, str(charset), elem.is_undefined_length, values)


def _cached(elem, implicit: bool, charset) -> bytes | None:
    """The element's encoding from the cache (computed on a miss), or None if not cacheable."""
    key = _cache_key(elem, implicit, charset)
    if key is None:
        return None
    data = _CACHE.get(key)
    if data is None:
        data = _element_bytes(elem, implicit, charset)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = data
    return data


def _file_meta_bytes(meta) -> bytes:
    """What `write_file_meta_info(fp, meta, enforce_standard=True)` writes for a validated
    meta: the group length, then every element in tag order (explicit VR little endian)."""
    body = []
    for tag in sorted(meta.keys()):
        if tag == 0x00020000:
            continue
        elem = meta[tag]
        data = _cached(elem, False, default_encoding)
        body.append(data if data is not None else _element_bytes(elem, False, default_encoding))
    body_bytes = b"".join(body)
    return _SHORT.pack(2, 0, b"UL", 4) + struct.pack("<I", len(body_bytes)) + body_bytes


def _element_bytes(elem, implicit: bool, charset) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    write_data_element(fp, elem, charset)
    return fp.getvalue()


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
    fp.write(_file_meta_bytes(meta))
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
        data = None if isinstance(elem, RawDataElement) else _cached(elem, implicit, charset)
        if data is None:
            write_data_element(fp, elem, charset)
        else:
            write(data)
    return fp.getvalue()
