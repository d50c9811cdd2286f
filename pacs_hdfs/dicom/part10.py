"""DICOM Part 10 files as bytes: writing a data set, and the checks every reader of received
bytes needs (pydicom reads a truncated element short without complaint)."""
from __future__ import annotations

from io import BytesIO

from pydicom.dataelem import RawDataElement
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

UNDEFINED_LENGTH = 0xFFFFFFFF

#: Transfer syntaxes every DICOM listener of ours accepts (the edge for modalities, the MDC's
#: DIMSE service): native first, then the compressed ones pydicom and pylibjpeg can decode.
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
TRANSFER_SYNTAXES = UNCOMPRESSED + [
    DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit,
    JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless,
    JPEG2000, RLELossless]


def check_lengths(ds) -> None:
    """Refuse a data set whose elements hold fewer bytes than their declared length."""
    for elem in ds._dict.values():
        if (isinstance(elem, RawDataElement) and elem.value is not None
                and elem.length != UNDEFINED_LENGTH and len(elem.value) != elem.length):
            raise ValueError(f"element {elem.tag} truncated")


def serialize(ds) -> bytes:
    """A data set as a Part 10 file (preamble + file meta), in its transfer syntax."""
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
