"""A deterministic set of mutated DICOM objects for the ingest-validation fuzz.

`mutations()` returns 50 objects (DICOM Part 10 files as bytes) made from a few good pydicom
test files by one mutation each: delete or alter pixel-module attributes, shorten or lengthen
Pixel Data, cut the stream, garble the SOP Class UID, relabel the transfer syntax, write values
that do not parse as their VR, delete Modality, and so on. Every object carries the generator's
own label: `defective` (the archive must refuse it) or acceptable (it may be stored, perhaps
with a warning). The label is fixed per mutation kind, from what the mutation did - it is
never obtained by running `pacs_hdfs.dicom.validation.check`.

Used by `tests/unit/test_dicom_validation_fuzz.py` (pure) and meant for an integration test that
sends the same objects through the real SCP with dcmtk (`write_all(directory)`).

Layers (`Mutation.layer`), which matters when sending over DIMSE:

* `dataset` - the defect is in the data set; `storescu` sends it as is.
* `meta` - the defect is only in the File Meta Information (Part 10 header). The SCP never sees
  that header: it rebuilds it from the negotiated presentation context. Over the network such
  an object is either not sendable (storescu finds no presentation context, or cannot convert
  native pixel data to a compressed syntax) or arrives without the defect's meta part; a test
  should accept "storescu refused to send" as a refusal.
* `stream` - the file itself is cut short; storescu may refuse to read it.

Every object gets a fresh SOP Instance UID (dataset and meta; derived from seed, index and
`uid_salt`) so that two mutations of one source are never taken for a re-sent instance.
Mutations whose defect could only be seen by decoding pixels (e.g. Rows of a JPEG image) are
deliberately not generated: ingest validation does not decode.
"""
from __future__ import annotations

import hashlib
import random
from copy import deepcopy
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Callable

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless)

DEFAULT_SEED = 20250612
DEFAULT_COUNT = 50

#: Good pydicom test files (all pass validation with 0x0000), chosen to cover: native 16-bit
#: explicit LE (CT, MR), native RGB 8-bit with an odd pixel count (pad byte), native multi-frame
#: 32-bit implicit LE (RT Dose, 15 frames), native 1-bit (Segmentation), JPEG 2000, RLE
#: multi-frame RGB, and an SR without pixel data.
SOURCES: tuple[str, ...] = (
    "CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "rtdose.dcm", "liver_1frame.dcm",
    "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm", "test-SR.dcm",
)

#: Sources whose IOD makes Pixel Data mandatory (from PS3.3, not from the validator's tables):
#: RT Dose may omit it, SR has none.
PIXEL_MANDATORY_SOURCES = frozenset({
    "CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "liver_1frame.dcm",
    "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm"})

NATIVE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"})
PIXEL_TAG = Tag(0x7FE00010)


@dataclass(frozen=True)
class Mutation:
    index: int
    kind: str            # the mutation kind (see KINDS)
    source: str          # pydicom test file it was made from
    description: str     # what exactly was done
    defective: bool      # True: must be refused; False: may be stored (perhaps with a warning)
    layer: str           # "dataset" | "meta" | "stream" (see module docstring)
    data: bytes          # the DICOM Part 10 file

    @property
    def filename(self) -> str:
        return f"{self.index:02d}-{self.kind}.dcm"


class _Work:
    """One object being mutated: its data set, the meta to write, and how to encode it."""

    def __init__(self, source: str, raw: bytes, rng: random.Random):
        self.source = source
        self.rng = rng
        self.ds = dcmread(BytesIO(raw))
        self.meta = deepcopy(self.ds.file_meta)
        self.implicit, self.little = self.ds.original_encoding
        self.cut: Callable[[bytes, int], bytes] | None = None   # stream-level edit

    # what the source is (for eligibility)
    @property
    def ts(self) -> str:
        return str(self.meta.TransferSyntaxUID)

    @property
    def pixels(self) -> bool:
        return PIXEL_TAG in self.ds

    @property
    def native(self) -> bool:
        return self.pixels and self.ts in NATIVE

    @property
    def encapsulated(self) -> bool:
        return self.pixels and self.ts not in NATIVE

    @property
    def samples(self) -> int:
        return int(self.ds.get("SamplesPerPixel", 1))

    def set_raw(self, keyword_or_tag, vr: str, value: bytes) -> None:
        """Put an element with exactly these value bytes (no validation, no padding)."""
        tag = Tag(keyword_or_tag)
        self.ds._dict[tag] = RawDataElement(tag, None if self.implicit else vr, len(value),
                                            value, 0, self.implicit, self.little)

    def encode(self) -> bytes:
        out = DicomBytesIO()
        out.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(out, self.meta, enforce_standard=True)
        body = DicomBytesIO()
        body.is_implicit_VR, body.is_little_endian = self.implicit, self.little
        write_dataset(body, self.ds)
        data = out.getvalue() + body.getvalue()
        return self.cut(data, len(out.getvalue())) if self.cut else data


