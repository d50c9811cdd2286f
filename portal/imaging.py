"""The viewer's pixel pipeline, pure functions over pydicom datasets and numpy arrays.

decode (any transfer syntax pydicom can decompress with the installed pylibjpeg / pyjpegls /
Pillow plugins) -> modality LUT (rescale slope/intercept) -> linear window/level (PS3.3
C.11.2.1.2) -> 8-bit, inverted for MONOCHROME1. Colour images (RGB, YBR_* converted to RGB by
pydicom) are shown as they are. The browser viewer gets `modality_frame` values and does the
windowing itself (smooth dragging); PNG/JPEG rendering serves DICOMweb `/rendered` and the
quarantine preview.
Also what WADO-RS sends without decoding: a stored frame's own bytes (`stored_frame_bytes`),
and, only when a client asks for uncompressed data, the object decoded (`explicit_le_bytes`);
thumbnails for the PS3.18 rendered `/thumbnail` resources.
"""
from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import apply_modality_lut, pixel_array

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
FORMATS = {"png": "PNG", "jpeg": "JPEG"}
UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99",
                "1.2.840.10008.1.2.2")


class ImagingError(ValueError):
    """The dataset has no displayable pixels, or a frame/window request is out of range."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float


@dataclass(frozen=True)
class ModalityFrame:
    """One frame after the modality LUT: float32 (rows, cols) for greyscale, uint8
    (rows, cols, 3) for colour; `window` is the dataset's default (or min/max)."""
    values: np.ndarray
    photometric: str
    window: Window

    @property
    def is_colour(self) -> bool:
        return self.values.ndim == 3

    @property
    def inverted(self) -> bool:
        return self.photometric == "MONOCHROME1"


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def photometric(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()


def _check_frame(ds: Dataset, frame: int) -> None:
    if "PixelData" not in ds:
        raise ImagingError("the object has no pixel data")
    if not 0 <= frame < frame_count(ds):
        raise ImagingError(f"frame {frame + 1} out of range 1..{frame_count(ds)}")


def stored_frame(ds: Dataset, frame: int = 0) -> np.ndarray:
    """One frame's stored values (decompressed; YBR converted to RGB), before any LUT."""
    _check_frame(ds, frame)
    try:
        return pixel_array(ds, index=frame if frame_count(ds) > 1 else None)
    except (NotImplementedError, RuntimeError, ValueError) as e:
        raise ImagingError(f"cannot decode the pixel data: {e}") from e


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    return None if value is None else float(value)


def default_window(ds: Dataset, values: np.ndarray) -> Window:
    """The dataset's first WindowCenter/Width, else the values' full range."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width >= 1:
        return Window(center, width)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    return Window((lo + hi) / 2, max(hi - lo, 1.0))


def modality_frame(ds: Dataset, frame: int = 0) -> ModalityFrame:
    """Decoded frame with rescale slope/intercept applied (greyscale) or as RGB (colour)."""
    arr = stored_frame(ds, frame)
    pi = photometric(ds)
    if arr.ndim == 3 or int(ds.get("SamplesPerPixel", 1)) > 1:
        rgb = arr.astype(np.uint8) if arr.dtype.itemsize == 1 else _to_uint8(arr)
        return ModalityFrame(rgb, "RGB", Window(127.5, 256.0))
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    return ModalityFrame(values, pi if pi in MONOCHROME else "MONOCHROME2",
                         default_window(ds, values))


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Colour samples wider than 8 bits scaled to 0..255 by their full range."""
    top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else float(arr.max() or 1)
    return np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)


def apply_window(values: np.ndarray, center: float, width: float,
                 invert: bool = False) -> np.ndarray:
    """Linear VOI (PS3.3 C.11.2.1.2.1) to uint8; `invert` for MONOCHROME1."""
    if not width >= 1:
        raise ImagingError("window width must be at least 1")
    x = values.astype(np.float64)
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    out = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255 if width > 1 else np.zeros_like(x)
    out = np.where(x <= low, 0.0, np.where(x > high, 255.0, out))
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return 255 - out if invert else out


def display_frame(ds: Dataset, frame: int = 0, center: float | None = None,
                  width: float | None = None) -> np.ndarray:
    """8-bit image to show: (rows, cols) greyscale or (rows, cols, 3) RGB."""
    mf = modality_frame(ds, frame)
    if mf.is_colour:
        return mf.values
    w = mf.window
    return apply_window(mf.values, w.center if center is None else center,
                        w.width if width is None else width, invert=mf.inverted)


