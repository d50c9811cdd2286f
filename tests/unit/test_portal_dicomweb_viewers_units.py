"""Pure parts of DICOMweb for standard viewers (portal/dicomweb_http.py, portal/imaging.py):
transfer-syntax negotiation, viewport, bulkdata paths, viewer tokens, frames as stored."""
from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.sequence import Sequence

from portal import dicomweb_http as http
from portal import imaging

ELE, JLS, RLE = http.EXPLICIT_LE, "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5"
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
FRAME_TYPES = ("application/octet-stream", "image/jls", "image/jp2")


@pytest.mark.parametrize("accept,stored,expected", [
    ('multipart/related; type="application/dicom"; transfer-syntax=*', JLS, JLS),
    (f'multipart/related; type="application/dicom"; transfer-syntax={JLS}', JLS, JLS),
    ('multipart/related; type="application/dicom"', JLS, ELE),         # default: decoded
    ("*/*", JLS, ELE),
    ("*/*", ELE, ELE),
    ('multipart/related; type="application/dicom"', "1.2.840.10008.1.2", ELE),
    ('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90',
     JLS, None),
    ('multipart/related; type="application/dicom"; transfer-syntax=*; q=0', JLS, None),
])
def test_instance_syntax(accept, stored, expected):
    offers = http.offers(accept, ("application/dicom",))
    assert (http.instance_syntax(stored, offers) if offers else None) == expected


@pytest.mark.parametrize("accept,stored,expected", [
    (OHIF_FRAMES, JLS, ("application/octet-stream", JLS, True)),
    (OHIF_FRAMES, ELE, ("application/octet-stream", ELE, True)),
    ('multipart/related; type="image/jls"', JLS, ("image/jls", JLS, True)),
    ('multipart/related; type="application/octet-stream"', JLS,
     ("application/octet-stream", ELE, False)),                       # decoded when asked
    ("*/*", RLE, ("application/octet-stream", ELE, False)),
    ("*/*", "1.2.840.10008.1.2", ("application/octet-stream", ELE, True)),
    ('multipart/related; type="image/jp2"', JLS, None),
    ("text/html", JLS, None),
])
def test_frame_offer(accept, stored, expected):
    assert http.frame_offer(stored, http.offers(accept, FRAME_TYPES)) == expected


def test_viewport():
    assert http.parse_viewport(None) == (128, 128)
    assert http.parse_viewport("256,200") == (256, 200)
    for bad in ("0,9", "10", "a,b", "5000,5", "1,2,3"):
        with pytest.raises(http.BadRequest):
            http.parse_viewport(bad)


def test_viewer_token_round_trip_and_refusals():
    secret = b"s" * 32
    grant = http.ViewerToken("ann", "e1", "1.2.3.4", 2_000_000_000)
    token = http.mint_token(secret, grant)
    assert token.startswith("dwt1.") and http.read_token(secret, token, 1_900_000_000) == grant
    with pytest.raises(http.BadToken, match="expired"):
        http.read_token(secret, token, 2_000_000_001)
    with pytest.raises(http.BadToken):
        http.read_token(b"x" * 32, token, 0)                       # another server's secret
    payload, mac = token[5:].split(".")
    other = http.mint_token(secret, http.ViewerToken("ann", "e1", "9.9", 2_000_000_000))
    with pytest.raises(http.BadToken):                              # payload swapped
        http.read_token(secret, f"dwt1.{other[5:].split('.')[0]}.{mac}", 0)
    for junk in ("", "Basic x", "dwt1.", "dwt1.a.b", "x" * 2000):
        with pytest.raises(http.BadToken):
            http.read_token(secret, junk, 0)


def test_element_at_nested_paths():
    ds = Dataset()
    item = Dataset()
    item.add_new("LUTData", "OW", b"\x01\x00" * 8)
    ds.VOILUTSequence = Sequence([item])
    ds.PatientName = "X"
    assert http.element_at(ds, "00283010/0/00283006").value == b"\x01\x00" * 8
    assert http.element_at(ds, "00283010/1/00283006") is None
    assert http.element_at(ds, "7FE00010") is None
    for bad in ("00283010/0", "zz", "00100010/0/00100010", "00283010/x/00283006"):
        with pytest.raises(http.BadRequest):
            http.element_at(ds, bad)


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
                                  "CT_small.dcm"])
def test_stored_frame_is_not_decoded_and_decoding_matches(name):
    ds = dcmread(get_testdata_file(name))
    frame = imaging.stored_frame_bytes(ds, 0)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        from pydicom.encaps import get_frame
        assert frame == get_frame(ds.PixelData, 0, number_of_frames=1)
    else:
        assert frame == ds.PixelData
    native = dcmread(BytesIO(imaging.explicit_le_bytes(dcmread(get_testdata_file(name)))))
    assert native.file_meta.TransferSyntaxUID == ELE
    assert np.array_equal(native.pixel_array, ds.pixel_array)


def test_thumbnail_fits_the_viewport():
    from PIL import Image
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    img = Image.open(BytesIO(imaging.thumbnail(ds, 40, 20, "png")))
    assert img.size == (20, 20) and np.asarray(img).std() > 5