def _uid(*parts) -> str:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


# --------------------------------------------------------------------------------------------
# Mutation kinds. Each: (kind, defective, layer, eligible(work), apply(work) -> description).
# --------------------------------------------------------------------------------------------

PIXEL_REQUIRED_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                           "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation")
OTHER_STORAGE_CLASSES = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4",
                         "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.1.1")
TYPE3_KEYWORDS = ("WindowCenter", "WindowWidth", "SliceLocation", "ImageComments",
                  "SeriesDescription", "StudyDescription", "InstitutionName", "AcquisitionNumber")
TYPE2_WARNED = ("StudyDate", "SeriesNumber", "InstanceNumber")


def _delete_pixel_attribute(w: _Work) -> str:
    kw = w.rng.choice([k for k in PIXEL_REQUIRED_KEYWORDS if k in w.ds])
    del w.ds[kw]
    return f"deleted {kw}"


def _high_bit_wrong(w: _Work) -> str:
    bs = int(w.ds.BitsStored)
    value = w.rng.choice([v for v in (4107, bs, bs + 1, bs - 2) if v >= 0 and v != bs - 1])
    w.ds.HighBit = value
    return f"HighBit {value} with BitsStored {bs}"


def _bits_stored_over_allocated(w: _Work) -> str:
    ba = int(w.ds.BitsAllocated)
    bs = ba + w.rng.choice([1, 4, 8])
    w.ds.BitsStored, w.ds.HighBit = bs, bs - 1
    return f"BitsStored {bs} (HighBit {bs - 1}) with BitsAllocated {ba}"


def _bits_allocated_invalid(w: _Work) -> str:
    value = w.rng.choice([0, 2, 12, 17])
    w.ds.BitsAllocated = value
    return f"BitsAllocated {value}"


def _pixel_representation_invalid(w: _Work) -> str:
    value = w.rng.choice([2, 7, 255])
    w.ds.PixelRepresentation = value
    return f"PixelRepresentation {value}"


def _samples_mismatch(w: _Work) -> str:
    if w.samples == 1:
        w.ds.SamplesPerPixel, w.ds.PlanarConfiguration = 3, 0
        return "SamplesPerPixel 3 (PlanarConfiguration 0) on a single-sample image"
    w.ds.SamplesPerPixel = 1
    return "SamplesPerPixel 1 on a colour image"


def _photometric_unknown(w: _Work) -> str:
    value = w.rng.choice(["MONOCHROME3", "RGBA", "YBR", "GRAY"])
    w.ds.PhotometricInterpretation = value
    return f"PhotometricInterpretation {value}"


def _photometric_wrong_samples(w: _Work) -> str:
    value = w.rng.choice(["RGB", "YBR_FULL"] if w.samples == 1 else ["MONOCHROME2", "MONOCHROME1"])
    w.ds.PhotometricInterpretation = value
    return f"PhotometricInterpretation {value} with SamplesPerPixel {w.samples}"


def _rows_columns_changed(w: _Work) -> str:
    kw = w.rng.choice(["Rows", "Columns"])
    old = int(w.ds[kw].value)
    new = old + w.rng.choice([v for v in (-1, 1, old) if old + v >= 1])
    w.ds[kw].value = new
    return f"{kw} {old} -> {new} (native Pixel Data unchanged)"


def _frames_changed(w: _Work) -> str:
    old = int(w.ds.get("NumberOfFrames", 1) or 1)
    new = w.rng.choice([0, old + 1, old + 2, old + 99])
    w.ds.NumberOfFrames = new
    return f"NumberOfFrames {old} -> {new} (Pixel Data unchanged)"