def encode(image: np.ndarray, fmt: str = "png", quality: int = 90) -> bytes:
    """An 8-bit greyscale or RGB array as PNG or JPEG bytes."""
    if fmt not in FORMATS:
        raise ImagingError(f"unsupported image format {fmt!r}")
    buf = BytesIO()
    opts = {"quality": quality} if fmt == "jpeg" else {"optimize": False}
    Image.fromarray(np.ascontiguousarray(image)).save(buf, FORMATS[fmt], **opts)
    return buf.getvalue()


def render(ds: Dataset, frame: int = 0, center: float | None = None,
           width: float | None = None, fmt: str = "png") -> bytes:
    return encode(display_frame(ds, frame, center, width), fmt)


def render_png(ds: Dataset, frame: int = 0, center: float | None = None,
               width: float | None = None) -> bytes:
    """8-bit greyscale/RGB PNG of one frame; default window from the dataset or min/max."""
    return render(ds, frame, center, width, "png")


def viewer_payload(ds: Dataset, frame: int = 0) -> tuple[bytes, dict[str, str]]:
    """Body and headers the browser viewer windows itself: little-endian float32 values
    (greyscale) or interleaved uint8 RGB, described by the headers."""
    mf = modality_frame(ds, frame)
    rows, cols = mf.values.shape[:2]
    if mf.is_colour:
        body, dtype = np.ascontiguousarray(mf.values, np.uint8).tobytes(), "uint8"
    else:
        body, dtype = mf.values.astype("<f4").tobytes(), "float32"
    lo, hi = (float(mf.values.min()), float(mf.values.max())) if mf.values.size else (0.0, 0.0)
    return body, {"X-Rows": str(rows), "X-Columns": str(cols), "X-Photometric": mf.photometric,
                  "X-Samples": "3" if mf.is_colour else "1", "X-Dtype": dtype,
                  "X-Frames": str(frame_count(ds)), "X-Window-Center": f"{mf.window.center:g}",
                  "X-Window-Width": f"{mf.window.width:g}", "X-Min": f"{lo:g}",
                  "X-Max": f"{hi:g}"}


def native_frame_bytes(ds: Dataset, frame: int = 0) -> bytes:
    """One frame uncompressed in little-endian native layout (WADO-RS application/octet-stream):
    stored values, samples interleaved."""
    arr = stored_frame(ds, frame)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


def frame_syntax(ds: Dataset) -> str:
    """The transfer syntax the object's pixel data is stored in."""
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2.1")


def stored_frame_bytes(ds: Dataset, frame: int = 0) -> bytes:
    """One frame exactly as stored, not decoded (WADO-RS pass-through): the frame's bytes of
    native pixel data, or its encapsulated fragments joined (PS3.5 A.4) for a compressed
    syntax. ImagingError for bit-packed (1-bit) native data: those frames are not byte-aligned
    and are decoded instead."""
    _check_frame(ds, frame)
    n = frame_count(ds)
    if ds["PixelData"].is_undefined_length or frame_syntax(ds) not in UNCOMPRESSED:
        offsets = ds.get("ExtendedOffsetTable")
        lengths = ds.get("ExtendedOffsetTableLengths")
        ext = (offsets, lengths) if offsets is not None and lengths is not None else None
        try:
            return get_frame(ds.PixelData, frame, number_of_frames=n, extended_offsets=ext)
        except (ValueError, IndexError) as e:
            raise ImagingError(f"cannot split the encapsulated pixel data: {e}") from e
    bits = int(ds.get("BitsAllocated", 16))
    if bits % 8:
        raise ImagingError("bit-packed pixel data is not byte-aligned per frame")
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
    data = ds.PixelData[frame * size:(frame + 1) * size]
    if len(data) != size:
        raise ImagingError("the pixel data is shorter than its frames")
    return data


def explicit_le_bytes(ds: Dataset) -> bytes:
    """The object as a Part 10 file in Explicit VR Little Endian, decoded if it was stored
    compressed (WADO-RS when the client does not take the stored syntax)."""
    from pydicom.uid import ExplicitVRLittleEndian
    try:
        if "PixelData" in ds and ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as e:
        raise ImagingError(f"cannot decode the pixel data: {e}") from e
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def thumbnail(ds: Dataset, width: int, height: int, fmt: str = "jpeg",
              frame: int | None = None) -> bytes:
    """A frame (default: the middle one) shown with the dataset's own window, shrunk to fit
    width x height (aspect kept, never enlarged): PS3.18 thumbnail resources."""
    index = frame_count(ds) // 2 if frame is None else frame
    image = Image.fromarray(np.ascontiguousarray(display_frame(ds, index)))
    image.thumbnail((width, height))
    buf = BytesIO()
    image.save(buf, FORMATS[fmt], **({"quality": 85} if fmt == "jpeg" else {}))
    return buf.getvalue()
