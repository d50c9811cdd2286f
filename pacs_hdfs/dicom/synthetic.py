"""Synthetic DICOM for tests and benchmarks: a CT phantom series with realistic headers and
invented PHI (no real person), written as Explicit VR Little Endian files."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


@lru_cache(maxsize=4)
def phantom_slice(size: int) -> bytes:
    """A water cylinder with two inserts, HU + 1024 as uint16 (computed once)."""
    y, x = np.mgrid[:size, :size] - size / 2
    img = np.zeros((size, size), np.uint16)
    img[x * x + y * y < (0.45 * size) ** 2] = 1024
    img[(x - size / 6) ** 2 + y * y < (size / 12) ** 2] = 2024
    img[(x + size / 6) ** 2 + y * y < (size / 16) ** 2] = 524
    return img.tobytes()


def ct_slice(i: int, *, patient_id: str, patient_name: str, study_uid: str, series_uid: str,
             study_date: str = "20240312", size: int = 512, accession: str = "ACC0001") -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.AccessionNumber = accession
    ds.Modality = "CT"
    ds.Manufacturer = "Synthetic"
    ds.InstitutionName = "Synthetic General Hospital"
    ds.ReferringPhysicianName = "Doctor^Invented"
    ds.StudyDescription = "CT CHEST"
    ds.SeriesDescription = "AXIAL 1.0"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.PatientAge = "064Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = "2"
    ds.InstanceNumber = str(i + 1)
    ds.ImagePositionPatient = [-250.0, -250.0, float(i)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = series_uid
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.PixelSpacing = [0.977, 0.977]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.PixelData = phantom_slice(size)
    return ds


def ct_series(n: int, *, patient_id: str, patient_name: str, study_uid: str | None = None,
              size: int = 512, **kw) -> list[Dataset]:
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    return [ct_slice(i, patient_id=patient_id, patient_name=patient_name, study_uid=study_uid,
                     series_uid=series_uid, size=size, **kw) for i in range(n)]


def add_phi_markers(ds: Dataset, marker: str) -> Dataset:
    """Fill PHI-bearing attributes (top level, nested, private) with `marker` strings."""
    for kw in ("PatientName", "PatientID", "OtherPatientIDs", "PatientAddress",
               "PatientTelephoneNumbers", "InstitutionName", "InstitutionAddress",
               "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
               "StationName", "AdditionalPatientHistory", "PatientComments", "StudyID",
               "AccessionNumber", "RequestingPhysician", "ImageComments", "DeviceSerialNumber",
               "PatientMotherBirthName", "MilitaryRank", "Occupation"):
        # (EthnicGroup is kept on purpose: Retain Patient Characteristics option)
        setattr(ds, kw, f"{marker}{kw[:6]}")
    ds.PatientBirthDate = "19710203"
    item = Dataset()
    item.PatientName = f"{marker}SeqName"
    item.PatientID = f"{marker}SeqID"
    inner = Dataset()
    inner.ReferringPhysicianName = f"{marker}Deep"
    item.ReferencedStudySequence = Sequence([inner])
    ds.OtherPatientIDsSequence = Sequence([item])
    req = Dataset()
    req.RequestingPhysician = f"{marker}Req"
    req.RequestedProcedureDescription = f"{marker}Proc"
    ds.RequestAttributesSequence = Sequence([req])
    block = ds.private_block(0x0011, "SYNTH PRIVATE", create=True)
    block.add_new(0x01, "LO", f"{marker}Private")
    block.add_new(0x02, "SQ", Sequence([_private_item(marker)]))
    return ds


#: Original dates `add_hard_phi_markers` writes; none of them may be stored unshifted. The year
#: 1973 cannot come out of shifting this object's other dates (2024, birth 1960: removed).
HARD_MARKER_DATES = ("19730405", "19730406", "19730407", "19730408", "19730409")


def add_hard_phi_markers(ds: Dataset, marker: str) -> Dataset:
    """PHI in the places a naive de-identifier misses (issue 14), each carrying `marker` or
    one of `HARD_MARKER_DATES`:

    - free-text descriptors with a name and a national id (StudyDescription, SeriesDescription,
      ProtocolName);
    - a DT range and a multi-valued DA whose second values are easy to skip;
    - EncryptedAttributesSequence with PHI in its (unencrypted, for the test) content;
    - person names sent with the wrong VR (CS, OB, UN), judged wrongly by the received VR;
    - an SR-style content tree: TEXT, PNAME, DATETIME and DATE items two levels deep.
    """
    from pydicom.dataelem import DataElement
    d1, d2, d3, d4, d5 = HARD_MARKER_DATES
    ds.StudyDescription = f"CT KLATKI {marker} KOWALSKA 73040512345"
    ds.SeriesDescription = f"AXIAL {marker}"
    ds.ProtocolName = f"Chest {marker}"
    ds.AcquisitionDateTime = f"{d1}101010-{d2}111111"
    ds.add_new(0x00181200, "DA", [d1, d3])  # DateOfLastCalibration, two values
    enc = Dataset()
    enc.EncryptedContentTransferSyntaxUID = "1.2.840.10008.1.2.1"
    enc.EncryptedContent = f"{marker}Encrypted".encode()
    ds.EncryptedAttributesSequence = Sequence([enc])
    ds[0x00081060] = DataElement(0x00081060, "CS", f"{marker}CS")  # NameOfPhysiciansReading..
    ds[0x00081048] = DataElement(0x00081048, "OB", f"{marker}OB".encode())  # PhysiciansOfRecord
    ds[0x00101001] = DataElement(0x00101001, "UN", f"{marker}UN".encode())  # OtherPatientNames
    text = Dataset()
    text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
    text.TextValue = f"Findings for {marker} Anna Kowalska"
    name = Dataset()
    name.RelationshipType, name.ValueType = "HAS OBS CONTEXT", "PNAME"
    name.PersonName = f"{marker}^Observer"
    when = Dataset()
    when.RelationshipType, when.ValueType = "HAS OBS CONTEXT", "DATETIME"
    when.DateTime = f"{d3}080000"
    day = Dataset()
    day.RelationshipType, day.ValueType = "CONTAINS", "DATE"
    day.Date = d4
    container = Dataset()
    container.RelationshipType, container.ValueType = "CONTAINS", "CONTAINER"
    container.ContentSequence = Sequence([text, name, day])
    ds.ContentSequence = Sequence([when, container])
    ds.InstanceCreationDate = d5
    return ds


def _private_item(marker: str) -> Dataset:
    d = Dataset()
    d.PatientName = f"{marker}PrivSeq"
    return d


def write_files(datasets: list[Dataset], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        p = directory / f"{i:05d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths
