"""Ingest validation (pacs_hdfs.dicom.validation): good objects pass, each defect class is refused
with its status, acceptable defects warn, and hostile input never raises."""
from __future__ import annotations

import time
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.tag import Tag
from pydicom.uid import (ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid)
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from pacs_hdfs.dicom import validation as v
from pacs_hdfs.dicom.validation import (CANNOT_UNDERSTAND, MISMATCH, SUCCESS, WARNING, Verdict,
                                        check, expected_native_length)

PIXEL = Tag(0x7FE00010)

# pydicom warns about every invalid value it converts; these tests make them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: Good objects, one per case the rules distinguish. All must pass with 0x0000.
GOOD = [
    "CT_small.dcm",                      # native 16-bit, explicit VR LE
    "MR_small.dcm",
    "MR_small_implicit.dcm",             # implicit VR LE
    "MR_small_bigendian.dcm",            # explicit VR big endian
    "image_dfl.dcm",                     # deflated explicit VR LE
    "JPEG-lossy.dcm",                    # JPEG extended, BitsStored 12
    "SC_rgb_jpeg.dcm",                   # JPEG baseline RGB
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "SC_rgb_small_odd.dcm",              # native RGB 8-bit, odd pixel count (pad byte)
    "examples_rgb_color.dcm",            # native RGB, US
    "SC_ybr_full_422_uncompressed.dcm",  # native YBR_FULL_422 (2 samples per pixel on the wire)
    "examples_palette.dcm",              # PALETTE COLOR with LUTs
    "rtdose.dcm",                        # native multi-frame (15), 32-bit, implicit
    "SC_rgb_rle_2frame.dcm",             # encapsulated multi-frame RGB
    "examples_ybr_color.dcm",            # JPEG baseline, 30 frames
    "liver_1frame.dcm",                  # Segmentation, BitsAllocated 1 (bit-packed)
    "test-SR.dcm",                       # SR: no pixel data
    "reportsi.dcm",
    "waveform_ecg.dcm",                  # waveform: no pixel data
]


def read(name: str):
    """A test file read the way the SCP reads a received object."""
    return dcmread(BytesIO(Path(get_testdata_file(name)).read_bytes()), force=True)


def roundtrip(ds):
    """Write and re-read (so that hand-made elements look like received ones)."""
    buf = DicomBytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return dcmread(BytesIO(buf.getvalue()), force=True)


def minimal(sop_class: str, ts=ExplicitVRLittleEndian) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "OT", "20240101", 1, 1
    return ds


def refused(verdict: Verdict, status: int, text: str = "") -> bool:
    return (verdict.refusal is not None and verdict.status == status
            and text in verdict.comment and len(verdict.comment) <= v.MAX_COMMENT)


# --------------------------------------------------------------------------------------------
# good objects and the API
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", GOOD)
def test_good_objects_pass(name):
    verdict = check(read(name))
    assert verdict == Verdict(None, ()), verdict
    assert verdict.status == SUCCESS and verdict.storable and verdict.comment == ""


def test_encapsulated_pdf_without_pixel_data_passes():
    ds = minimal("1.2.840.10008.5.1.4.1.1.104.1")   # Encapsulated PDF Storage
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n\x00"
    assert check(roundtrip(ds)).status == SUCCESS


def test_float_pixel_data_is_checked_not_rejected():
    def parametric_map(bits: int, nbytes: int) -> Dataset:
        ds = minimal("1.2.840.10008.5.1.4.1.1.30")     # Parametric Map Storage
        ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 3, 1
        ds.PhotometricInterpretation, ds.BitsAllocated = "MONOCHROME2", bits
        ds.add(DataElement(0x7FE00008, "OF", bytes(nbytes)))
        return roundtrip(ds)

    assert check(parametric_map(32, 48)).status == SUCCESS
    assert refused(check(parametric_map(32, 44)), MISMATCH, "FloatPixelData 44 bytes")
    assert refused(check(parametric_map(16, 24)), MISMATCH, "BitsAllocated 16 invalid")


