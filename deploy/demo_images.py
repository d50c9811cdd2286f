"""Small synthetic image series for the demo's examinations: one study per imaging exam of the
HIS export, with the modality its exam kind implies, so every "Show examination" in the demo
opens a study.

Hospital-side test data (it carries the export's synthetic PHI: name, national id, accession;
the edge de-identifies it like any modality's images). The table `KINDS` says, per exam kind,
which storage class, how many images and what size; pixels are cheap NumPy phantoms, computed
once per kind and size. Choices that matter for the edge's burned-in screen
(deid/burned_in.py):

* DX and MG carry `BurnedInAnnotation NO` (their IOD requires the attribute; without it they
  are held for review);
* US carries a `SequenceOfUltrasoundRegions`: the upstream ultrasound recipe blanks everything
  outside the region and passes the image with 113101 Clean Pixel Data declared, as a real
  scanner's would be;
* CT and MR pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
DX = "1.2.840.10008.5.1.4.1.1.1.1"          # Digital X-Ray Image Storage - For Presentation
MG = "1.2.840.10008.5.1.4.1.1.1.2"          # Digital Mammography X-Ray - For Presentation
US = "1.2.840.10008.5.1.4.1.1.6.1"          # Ultrasound Image Storage


@dataclass(frozen=True)
class Kind:
    sop_class: str
    modality: str
    images: int
    size: int
    bits: int                # 16 (stored 12) or 8
    description: str         # words of the de-identification vocabulary only
    body_part: str


#: HIS exam kind -> the series the demo sends for it
KINDS: dict[str, Kind] = {
    "CT": Kind(CT, "CT", 6, 128, 16, "CT CHEST", "CHEST"),
    "MR": Kind(MR, "MR", 6, 128, 16, "MR BRAIN", "HEAD"),
    "RTG": Kind(DX, "DX", 1, 128, 16, "CHEST PA", "CHEST"),
    "MG": Kind(MG, "MG", 2, 128, 16, "MAMMOGRAPHY", "BREAST"),
    "USG": Kind(US, "US", 3, 128, 8, "ABDOMEN", "ABDOMEN"),
}


@lru_cache(maxsize=32)
def pixels(kind: str, size: int, index: int) -> bytes:
    """A phantom image for the kind (the index moves an insert, so slices differ)."""
    y, x = (np.mgrid[:size, :size] - size / 2) / (size / 2)
    r2 = x * x + y * y
    shift = 0.08 * (index - 2)
    if kind in ("CT", "MR"):
        img = np.where(r2 < 0.8, 1024 + (40 if kind == "CT" else 600), 0).astype(np.float64)
        img[(x - 0.35 - shift) ** 2 + y * y < 0.03] = 1024 + (900 if kind == "CT" else 1200)
        img[(x + 0.3) ** 2 + (y + shift) ** 2 < 0.02] = 1024 - (500 if kind == "CT" else -300)
        return np.clip(img, 0, 4095).astype(np.uint16).tobytes()
    if kind in ("RTG", "MG"):
        body = np.exp(-((x / 0.8) ** 2 + (y / 0.95) ** 2) * 2) * 2800
        if kind == "RTG":   # two darker lung fields
            body -= 900 * (((np.abs(x) - 0.35) / 0.25) ** 2 + (y / 0.55) ** 2 < 1)
        else:               # a breast outline from one side
            body *= (x + 1.1) ** 2 + y * y < 1.2 + 0.1 * index
        return np.clip(body + 300, 0, 4095).astype(np.uint16).tobytes()
    rng = np.random.default_rng(index)   # ultrasound: speckle in a fan
    fan = (y > -0.9) & (np.abs(x) < (y + 0.9) * 0.6) & (r2 < 1.6)
    img = fan * (90 + 50 * rng.random((size, size)))
    img[(x - shift) ** 2 + (y - 0.2) ** 2 < 0.04] = 20           # a dark cyst
    return img.astype(np.uint8).tobytes()


def _us_region(size: int) -> Dataset:
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 4, 4
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = size - 5, size - 5
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3   # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.05
    return region


def exam_series(kind: str, *, patient_id: str, patient_name: str, accession: str,
                study_date: str, sex: str = "O", study_uid: str | None = None) -> list[Dataset]:
    """The demo series of one exam of `kind` (a key of KINDS), as Part 10 datasets."""
    k = KINDS[kind]
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    out = []
    for i in range(k.images):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = k.sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID, ds.SOPInstanceUID = k.sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
        ds.AccessionNumber = accession
        ds.Modality = k.modality
        ds.Manufacturer = "Synthetic"
        ds.InstitutionName = "Synthetic General Hospital"
        ds.ReferringPhysicianName = "Doctor^Invented"
        ds.StudyDescription = ds.SeriesDescription = k.description
        ds.PatientName, ds.PatientID = patient_name, patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = sex if sex in ("M", "F") else "O"
        ds.BodyPartExamined = k.body_part
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = "1"
        ds.InstanceNumber = str(i + 1)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = k.size
        if k.bits == 16:
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        else:
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels(kind, k.size, i)
        _modality_attributes(ds, k, i, series_uid)
        out.append(ds)
    return out


def _modality_attributes(ds: Dataset, k: Kind, i: int, series_uid: str) -> None:
    if k.modality in ("CT", "MR"):
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = series_uid
        ds.ImagePositionPatient = [-125.0, -125.0, 5.0 * i]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1.95, 1.95]
        ds.SliceThickness = "5.0"
    if k.modality == "CT":
        ds.KVP = "120"
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
    elif k.modality == "MR":
        ds.ScanningSequence, ds.SequenceVariant = "SE", "NONE"
        ds.ScanOptions, ds.MRAcquisitionType = "", "2D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "500", "15", "1"
        ds.MagneticFieldStrength = "1.5"
        ds.WindowCenter, ds.WindowWidth = "1400", "1600"
    elif k.modality in ("DX", "MG"):
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.BurnedInAnnotation = "NO"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
        ds.PresentationLUTShape = "IDENTITY"
        ds.LossyImageCompression = "00"
        ds.ImagerPixelSpacing = ds.PixelSpacing = [0.2, 0.2]
        ds.WindowCenter, ds.WindowWidth = "1800", "3000"
        if k.modality == "MG":
            ds.ImageLaterality = "R"
            ds.ViewPosition = ("CC", "MLO")[i % 2]
        else:
            ds.ViewPosition = "PA"
    elif k.modality == "US":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
        ds.LossyImageCompression = "00"
        ds.SequenceOfUltrasoundRegions = Sequence([_us_region(k.size)])
