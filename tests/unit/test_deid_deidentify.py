"""deidentify(): no PHI marker survives anywhere; structure, pixels and characteristics do."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from deid import DeidKeys, DeidOptions, deidentify, reidentify
from deid.profile_table import load_rows

MARKER = "PHIMARKER"
#: Attributes the chosen options retain on purpose (test-owned expectation, not read from code).
RETAINED = {
    "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup", "SmokingStatus",
    "PregnancyStatus", "PatientSexNeutered", "SelectorASValue",
    "StudyDescription", "SeriesDescription",
}
TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "AE", "CS", "UR"}
_counter = itertools.count(1)


def _marker() -> str:
    return f"{MARKER}_{next(_counter):03d}"  # 13 chars: valid for SH, CS and AE


def _phi_rows():
    """(tag, vr) of every exact-tag Table E.1-1 attribute with a text VR, minus retained ones."""
    for row in load_rows():
        if "X" in row.tag or row.keyword in RETAINED:
            continue
        tag = int(row.tag, 16)
        if tag >> 16 in (0x0000, 0x0002, 0x0004):  # command, file meta, DICOMDIR groups
            continue
        vr = dictionary_VR(tag)
        if vr in TEXT_VRS or vr == "UI":
            yield tag, vr


def _fill_phi(ds: Dataset, uid_seed: str) -> None:
    """A marker (or a unique UID) in every PHI-bearing text attribute of the table."""
    for n, (tag, vr) in enumerate(_phi_rows()):
        value = f"1.2.826.0.1.3680043.99.{uid_seed}.{n}" if vr == "UI" else _marker()
        ds.add_new(tag, vr, value)


def _code_item(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = "T-D0050"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = meaning
    return item


def make_ct(patient_id="PID-1", name="Doe^Jane", study="1", series="1", instance="1",
            study_date="20200315", rows=8, phi=True) -> Dataset:
    """A CT object with markers in every PHI-bearing place, top level and nested."""
    root = f"1.2.826.0.1.3680043.10.{abs(hash(patient_id)) % 10**6}"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.SourceApplicationEntityTitle = _marker()
    if phi:
        _fill_phi(ds, f"{study}{series}{instance}")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID = f"{root}.{study}"
    ds.SeriesInstanceUID = f"{root}.{study}.{series}"
    ds.SOPInstanceUID = f"{root}.{study}.{series}.{instance}"
    ds.FrameOfReferenceUID = f"{root}.{study}.99"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PatientAge = "050Y"
    ds.PatientWeight = "61.5"
    ds.Modality = "CT"
    ds.StudyDescription = "CT CHEST"
    ds.SeriesDescription = "AXIAL 1MM"
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.StudyTime = "101530"
    ds.AcquisitionDateTime = f"{study_date}101545.123+0100"
    ds.AccessionNumber = f"ACC{patient_id}{study}"[:16]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter = "1", "-1024", "40"
    ds.PixelData = np.arange(rows * rows, dtype=np.int16).tobytes()
    if phi:
        # nested: sequences the table removes, and ones it keeps whose items must be cleaned
        request = Dataset()
        request.AccessionNumber = _marker()
        request.RequestedProcedureDescription = _marker()
        request.ScheduledProcedureStepDescription = _marker()
        ds.RequestAttributesSequence = Sequence([request])
        ref_patient = Dataset()
        ref_patient.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.77.1"
        ref_patient.PatientName = _marker()
        ds.ReferencedPatientSequence = Sequence([ref_patient])
        other_ids = Dataset()
        other_ids.PatientID = _marker()
        other_ids.IssuerOfPatientID = _marker()
        ds.OtherPatientIDsSequence = Sequence([other_ids])
        region = _code_item("Chest")
        region.add_new(0x00081080, "LO", _marker())  # AdmittingDiagnosesDescription, nested
        region.add_new(0x0040A160, "UT", _marker())  # TextValue: unlisted free text
        deeper = Dataset()
        deeper.PerformingPhysicianName = _marker()
        deeper.PatientComments = _marker()
        deeper.ContentDate = study_date
        procedure = _code_item("CT of chest")  # code meanings are vocabulary: kept
        procedure.add_new(0x00080108, "LT", _marker())  # ExtendedCodeMeaning: unlisted free text
        region.ProcedureCodeSequence = Sequence([procedure])
        region.PurposeOfReferenceCodeSequence = Sequence([deeper])
        ds.AnatomicRegionSequence = Sequence([region])
        ds.add_new(0x00100033, "LO", _marker())  # PatientBirthDateInAlternativeCalendar (unlisted)
        ds.add_new(0x00142006, "PN", _marker())  # EvaluatorName: a person name the table omits
        ds.add_new(0x60004000, "LT", _marker())  # OverlayComments, repeating group
        # private block with text and a private sequence
        block = ds.private_block(0x0009, "ACME PHI 1.0", create=True)
        block.add_new(0x01, "LO", _marker())
        block.add_new(0x02, "LT", _marker())
        inner = Dataset()
        inner.PatientName = _marker()
        block.add_new(0x03, "SQ", Sequence([inner]))
        ds.add_new(0x00291010, "UN", _marker().encode())
    return ds


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def keys() -> DeidKeys:
    return DeidKeys.generate()


def test_no_marker_survives_in_bytes_or_text(keys):
    source = make_ct()
    assert MARKER.encode() in _bytes(source)  # the fixture really carries PHI
    result = deidentify(source, keys)
    assert MARKER.encode() not in _bytes(result.dataset)
    assert MARKER not in str(result.dataset)
    assert MARKER not in str(result)
    assert MARKER not in repr(result.reid_record)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_no_marker_survives_from_encoded_input(keys, syntax):
    """Datasets decoded from bytes (as the SCP gets them) hold raw, lazily decoded elements."""
    source = make_ct()
    source.file_meta.TransferSyntaxUID = syntax
    encoded = _bytes(source)
    assert MARKER.encode() in encoded
    decoded = pydicom.dcmread(io.BytesIO(encoded))  # elements stay raw until accessed
    out = deidentify(decoded, keys).dataset
    data = _bytes(out)
    assert MARKER.encode() not in data and MARKER not in str(out)
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == syntax


def test_original_identifiers_and_uids_do_not_survive(keys):
    source = make_ct(patient_id="MRN-778899", name="Smith^Alice")
    data = _bytes(deidentify(source, keys).dataset)
    for original in ("MRN-778899", "Smith", source.StudyInstanceUID, source.SOPInstanceUID,
                     source.FrameOfReferenceUID, source.AccessionNumber, "19700101",
                     "1.2.826.0.1.3680043.99"):
        assert original.encode() not in data, original


def test_private_tags_removed_unless_safelisted(keys):
    out = deidentify(make_ct(), keys).dataset
    assert not any(elem.tag.is_private for elem in out.iterall())
    safe = DeidOptions(safe_private=frozenset({("ACME PHI 1.0", 0x01)}))
    kept = deidentify(make_ct(), keys, safe).dataset
    assert kept.private_block(0x0009, "ACME PHI 1.0")[0x01].value.startswith(MARKER)
    assert 0x00091002 not in kept and 0x00091003 not in kept and 0x00291010 not in kept


def test_keeps_modality_pixels_characteristics_and_descriptions(keys):
    source = make_ct()
    out = deidentify(source, keys).dataset
    assert out.Modality == "CT"
    assert out.PixelData == source.PixelData
    assert (out.Rows, out.Columns, out.BitsAllocated) == (source.Rows, source.Columns, 16)
    assert (out.RescaleSlope, out.RescaleIntercept, out.WindowCenter) == (1, -1024, 40)
    assert out.SOPClassUID == CTImageStorage
    for keyword in ("PatientSex", "PatientAge", "PatientWeight", "StudyDescription", "SeriesDescription"):
        assert out[keyword].value == source[keyword].value
    assert out.PatientBirthDate == ""
    assert out.AnatomicRegionSequence[0].CodeMeaning == "Chest"  # kept sequence, cleaned item


def test_pixel_data_not_copied(keys):
    source = pydicom.dcmread(io.BytesIO(_bytes(make_ct(rows=64))))
    out = deidentify(source, keys).dataset
    assert out.PixelData is source.PixelData


def test_input_not_mutated(keys):
    source = pydicom.dcmread(io.BytesIO(_bytes(make_ct())))
    before = _bytes(source)
    deidentify(source, keys)
    assert _bytes(source) == before


def test_marks_method_and_options(keys):
    out = deidentify(make_ct(), keys).dataset
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert {"113100", "113107", "113108", "113105"} <= codes
    assert all(item.CodingSchemeDesignator == "DCM" for item in out.DeidentificationMethodCodeSequence)
    assert out.DeidentificationMethod


def test_options_off_drop_characteristics_and_dates(keys):
    options = DeidOptions(retain_patient_characteristics=False, clean_structured_content=False,
                          retain_longitudinal_modified_dates=False, clean_descriptors=False)
    out = deidentify(make_ct(), keys, options).dataset
    assert not out.get("PatientSex") and "PatientAge" not in out
    assert not out.get("StudyDate") and "StudyDescription" not in out
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100"}


def test_same_patient_same_pseudonym_and_shift_across_studies(keys):
    a = deidentify(make_ct(study="1", study_date="20200315", phi=False), keys)
    b = deidentify(make_ct(study="2", study_date="20230101", phi=False), keys)
    assert a.patient_pseudonym == b.patient_pseudonym == a.dataset.PatientID == str(b.dataset.PatientName)
    assert a.patient_pseudonym.startswith("RS") and len(a.patient_pseudonym) == 18
    shift_a = a.reid_record.date_shift_days
    assert shift_a == b.reid_record.date_shift_days and -3650 <= shift_a <= -1
    interval = lambda r: dt.datetime.strptime(r.dataset.StudyDate, "%Y%m%d")  # noqa: E731
    assert (interval(b) - interval(a)).days == (dt.date(2023, 1, 1) - dt.date(2020, 3, 15)).days
    assert a.dataset.StudyInstanceUID != b.dataset.StudyInstanceUID


def test_dates_shift_consistently_and_times_stay(keys):
    result = deidentify(make_ct(), keys)
    out, shift = result.dataset, result.reid_record.date_shift_days
    expected = (dt.date(2020, 3, 15) + dt.timedelta(days=shift)).strftime("%Y%m%d")
    assert out.StudyDate == out.SeriesDate == expected
    assert out.AcquisitionDateTime == f"{expected}101545.123+0100"
    assert out.StudyTime == "101530"
    nested = out.AnatomicRegionSequence[0].PurposeOfReferenceCodeSequence[0]
    assert nested.ContentDate == expected and "PerformingPhysicianName" not in nested


def test_different_patients_differ(keys):
    results = [deidentify(make_ct(patient_id=f"P{n}", phi=False), keys) for n in range(6)]
    assert len({r.patient_pseudonym for r in results}) == 6
    assert len({r.reid_record.date_shift_days for r in results}) > 1
    other = deidentify(make_ct(patient_id="P0", phi=False), DeidKeys.generate())
    assert other.patient_pseudonym != results[0].patient_pseudonym


def test_study_structure_and_references_survive_uid_remapping(keys):
    first = make_ct(instance="1", phi=False)
    second = make_ct(instance="2", phi=False)
    ref = Dataset()
    ref.ReferencedSOPClassUID = first.SOPClassUID
    ref.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.ReferencedImageSequence = Sequence([ref])
    second.SourceImageSequence = Sequence([ref])
    a, b = deidentify(first, keys).dataset, deidentify(second, keys).dataset
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    for seq in (b.ReferencedImageSequence, b.SourceImageSequence):
        assert seq[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
        assert seq[0].ReferencedSOPClassUID == CTImageStorage
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert a.StudyInstanceUID.startswith("2.25.") and a.StudyInstanceUID.is_valid


def test_accession_number_uses_shared_hash(keys):
    from deid import pseudonymise_accession

    source = make_ct(phi=False)
    out = deidentify(source, keys).dataset
    assert out.AccessionNumber == pseudonymise_accession(keys.pseudonym, source.AccessionNumber)


def test_works_without_file_meta(keys):
    source = make_ct()
    del source.file_meta
    out = deidentify(source, keys).dataset
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, out, implicit_vr=False, little_endian=True)
    assert MARKER.encode() not in buf.getvalue()
    assert "file_meta" not in out.__dict__ or not out.file_meta


def test_reidentify_restores_originals(keys):
    source = make_ct(phi=False)
    result = deidentify(source, keys)
    restored = reidentify(result.dataset, result.reid_record)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID", "StudyDate",
                    "AcquisitionDateTime", "AccessionNumber"):
        assert restored[keyword].value == source[keyword].value, keyword
    assert restored.PatientIdentityRemoved == "NO"
    assert restored.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
    assert result.dataset.PatientID == result.patient_pseudonym  # reidentify copied, not mutated