def test_verdict_status_and_comment():
    assert Verdict().status == SUCCESS
    assert Verdict(None, ("Modality missing",)).status == WARNING
    assert Verdict(None, ("Modality missing",)).storable
    assert Verdict((MISMATCH, "x"), ("w",)).status == MISMATCH
    assert not Verdict((MISMATCH, "x")).storable
    long = Verdict(None, tuple(f"Attribute{i} missing" for i in range(10)))
    assert len(long.comment) <= 64 and long.comment.endswith("...")


def test_statuses_are_the_storage_service_classes():
    assert STORAGE_SERVICE_CLASS_STATUS[WARNING][0] == "Warning"
    assert STORAGE_SERVICE_CLASS_STATUS[MISMATCH][0] == "Failure"
    assert STORAGE_SERVICE_CLASS_STATUS[CANNOT_UNDERSTAND][0] == "Failure"


def test_storage_classes_are_what_the_scp_negotiates():
    assert v.STORAGE_SOP_CLASSES == {str(cx.abstract_syntax)
                                     for cx in AllStoragePresentationContexts}
    assert "1.2.840.10008.5.1.4.1.1.2" in v.PIXEL_DATA_REQUIRED              # CT Image
    assert "1.2.840.10008.5.1.4.1.1.88.33" not in v.PIXEL_DATA_REQUIRED      # Comprehensive SR
    assert "1.2.840.10008.5.1.4.1.1.481.2" not in v.PIXEL_DATA_REQUIRED      # RT Dose: optional


# --------------------------------------------------------------------------------------------
# SOP class, transfer syntax, identity
# --------------------------------------------------------------------------------------------

def set_raw(ds, keyword, vr, value: bytes):
    tag = Tag(keyword)
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


@pytest.mark.parametrize("value,status,text", [
    (b"", CANNOT_UNDERSTAND, "SOPClassUID missing"),
    (b"1.2.840.10008.5.1.4.1.1.2x", CANNOT_UNDERSTAND, "not a valid UID"),
    (b"1.2..840.10008.5.1.4.1.1.2", CANNOT_UNDERSTAND, "not a valid UID"),
    (b"1.2.840.10008.5.1.4.1.1.2\\1.2", CANNOT_UNDERSTAND, "SOPClassUID: cannot understand"),
    (b"1.2.840.10008.1.1\x00", MISMATCH, "SOPClassUID differs"),
])
def test_sop_class_garbled(value, status, text):
    ds = read("CT_small.dcm")
    set_raw(ds, "SOPClassUID", "UI", value)
    assert refused(check(ds), status, text)


def test_sop_class_deleted_or_not_storage():
    ds = read("CT_small.dcm")
    del ds.SOPClassUID
    assert refused(check(ds), CANNOT_UNDERSTAND, "SOPClassUID missing")
    for uid in ("1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.2.2.1", "2.25.1234"):
        ds = read("CT_small.dcm")
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uid
        assert refused(check(ds), MISMATCH, "not a storage SOP class"), uid


def test_sop_class_must_agree_with_file_meta():
    ds = read("CT_small.dcm")
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"   # MR
    assert refused(check(ds), MISMATCH, "differs from MediaStorageSOPClassUID")
    del ds.file_meta.MediaStorageSOPClassUID        # meta without a class: the data set decides
    assert check(ds).status == SUCCESS


def test_comments_never_echo_received_strings():
    ds = read("CT_small.dcm")
    set_raw(ds, "SOPClassUID", "UI", b"DOE^JOHN 1955")
    verdict = check(ds)
    assert verdict.status == CANNOT_UNDERSTAND and "DOE" not in verdict.comment


