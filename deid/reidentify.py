"""Hospital-side personalisation: put the original identity back on a de-identified object."""

from __future__ import annotations

import copy

from pydicom import Dataset, Sequence
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.multival import MultiValue

from deid.policy import dictionary_vr
from deid.pseudonyms import shift_da, shift_dt
from deid.records import ReidRecord

_UNSHIFTERS = {"DA": shift_da, "DT": shift_dt}

#: Markers of de-identification that a personalised copy must not carry.
DEID_MARKERS = ("DeidentificationMethod", "DeidentificationMethodCodeSequence")


def _restore_values(values, vr: str, record: ReidRecord):
    """Original UIDs back, dates shifted back; other values as they are."""
    single = not isinstance(values, (list, tuple, MultiValue))
    items = [values] if single else list(values)
    if vr == "UI":
        items = [record.uid_map.get(str(v), str(v)) for v in items]
    else:
        unshift = _UNSHIFTERS[vr]
        items = [unshift(str(v), -record.date_shift_days) or str(v) for v in items]
    return items[0] if single else items


def _restore(ds: Dataset, record: ReidRecord) -> Dataset:
    out = Dataset()
    out.set_original_encoding(*ds.original_encoding, ds.original_character_set)
    for tag in ds.keys():
        elem = ds.get_item(tag)
        vr = elem.VR if elem.VR and elem.VR != "UN" else dictionary_vr(int(tag))
        if vr == "SQ":
            out[tag] = DataElement(tag, "SQ", Sequence([_restore(i, record) for i in ds[tag].value]))
        elif (vr == "UI" and record.uid_map) or (vr in _UNSHIFTERS and record.date_shift_days):
            value = ds[tag].value
            out[tag] = DataElement(tag, vr, _restore_values(value, vr, record) if value else value)
        else:
            out[tag] = elem if isinstance(elem, RawDataElement) else copy.copy(elem)
    return out


def reidentify(ds: Dataset, record: ReidRecord) -> Dataset:
    """New dataset with the original patient attributes, UIDs and dates of ``record``.

    UIDs are restored where ``record.uid_map`` knows them (a record from the vault knows the
    study UID only); every DA/DT value is shifted back. The input is not modified.
    """
    out = _restore(ds, record)
    out.PatientName = record.patient_name
    out.PatientID = record.patient_id
    if record.issuer_of_patient_id:
        out.IssuerOfPatientID = record.issuer_of_patient_id
    out.PatientBirthDate = record.birth_date
    out.PatientSex = record.sex
    if record.accession_number:
        out.AccessionNumber = record.accession_number
    if record.original_study_uid:
        out.StudyInstanceUID = record.original_study_uid
    out.PatientIdentityRemoved = "NO"
    for keyword in DEID_MARKERS:
        if keyword in out:
            del out[keyword]
    if "LongitudinalTemporalInformationModified" in out:
        out.LongitudinalTemporalInformationModified = "UNMODIFIED"
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = FileMetaDataset()
        for tag in meta.keys():
            out.file_meta[tag] = copy.copy(meta[tag])
        if "SOPInstanceUID" in out:
            out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    return out