def _pixel_data_shortened(w: _Work) -> str:
    value = w.ds.PixelData
    k = w.rng.choice([2, 4, (len(value) // 4) * 2])
    w.ds.PixelData = value[:-k]
    return f"Pixel Data shortened by {k} bytes"


def _pixel_data_lengthened(w: _Work) -> str:
    k = w.rng.choice([2, 64, 1024])
    w.ds.PixelData = w.ds.PixelData + bytes(w.rng.getrandbits(8) for _ in range(k))
    return f"Pixel Data lengthened by {k} bytes"


def _stream_cut_in_pixel_data(w: _Work) -> str:
    tail = [t for t in w.ds.keys() if t > PIXEL_TAG]   # e.g. (FFFC,FFFC) trailing padding
    for t in tail:
        del w.ds[t]
    k = w.rng.randrange(1, min(200, len(w.ds.PixelData)))
    w.cut = lambda data, _meta_end: data[:-k]
    return f"file cut {k} bytes before the end of Pixel Data"


def _sop_class_garbled(w: _Work) -> str:
    uid = str(w.ds.SOPClassUID)
    choice = w.rng.choice(["letters", "leading-zero", "double-dot", "trailing-dot", "too-long",
                           "empty", "deleted", "verification", "find-model", "random-2.25"])
    value = {
        "letters": uid + "x", "leading-zero": uid.replace(".10008.", ".010008."),
        "double-dot": uid.replace(".", "..", 1), "trailing-dot": uid + ".",
        "too-long": uid + ".1" * 20, "empty": "", "verification": "1.2.840.10008.1.1",
        "find-model": "1.2.840.10008.5.1.4.1.2.2.1", "random-2.25": _uid("sop", w.rng.random()),
    }.get(choice)
    if choice == "deleted":
        del w.ds.SOPClassUID
    else:
        padded = value.encode() + (b"\x00" if len(value) % 2 else b"")
        w.set_raw("SOPClassUID", "UI", padded)
    return f"dataset SOPClassUID {choice} (file meta keeps the original)"


def _meta_sop_class_differs(w: _Work) -> str:
    other = w.rng.choice([u for u in OTHER_STORAGE_CLASSES if u != w.ds.SOPClassUID])
    w.meta.MediaStorageSOPClassUID = UID(other)
    return f"MediaStorageSOPClassUID {UID(other).name}, data set unchanged"


def _sop_class_unknown_both(w: _Work) -> str:
    uid = UID(_uid("class", w.rng.random()))
    w.ds.SOPClassUID = w.meta.MediaStorageSOPClassUID = uid
    return "SOPClassUID and MediaStorageSOPClassUID set to a private 2.25 UID"


def _ts_relabel_native_as_compressed(w: _Work) -> str:
    ts = w.rng.choice([JPEGBaseline8Bit, RLELossless, JPEG2000Lossless, JPEGLSLossless])
    w.meta.TransferSyntaxUID = ts
    return f"meta TransferSyntaxUID {ts.name}, native Pixel Data kept"


def _ts_relabel_compressed_as_native(w: _Work) -> str:
    w.meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return "meta TransferSyntaxUID Explicit VR Little Endian, fragments kept"


def _frames_not_an_integer(w: _Work) -> str:
    value = w.rng.choice([b"1A", b"one ", b"1.5 ", b"2\\3 "])
    w.set_raw("NumberOfFrames", "IS", value)
    return f"NumberOfFrames {value.decode().strip()!r}"


def _rows_not_a_single_value(w: _Work) -> str:
    value = w.rng.choice([b"\x00\x02\x00\x02", b"\x80\x00\x80", b"\x01\x00\x02\x00\x03\x00"])
    w.set_raw("Rows", "US", value)
    return f"Rows encoded in {len(value)} bytes"


def _planar_configuration_bad(w: _Work) -> str:
    if w.rng.random() < 0.5:
        del w.ds.PlanarConfiguration
        return "PlanarConfiguration deleted (SamplesPerPixel 3)"
    value = w.rng.choice([2, 3])
    w.ds.PlanarConfiguration = value
    return f"PlanarConfiguration {value}"


def _native_pixels_in_compressed_syntax(w: _Work) -> str:
    ds = w.ds
    size = int(ds.Rows) * int(ds.Columns) * w.samples * int(ds.get("NumberOfFrames", 1) or 1) \
        * int(ds.BitsAllocated) // 8
    size += size & 1
    elem = DataElement(PIXEL_TAG, "OB", bytes(size))
    elem.is_undefined_length = False
    ds[PIXEL_TAG] = elem
    return f"Pixel Data replaced by {size} native bytes, transfer syntax still {UID(w.ts).name}"


def _fragments_garbled(w: _Work) -> str:
    value = bytearray(w.ds.PixelData)
    bot_length = int.from_bytes(value[4:8], "little")
    first = 8 + bot_length                      # first fragment's item header
    choice = w.rng.choice(["length-overrun", "bad-item-tag", "no-fragments"])
    if choice == "length-overrun":
        length = int.from_bytes(value[first + 4:first + 8], "little")
        value[first + 4:first + 8] = (length + w.rng.choice([2, 1000])).to_bytes(4, "little")
    elif choice == "bad-item-tag":
        value[first:first + 4] = b"\xfe\xff\x0d\xe0"   # (FFFE,E00D): item delimiter, not item
    else:
        value = value[:first]
    elem = DataElement(PIXEL_TAG, "OB", bytes(value))
    elem.is_undefined_length = True
    w.ds[PIXEL_TAG] = elem
    return f"encapsulated Pixel Data: {choice}"


def _pixel_data_removed(w: _Work) -> str:
    del w.ds[PIXEL_TAG]
    return "Pixel Data deleted from an image"


def _palette_without_lut(w: _Work) -> str:
    w.ds.PhotometricInterpretation = "PALETTE COLOR"
    return "PhotometricInterpretation PALETTE COLOR without palette LUTs"


def _instance_uid_missing(w: _Work) -> str:
    kw = w.rng.choice(["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"])
    del w.ds[kw]
    return f"deleted {kw} from the data set"


def _modality_deleted(w: _Work) -> str:
    del w.ds.Modality
    return "deleted Modality"


def _modality_emptied(w: _Work) -> str:
    w.ds.Modality = ""
    return "Modality empty"


def _type2_deleted(w: _Work) -> str:
    kw = w.rng.choice([k for k in TYPE2_WARNED if k in w.ds])
    del w.ds[kw]
    return f"deleted {kw}"


def _patient_name_changed(w: _Work) -> str:
    w.ds.PatientName = "MUTANT^" + "".join(w.rng.choice("ABCDEFGH") for _ in range(6))
    return "PatientName changed"


def _private_block_added(w: _Work) -> str:
    block = w.ds.private_block(0x0009, "PACS MUTATION TEST", create=True)
    block.add_new(0x01, "LO", f"mutation {w.rng.randrange(10 ** 6)}")
    return "private block (0009,00xx) added"


def _type3_deleted(w: _Work) -> str:
    kw = w.rng.choice([k for k in TYPE3_KEYWORDS if k in w.ds])
    del w.ds[kw]
    return f"deleted {kw}"


def _transcoded_vr(w: _Work) -> str:
    if w.implicit:
        w.implicit, w.meta.TransferSyntaxUID = False, ExplicitVRLittleEndian
    else:
        w.implicit, w.meta.TransferSyntaxUID = True, ImplicitVRLittleEndian
    return f"re-encoded as {w.meta.TransferSyntaxUID.name}"


def _frames_explicit_one(w: _Work) -> str:
    w.ds.NumberOfFrames = 1
    return "NumberOfFrames 1 added to a single-frame image"


def _slice_thickness_garbled(w: _Work) -> str:
    w.set_raw("SliceThickness", "DS", b"abc ")
    return "SliceThickness 'abc' (not a DS)"


def _pixel_vr_switched(w: _Work) -> str:
    elem = w.ds[PIXEL_TAG]
    new = "OB" if elem.VR == "OW" else "OW"
    replacement = DataElement(PIXEL_TAG, new, elem.value)
    w.ds[PIXEL_TAG] = replacement
    return f"8-bit Pixel Data VR {elem.VR} -> {new}"


def _study_date_garbled(w: _Work) -> str:
    w.set_raw("StudyDate", "DA", w.rng.choice([b"2023-13-45", b"yesterday ", b"20231345"]))
    return "StudyDate not a DA value"


ANY: Callable[[_Work], bool] = lambda w: True
P: Callable[[_Work], bool] = lambda w: w.pixels
N: Callable[[_Work], bool] = lambda w: w.native
E: Callable[[_Work], bool] = lambda w: w.encapsulated

#: (kind, defective, layer, eligible, apply). The label is part of the kind.
KINDS: tuple[tuple[str, bool, str, Callable[[_Work], bool], Callable[[_Work], str]], ...] = (
    ("delete-pixel-attribute", True, "dataset", P, _delete_pixel_attribute),
    ("high-bit-wrong", True, "dataset", P, _high_bit_wrong),
    ("bits-stored-over-allocated", True, "dataset", P, _bits_stored_over_allocated),
    ("bits-allocated-invalid", True, "dataset", P, _bits_allocated_invalid),
    ("pixel-representation-invalid", True, "dataset", P, _pixel_representation_invalid),
    ("samples-per-pixel-mismatch", True, "dataset", P, _samples_mismatch),
    ("photometric-unknown", True, "dataset", P, _photometric_unknown),
    ("photometric-wrong-samples", True, "dataset", P, _photometric_wrong_samples),
    ("rows-columns-changed", True, "dataset", N, _rows_columns_changed),
    ("frames-changed", True, "dataset", P, _frames_changed),
    ("pixel-data-shortened", True, "dataset", N, _pixel_data_shortened),
    ("pixel-data-lengthened", True, "dataset", N, _pixel_data_lengthened),
    ("stream-cut-in-pixel-data", True, "stream", N, _stream_cut_in_pixel_data),
    ("sop-class-garbled", True, "dataset", ANY, _sop_class_garbled),
    ("meta-sop-class-differs", True, "meta", ANY, _meta_sop_class_differs),
    ("sop-class-unknown", True, "meta", ANY, _sop_class_unknown_both),
    ("ts-native-labelled-compressed", True, "meta",
     lambda w: w.native and not w.implicit and w.little, _ts_relabel_native_as_compressed),
    ("ts-compressed-labelled-native", True, "meta", E, _ts_relabel_compressed_as_native),
    ("frames-not-an-integer", True, "dataset", P, _frames_not_an_integer),
    ("rows-not-a-single-value", True, "dataset", P, _rows_not_a_single_value),
    ("planar-configuration-bad", True, "dataset", lambda w: w.pixels and w.samples == 3,
     _planar_configuration_bad),
    ("native-pixels-in-compressed-syntax", True, "dataset", E, _native_pixels_in_compressed_syntax),
    ("fragments-garbled", True, "dataset", E, _fragments_garbled),
    ("pixel-data-removed", True, "dataset", lambda w: w.source in PIXEL_MANDATORY_SOURCES,
     _pixel_data_removed),
    ("palette-without-lut", True, "dataset", lambda w: w.pixels and w.samples == 1,
     _palette_without_lut),
    ("instance-uid-missing", True, "dataset", ANY, _instance_uid_missing),
    # acceptable: may be stored (the first three with a warning)
    ("modality-deleted", False, "dataset", ANY, _modality_deleted),
    ("modality-empty", False, "dataset", ANY, _modality_emptied),
    ("type2-deleted", False, "dataset", lambda w: any(k in w.ds for k in TYPE2_WARNED),
     _type2_deleted),
    ("patient-name-changed", False, "dataset", ANY, _patient_name_changed),
    ("private-block-added", False, "dataset", ANY, _private_block_added),
    ("type3-deleted", False, "dataset", lambda w: any(k in w.ds for k in TYPE3_KEYWORDS),
     _type3_deleted),
    ("transcoded-implicit-explicit", False, "dataset",
     lambda w: w.little and w.ts in NATIVE, _transcoded_vr),
    ("frames-explicit-one", False, "dataset",
     lambda w: w.native and "NumberOfFrames" not in w.ds, _frames_explicit_one),
    ("slice-thickness-garbled", False, "dataset", P, _slice_thickness_garbled),
    ("pixel-vr-switched-8bit", False, "dataset",
     lambda w: w.native and not w.implicit and w.ds.BitsAllocated == 8, _pixel_vr_switched),
    ("study-date-garbled", False, "dataset", ANY, _study_date_garbled),
)


def _source_bytes() -> dict[str, bytes]:
    return {name: Path(get_testdata_file(name)).read_bytes() for name in SOURCES}


def mutations(seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT,
              uid_salt: str = "") -> list[Mutation]:
    """`count` mutated objects: every kind once (in KINDS order), then kinds drawn at random,
    each applied to a source drawn at random among the eligible ones. Same seed -> same
    objects, byte for byte (for a given pydicom test-data version and `uid_salt`)."""
    rng = random.Random(seed)
    sources = _source_bytes()
    pristine = {s: _Work(s, sources[s], rng) for s in SOURCES}   # read-only, for eligibility
    plan = list(KINDS) + [rng.choice(KINDS) for _ in range(max(0, count - len(KINDS)))]
    out = []
    for index, (kind, defective, layer, eligible, apply) in enumerate(plan[:count]):
        candidates = [s for s in SOURCES if eligible(pristine[s])]
        source = rng.choice(candidates)
        w = _Work(source, sources[source], rng)
        uid = UID(_uid(seed, index, uid_salt))
        w.ds.SOPInstanceUID = uid
        w.meta.MediaStorageSOPInstanceUID = uid
        description = apply(w)
        out.append(Mutation(index, kind, source, description, defective, layer, w.encode()))
    return out


def write_all(directory: str | Path, seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT,
              uid_salt: str = "") -> list[tuple[Path, Mutation]]:
    """Write the mutations as files (`NN-kind.dcm`) for dcmtk; returns (path, mutation)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for m in mutations(seed, count, uid_salt):
        path = directory / m.filename
        path.write_bytes(m.data)
        written.append((path, m))
    return written


def source_dataset(name: str) -> Dataset:
    """A fresh copy of one source, read like the SCP reads (for tests)."""
    return dcmread(BytesIO(_source_bytes()[name]), force=True)
