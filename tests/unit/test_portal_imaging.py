"""portal/imaging.py: decoding for every pixel layout and compressed transfer syntax we promise
(datasets are built and compressed here: no network for pydicom's test data), the window
arithmetic, MONOCHROME1 inversion, colour, multi-frame and the PNG/JPEG/viewer outputs."""
from __future__ import annotations

import shutil
import subprocess
from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless,
                         RLELossless, ExplicitVRLittleEndian, SecondaryCaptureImageStorage,
                         generate_uid)

from portal import imaging

RNG = np.random.default_rng(8)


def make_ds(arr: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
            slope=None, intercept=None, window=None) -> Dataset:
    """A Secondary Capture dataset holding `arr` ((frames,) rows, cols (, 3))."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.set_pixel_data(arr, photometric, bits_stored or arr.dtype.itemsize * 8)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    return ds


def roundtrip(ds: Dataset) -> Dataset:
    """Through a file, as the portal reads stored objects."""
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return dcmread(BytesIO(buf.getvalue()))


def png_pixels(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(BytesIO(data)))


# --- window arithmetic ---------------------------------------------------------------------

def test_window_follows_the_dicom_linear_formula():
    x = np.array([-1000, -161, -160, 39.5, 40, 239, 240, 3000], dtype=np.float32)
    out = imaging.apply_window(x, 40, 400)
    # PS3.3 C.11.2.1.2.1: <= c-0.5-(w-1)/2 -> 0, > c-0.5+(w-1)/2 -> 255, linear between
    assert out[0] == 0 and out[1] == 0 and out[-1] == 255 and out[-2] == 255
    expected = np.rint(((x[2:6] - 39.5) / 399 + 0.5) * 255)
    assert out[2:6].tolist() == expected.astype(int).tolist()
    assert out.dtype == np.uint8


def test_window_is_monotonic_and_inverts_for_monochrome1():
    x = np.linspace(-2000, 2000, 401)
    normal = imaging.apply_window(x, -600, 1500)
    inverted = imaging.apply_window(x, -600, 1500, invert=True)
    assert np.all(np.diff(normal.astype(int)) >= 0)
    assert (inverted.astype(int) == 255 - normal.astype(int)).all()


@pytest.mark.parametrize("width", [0, -5, float("nan")])
def test_window_width_below_one_is_refused(width):
    with pytest.raises(imaging.ImagingError):
        imaging.apply_window(np.zeros(3), 0, width)


def test_width_one_is_a_threshold():
    out = imaging.apply_window(np.array([9.0, 10.0, 10.6]), 10.5, 1)
    assert out.tolist() == [0, 0, 255]


# --- uncompressed layouts ------------------------------------------------------------------

@pytest.mark.parametrize("dtype,bits", [(np.uint8, 8), (np.int8, 8), (np.uint16, 12),
                                        (np.uint16, 16), (np.int16, 16), (np.int16, 12)])
def test_decodes_8_and_16_bit_signed_and_unsigned(dtype, bits):
    info = np.iinfo(dtype)
    lo, hi = (max(info.min, -(1 << (bits - 1))), min(info.max, (1 << (bits - 1)) - 1)) \
        if info.min < 0 else (0, min(info.max, (1 << bits) - 1))
    arr = RNG.integers(lo, hi, size=(6, 7), endpoint=True).astype(dtype)
    arr[0, 0], arr[0, 1] = lo, hi
    ds = roundtrip(make_ds(arr, bits_stored=bits))
    assert ds.PixelRepresentation == (1 if info.min < 0 else 0)
    mf = imaging.modality_frame(ds)
    assert mf.values.dtype == np.float32
    np.testing.assert_array_equal(mf.values, arr.astype(np.float32))
    assert mf.window == imaging.Window((lo + hi) / 2, hi - lo)      # min/max default


def test_rescale_slope_and_intercept_give_modality_values():
    stored = np.array([[0, 1024], [2024, 4095]], dtype=np.uint16)
    ds = roundtrip(make_ds(stored, bits_stored=12, slope="0.5", intercept="-1024"))
    values = imaging.modality_frame(ds).values
    np.testing.assert_allclose(values, stored * 0.5 - 1024)
    # the stored values are untouched in the WADO-RS native frame
    native = np.frombuffer(imaging.native_frame_bytes(ds), "<u2").reshape(2, 2)
    np.testing.assert_array_equal(native, stored)


def test_dataset_window_is_the_default_and_multivalue_takes_the_first():
    ds = make_ds(np.arange(16, dtype=np.int16).reshape(4, 4), window=(["40", "300"], ["400", "1500"]))
    assert imaging.modality_frame(ds).window == imaging.Window(40, 400)
    img = png_pixels(imaging.render_png(ds))
    np.testing.assert_array_equal(img, imaging.apply_window(np.arange(16).reshape(4, 4), 40, 400))


def test_explicit_window_overrides_the_default():
    ds = make_ds(np.array([[-1000, 0], [300, 1000]], dtype=np.int16), window=("40", "400"))
    lung = png_pixels(imaging.render_png(ds, center=-600, width=1500))
    soft = png_pixels(imaging.render_png(ds))
    assert lung[0, 0] > 0 and soft[0, 0] == 0 and not np.array_equal(lung, soft)


def test_monochrome1_renders_inverted():
    arr = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    m1 = png_pixels(imaging.render_png(make_ds(arr, "MONOCHROME1")))
    m2 = png_pixels(imaging.render_png(make_ds(arr, "MONOCHROME2")))
    assert m2[0, 0] == 0 and m1[0, 0] == 255
    np.testing.assert_array_equal(m1.astype(int), 255 - m2.astype(int))
    assert imaging.modality_frame(make_ds(arr, "MONOCHROME1")).inverted


def test_rgb_is_shown_as_it_is():
    rgb = RNG.integers(0, 255, size=(5, 6, 3), endpoint=True).astype(np.uint8)
    ds = roundtrip(make_ds(rgb, "RGB"))
    img = png_pixels(imaging.render_png(ds, center=10, width=2))   # no windowing on colour
    assert img.shape == (5, 6, 3)
    np.testing.assert_array_equal(img, rgb)
    body, headers = imaging.viewer_payload(ds)
    assert headers["X-Samples"] == "3" and headers["X-Dtype"] == "uint8"
    np.testing.assert_array_equal(np.frombuffer(body, np.uint8).reshape(5, 6, 3), rgb)


def test_ybr_full_is_converted_to_rgb():
    from pydicom.pixels import convert_color_space
    rgb = RNG.integers(0, 255, size=(4, 4, 3), endpoint=True).astype(np.uint8)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    img = png_pixels(imaging.render_png(roundtrip(make_ds(ybr, "YBR_FULL"))))
    assert np.abs(img.astype(int) - rgb.astype(int)).max() <= 2


def test_multiframe_frames_are_separate_and_range_checked():
    frames = np.stack([np.full((3, 4), v, np.uint16) for v in (10, 20, 30)])
    ds = roundtrip(make_ds(frames))
    assert imaging.frame_count(ds) == 3
    assert [float(imaging.modality_frame(ds, i).values[0, 0]) for i in range(3)] == [10, 20, 30]
    assert np.frombuffer(imaging.native_frame_bytes(ds, 2), "<u2").tolist() == [30] * 12
    for bad in (-1, 3):
        with pytest.raises(imaging.ImagingError):
            imaging.modality_frame(ds, bad)


def test_no_pixel_data_is_an_imaging_error():
    ds = Dataset()
    ds.Modality = "SR"
    with pytest.raises(imaging.ImagingError):
        imaging.render_png(ds)


def test_viewer_payload_is_little_endian_float32_with_its_description():
    arr = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    ds = make_ds(arr, "MONOCHROME1", 12, slope="1", intercept="-1024", window=("-600", "1500"))
    body, h = imaging.viewer_payload(ds)
    values = np.frombuffer(body, "<f4").reshape(int(h["X-Rows"]), int(h["X-Columns"]))
    np.testing.assert_array_equal(values, arr - 1024.0)
    assert (h["X-Photometric"], h["X-Window-Center"], h["X-Window-Width"]) == \
        ("MONOCHROME1", "-600", "1500")
    assert (h["X-Min"], h["X-Max"], h["X-Frames"]) == ("-1024", "2976", "1")


def test_jpeg_output_is_a_jpeg():
    ds = make_ds(np.arange(64, dtype=np.uint8).reshape(8, 8))
    data = imaging.render(ds, fmt="jpeg")
    assert data[:2] == b"\xff\xd8" and Image.open(BytesIO(data)).size == (8, 8)
    with pytest.raises(imaging.ImagingError):
        imaging.render(ds, fmt="gif")


# --- compressed transfer syntaxes ----------------------------------------------------------

def _ct_like(signed: bool = False) -> np.ndarray:
    y, x = np.mgrid[:32, :32]
    arr = (x * 37 + y * 11) % 4000
    return (arr - 1024).astype(np.int16) if signed else arr.astype(np.uint16)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless],
                         ids=["RLE", "JPEG-LS", "JPEG2000"])
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_lossless_compressed_greyscale_decodes_exactly(syntax, signed):
    arr = _ct_like(signed)
    ds = make_ds(arr, bits_stored=12 if not signed else 16, slope="1", intercept="-1024")
    ds.compress(syntax)
    ds = roundtrip(ds)
    assert ds.file_meta.TransferSyntaxUID == syntax and ds.file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(imaging.stored_frame(ds), arr)
    np.testing.assert_array_equal(imaging.modality_frame(ds).values, arr - 1024.0)
    assert png_pixels(imaging.render_png(ds, center=0, width=2000)).shape == (32, 32)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless],
                         ids=["RLE", "JPEG-LS", "JPEG2000"])
def test_lossless_compressed_rgb_multiframe(syntax):
    frames = RNG.integers(0, 255, size=(2, 32, 32, 3), endpoint=True).astype(np.uint8)
    ds = make_ds(frames, "RGB")
    ds.compress(syntax)
    ds = roundtrip(ds)
    for i in range(2):
        np.testing.assert_array_equal(imaging.display_frame(ds, i), frames[i])


def _encapsulated(arr: np.ndarray, photometric: str, payload: bytes, syntax) -> Dataset:
    ds = make_ds(arr, photometric)
    ds.PixelData = encapsulate([payload])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    return roundtrip(ds)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_baseline_decodes_close_to_the_original(mode):
    y, x = np.mgrid[:32, :32]
    grey = ((x + y) * 4).astype(np.uint8)
    arr = grey if mode == "L" else np.stack([grey, 255 - grey, np.full_like(grey, 90)], -1)
    buf = BytesIO()
    Image.fromarray(arr, mode).save(buf, "JPEG", quality=95)
    ds = _encapsulated(arr, "MONOCHROME2" if mode == "L" else "YBR_FULL_422", buf.getvalue(),
                       JPEGBaseline8Bit)
    shown = imaging.display_frame(ds) if mode == "RGB" else imaging.stored_frame(ds)
    assert shown.shape == arr.shape
    assert np.abs(shown.astype(int) - arr.astype(int)).mean() < 3


@pytest.mark.skipif(not shutil.which("dcmcjpeg"), reason="needs dcmtk's dcmcjpeg (Debian dcmtk)")
def test_jpeg_lossless_decodes_exactly(tmp_path):
    arr = _ct_like()
    src, dst = tmp_path / "in.dcm", tmp_path / "out.dcm"
    make_ds(arr, bits_stored=12).save_as(src, enforce_file_format=True)
    subprocess.run(["dcmcjpeg", "+e1", str(src), str(dst)], check=True, capture_output=True)
    ds = dcmread(dst)
    assert ds.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    np.testing.assert_array_equal(imaging.stored_frame(ds), arr)


def test_undecodable_pixel_data_is_an_imaging_error():
    arr = np.zeros((4, 4), np.uint8)
    ds = _encapsulated(arr, "MONOCHROME2", b"\xff\xd8not a jpeg\xff\xd9", JPEGBaseline8Bit)
    with pytest.raises(imaging.ImagingError):
        imaging.render_png(ds)
