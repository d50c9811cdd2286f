"""deidentify() on pydicom's bundled test files: no errors, transfer syntax and pixel bytes kept."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.data import get_testdata_file

from deid import DeidKeys, deidentify

FILES = [
    "CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "US1_J2KR.dcm", "rtplan.dcm",
    "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "ExplVR_BigEndNoMeta.dcm", "nested_priv_SQ.dcm",
    "UN_sequence.dcm", "reportsi.dcm", "emri_small.dcm", "rtdose.dcm", "rtstruct.dcm",
    "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG-lossy.dcm", "693_J2KI.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm", "image_dfl.dcm",
]
KEYS = DeidKeys.generate()


def _load(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name, download=False)  # bundled files only, never the network
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return pydicom.dcmread(path, force=True)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # rtdose.dcm's own UIDs
@pytest.mark.parametrize("name", FILES)
def test_bundled_file_deidentifies_and_round_trips(name):
    source = _load(name)
    result = deidentify(source, KEYS)
    out = result.dataset
    source_syntax = getattr(getattr(source, "file_meta", None), "TransferSyntaxUID", None)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, out)
    back = pydicom.dcmread(io.BytesIO(buf.getvalue()), force=True)

    original_name = str(source.get("PatientName", "") or "")
    assert str(back.PatientName) == result.patient_pseudonym != original_name
    assert back.PatientIdentityRemoved == "YES"
    assert not any(elem.tag.is_private for elem in back.iterall())
    if "SOPInstanceUID" in source:
        assert back.SOPInstanceUID != source.SOPInstanceUID
        assert back.SOPClassUID == source.SOPClassUID
    if source_syntax is not None:
        assert back.file_meta.TransferSyntaxUID == source_syntax
    if "PixelData" in source:
        assert back.PixelData == source.PixelData
    if original_name.strip("^ "):
        assert original_name.encode() not in buf.getvalue()