def test_transfer_syntax_missing_or_unknown():
    ds = read("CT_small.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.3.4"
    assert refused(check(ds), CANNOT_UNDERSTAND, "not a known transfer syntax")
    del ds.file_meta.TransferSyntaxUID
    assert refused(check(ds), CANNOT_UNDERSTAND, "TransferSyntaxUID missing")
    del ds.file_meta
    assert refused(check(ds), CANNOT_UNDERSTAND, "no file meta")


@pytest.mark.parametrize("keyword", v.IDENTITY_ATTRIBUTES)
def test_identity_uids_required(keyword):
    ds = read("MR_small.dcm")
    del ds[keyword]
    assert refused(check(ds), MISMATCH, f"{keyword} missing")


# --------------------------------------------------------------------------------------------
# pixel module
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keyword", v.PIXEL_ELEMENTS[0x7FE00010].required)
def test_missing_pixel_attribute(keyword):
    ds = read("CT_small.dcm")
    del ds[keyword]
    assert refused(check(ds), MISMATCH, f"{keyword} missing")


@pytest.mark.parametrize("name,changes,text", [
    ("JPEG-lossy.dcm", {"HighBit": 4107}, "HighBit 4107 out of range"),      # issue 12's case
    ("CT_small.dcm", {"HighBit": 11}, "HighBit 11 is not BitsStored 16 - 1"),
    ("CT_small.dcm", {"BitsStored": 17, "HighBit": 16}, "BitsStored 17 > BitsAllocated 16"),
    ("CT_small.dcm", {"BitsAllocated": 12}, "BitsAllocated 12 out of range"),
    ("CT_small.dcm", {"PixelRepresentation": 2}, "PixelRepresentation 2 out of range"),
    ("CT_small.dcm", {"SamplesPerPixel": 3, "PlanarConfiguration": 0},
     "SamplesPerPixel 3 != MONOCHROME2"),
    ("CT_small.dcm", {"PhotometricInterpretation": "MONOCHROME3"}, "not recognised"),
    ("CT_small.dcm", {"PhotometricInterpretation": "PALETTE COLOR"},
     "RedPaletteColorLookupTableDescriptor missing"),
    ("CT_small.dcm", {"Rows": 0}, "Rows 0 out of range"),
    ("CT_small.dcm", {"NumberOfFrames": 0}, "NumberOfFrames 0 out of range"),
    ("SC_rgb_small_odd.dcm", {"PlanarConfiguration": 2}, "PlanarConfiguration 2 out of range"),
    ("SC_rgb_small_odd.dcm", {"PhotometricInterpretation": "MONOCHROME2"},
     "SamplesPerPixel 3 != MONOCHROME2"),
    ("SC_rgb_small_odd.dcm", {"PhotometricInterpretation": "YBR_RCT"},
     "needs a compressed syntax"),
    ("SC_rgb_small_odd.dcm", {"BitsAllocated": 1, "BitsStored": 1, "HighBit": 0},
     "BitsAllocated 1 with SamplesPerPixel 3"),
    ("JPEG2000.dcm", {"BitsStored": 17, "HighBit": 16}, "BitsStored 17 > BitsAllocated 16"),
])
def test_incoherent_pixel_module(name, changes, text):
    ds = read(name)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    assert refused(check(ds), MISMATCH, text), check(ds)


def test_planar_configuration_required_for_colour():
    ds = read("SC_rgb_small_odd.dcm")
    del ds.PlanarConfiguration
    assert refused(check(ds), MISMATCH, "PlanarConfiguration missing")


@pytest.mark.parametrize("keyword,vr,value", [
    ("NumberOfFrames", "IS", b"1A"),
    ("NumberOfFrames", "IS", b"2\\3 "),
    ("Rows", "US", b"\x00\x02\x00\x02"),          # two values
    ("Rows", "US", b"\x80\x00\x80"),              # 3 bytes for a US
    ("BitsAllocated", "LO", b"16"),               # a string where a number belongs
])
def test_values_that_do_not_parse(keyword, vr, value):
    ds = read("CT_small.dcm")
    set_raw(ds, keyword, vr, value)
    assert refused(check(ds), CANNOT_UNDERSTAND, f"{keyword}: cannot understand value")


def test_badvr_test_file_is_refused():
    assert refused(check(read("badVR.dcm")), CANNOT_UNDERSTAND, "NumberOfFrames")


@pytest.mark.parametrize("rows,cols,spp,frames,bits,expected", [
    (128, 128, 1, 1, 16, 32768),
    (3, 3, 3, 1, 8, 28),            # 27 bytes, padded to even
    (5, 5, 1, 1, 1, 4),             # 25 bits -> 4 bytes
    (3, 3, 1, 1, 1, 2),             # 9 bits -> 2 bytes
    (3, 3, 1, 3, 1, 4),             # 27 bits over frames, packed continuously -> 4 bytes
    (512, 512, 1, 1, 1, 32768),
    (10, 10, 1, 15, 32, 6000),
    (2, 2, 1, 1, 64, 32),
])
def test_expected_native_length(rows, cols, spp, frames, bits, expected):
    photometric = "MONOCHROME2" if spp == 1 else "RGB"
    p = {"Rows": rows, "Columns": cols, "SamplesPerPixel": spp, "NumberOfFrames": frames,
         "BitsAllocated": bits, "PhotometricInterpretation": photometric}
    assert expected_native_length(p) == expected


def test_expected_native_length_ybr_422():
    p = {"Rows": 100, "Columns": 100, "NumberOfFrames": 1, "BitsAllocated": 8,
         "PhotometricInterpretation": "YBR_FULL_422"}
    assert expected_native_length(p) == 20000


@pytest.mark.parametrize("name,delta", [
    ("CT_small.dcm", -2), ("CT_small.dcm", 2), ("CT_small.dcm", -32768 + 2),
    ("SC_rgb_small_odd.dcm", -1),             # 27 bytes: the pad byte is required
    ("liver_1frame.dcm", -2), ("rtdose.dcm", -400), ("rtdose.dcm", 400),
    ("MR_small_bigendian.dcm", -2), ("image_dfl.dcm", 2),
])
def test_native_pixel_data_length(name, delta):
    ds = read(name)
    value = ds.PixelData
    ds.PixelData = value[:delta] if delta < 0 else value + bytes(delta)
    assert refused(check(ds), MISMATCH, f"PixelData {len(value) + delta} bytes")


def test_native_frames_and_rows_change_the_expected_length():
    ds = read("rtdose.dcm")
    ds.NumberOfFrames = 14
    assert refused(check(ds), MISMATCH, "PixelData 6000 bytes, expected 5600")
    ds = read("MR_small.dcm")
    ds.Rows = 63
    assert refused(check(ds), MISMATCH, "expected 8064")


def test_padded_test_file_is_refused():
    # pydicom's MR_small_padded carries 128 bytes beyond the image: not "equal", so refused.
    assert refused(check(read("MR_small_padded.dcm")), MISMATCH, "PixelData 8320 bytes")


def test_truncated_stream_is_refused():
    assert refused(check(read("MR_truncated.dcm")), CANNOT_UNDERSTAND, "PixelData truncated")


def test_encapsulated_pixel_data_in_native_syntax():
    ds = read("JPEG2000.dcm")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert refused(check(ds), CANNOT_UNDERSTAND, "encapsulated in a native syntax")


def test_native_pixel_data_in_encapsulated_syntax():
    ds = read("CT_small.dcm")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    assert refused(check(ds), CANNOT_UNDERSTAND, "not encapsulated")


def encapsulated(ds, value: bytes):
    elem = DataElement(PIXEL, "OB", value)
    elem.is_undefined_length = True
    ds[PIXEL] = elem
    return ds


def item(payload: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + len(payload).to_bytes(4, "little") + payload


@pytest.mark.parametrize("value,status,text", [
    (item(b""), MISMATCH, "has no fragments"),
    (item(b"") + item(b"\xff\xd8\xff\xd9")[:10], CANNOT_UNDERSTAND, "fragments malformed"),
    (b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + item(b"ab"), CANNOT_UNDERSTAND, "fragments malformed"),
    (item(b"") + item(b"ab")[:6], CANNOT_UNDERSTAND, "fragment header truncated"),
])
def test_broken_fragments(value, status, text):
    assert refused(check(encapsulated(read("JPEG2000.dcm"), value)), status, text)


def test_fewer_fragments_than_frames():
    ds = read("SC_rgb_rle_2frame.dcm")
    ds.NumberOfFrames = 3
    assert refused(check(ds), MISMATCH, "2 fragments for 3 frames")
    ds = encapsulated(read("JPEG2000.dcm"), item(b"") + item(b"ab") + item(b"cd"))
    assert check(ds).status == SUCCESS        # two fragments for one frame is allowed


def test_pixel_data_missing_from_an_image():
    ds = read("CT_small.dcm")
    del ds.PixelData
    assert refused(check(ds), MISMATCH, "Pixel Data missing")
    ds = read("rtdose.dcm")                   # RT Dose may carry only DVHs
    del ds.PixelData
    assert check(ds).status == SUCCESS


def test_two_pixel_data_elements():
    ds = read("CT_small.dcm")
    ds.add(DataElement(0x7FE00008, "OF", bytes(16)))
    assert refused(check(ds), MISMATCH, "more than one pixel data element")


# --------------------------------------------------------------------------------------------
# warnings
# --------------------------------------------------------------------------------------------

def test_missing_modality_warns_and_is_storable():
    ds = read("CT_small.dcm")
    del ds.Modality
    verdict = check(ds)
    assert verdict.status == WARNING and verdict.storable
    assert verdict.warnings == ("Modality missing",) and verdict.comment == "Modality missing"


def test_empty_modality_warns():
    ds = read("MR_small.dcm")
    ds.Modality = ""
    assert check(ds).warnings == ("Modality empty",)


@pytest.mark.parametrize("keyword", ["StudyDate", "SeriesNumber", "InstanceNumber"])
def test_missing_type2_attribute_warns(keyword):
    ds = read("MR_small.dcm")
    del ds[keyword]
    assert check(ds).warnings == (f"{keyword} missing",)


def test_empty_type2_attribute_is_fine():
    ds = read("MR_small.dcm")
    ds.StudyDate = ""
    assert check(ds).status == SUCCESS


def test_warnings_do_not_hide_a_refusal():
    ds = read("CT_small.dcm")
    del ds.Modality
    ds.HighBit = 3
    verdict = check(ds)
    assert verdict.status == MISMATCH and verdict.warnings == ()


def test_nothing_is_repaired():
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    ds = dcmread(BytesIO(raw), force=True)
    del ds.Modality
    ds.HighBit = 4107
    before = {e.tag: e.value for e in ds.iterall() if e.tag != PIXEL}
    check(ds)
    assert {e.tag: e.value for e in ds.iterall() if e.tag != PIXEL} == before
    assert "Modality" not in ds


# --------------------------------------------------------------------------------------------
# hostile input, speed
# --------------------------------------------------------------------------------------------

class Exploding(Dataset):
    """A data set whose attribute access fails, as a hostile encoding might make it."""

    def __init__(self, base, keyword):
        super().__init__(base)
        self.file_meta = base.file_meta
        self._boom = keyword

    def get(self, key, default=None):
        if key == self.__dict__.get("_boom"):
            raise RuntimeError("boom")
        return super().get(key, default)


@pytest.mark.parametrize("keyword", ["SOPClassUID", "Rows", "PhotometricInterpretation",
                                     "Modality"])
def test_exception_becomes_cannot_understand_naming_the_attribute(keyword):
    verdict = check(Exploding(read("CT_small.dcm"), keyword))
    assert refused(verdict, CANNOT_UNDERSTAND, keyword)


@pytest.mark.parametrize("thing", [None, "not a data set", 42, Dataset()])
def test_not_a_dataset_never_raises(thing):
    assert check(thing).status == CANNOT_UNDERSTAND


def test_unexpected_error_inside_a_rule(monkeypatch):
    monkeypatch.setattr(v, "expected_native_length", lambda p: 1 // 0)
    verdict = check(read("CT_small.dcm"))
    assert refused(verdict, CANNOT_UNDERSTAND, "cannot check pixel module (ZeroDivisionError)")


def test_pixel_data_is_not_decoded_or_converted():
    ds = read("CT_small.dcm")
    assert check(ds).status == SUCCESS
    assert isinstance(ds.get_item(PIXEL), RawDataElement)     # never even converted


def test_fast_enough_for_hundreds_per_second():
    raw = Path(get_testdata_file("examples_ybr_color.dcm")).read_bytes()   # 30-frame JPEG
    datasets = [dcmread(BytesIO(raw), force=True) for _ in range(100)]
    start = time.perf_counter()
    for ds in datasets:
        assert check(ds).status == SUCCESS
    per_object = (time.perf_counter() - start) / len(datasets)
    assert per_object < 0.005, f"{per_object * 1e3:.2f} ms per object"
