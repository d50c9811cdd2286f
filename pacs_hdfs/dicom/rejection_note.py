"""IHE IOCM-style rejection notes: the Key Object Selection document that records why objects
left the archive, and the JSON record `pacs_hdfs.dicom.lifecycle` keeps next to it.

Pure: values in, a pydicom Dataset or a dict out; no I/O.

A rejection note (IHE RAD TF-3 IOCM, DICOM CID 7011 "Rejected for Quality Reasons" etc.) is a
KOS document (SOP class 1.2.840.10008.5.1.4.1.1.88.59) whose document title is the reason
code and whose content lists every rejected object; its Current Requested Procedure Evidence
Sequence lists them per study and series. We never index the note itself (an indexed note in
the rejected study would keep the study visible to Q/R); it is stored as a Part 10 file beside
the lifecycle record, as evidence.

Only de-identified values go into a note: the study's UIDs (`2.25.` after the edge) and the
pseudonymous PatientID/PatientName from the study row.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"


@dataclass(frozen=True)
class Reason:
    """One way an object leaves: its KOS title code and what `restore` may do afterwards."""
    code: tuple[str, str, str]    # (code value, scheme, meaning), DICOM CID 7011 / DCM
    restorable: bool              # `pacs study restore` may bring the objects back
    keeps_bytes: bool             # the bytes are kept aside (rejected store) until restored


#: action -> reason (rules as data: the CLI, the DICOMweb DELETE and the audit read this table)
REASONS: dict[str, Reason] = {
    "reject": Reason(("113001", "DCM", "Rejected for Quality Reasons"), True, True),
    "reject-patient-safety": Reason(("113037", "DCM", "Rejected for Patient Safety Reasons"),
                                    True, True),
    "delete": Reason(("113039", "DCM", "Data Retention Policy Expired"), False, False),
}


@dataclass(frozen=True)
class Ref:
    """One object a note lists."""
    study: str
    series: str
    sop: str
    sop_class: str


def new_uid() -> str:
    """A `2.25.` UID, the de-identified UID form the MDC verifier accepts."""
    return f"2.25.{uuid.uuid4().int}"


def _code(code: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def kos_note(action: str, refs: list[Ref], patient_id: str = "", patient_name: str = "",
             accession: str = "", when: datetime | None = None,
             note_uid: str | None = None) -> Dataset:
    """The KOS rejection note (Part 10 file meta included) for `refs`, all of one study."""
    reason = REASONS[action]
    studies = {r.study for r in refs}
    if len(studies) != 1:
        raise ValueError("a rejection note covers objects of exactly one study")
    study = studies.pop()
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    sop = note_uid or new_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = KOS_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = KOS_SOP_CLASS, sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = new_uid()
    ds.Modality = "KO"
    ds.SeriesNumber = "999"
    ds.InstanceNumber = "1"
    ds.PatientID, ds.PatientName = patient_id, patient_name
    ds.PatientBirthDate = ds.PatientSex = ""
    ds.StudyDate = ds.StudyTime = ds.ReferringPhysicianName = ds.StudyID = ""
    ds.AccessionNumber = accession
    ds.Manufacturer = "PACS-MDC"
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code(reason.code)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = Sequence([template])
    by_series: dict[str, list[Ref]] = {}
    for r in refs:
        by_series.setdefault(r.series, []).append(r)
    evidence = Dataset()
    evidence.StudyInstanceUID = study
    evidence.ReferencedSeriesSequence = Sequence()
    content = []
    for series, items in by_series.items():
        s = Dataset()
        s.SeriesInstanceUID = series
        s.ReferencedSOPSequence = Sequence()
        for r in items:
            ref = Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = r.sop_class, r.sop
            s.ReferencedSOPSequence.append(ref)
            node = Dataset()
            node.RelationshipType = "CONTAINS"
            node.ValueType = "IMAGE" if r.sop_class.startswith("1.2.840.10008.5.1.4.1.1.") \
                and not r.sop_class.startswith("1.2.840.10008.5.1.4.1.1.88.") else "COMPOSITE"
            inner = Dataset()
            inner.ReferencedSOPClassUID, inner.ReferencedSOPInstanceUID = r.sop_class, r.sop
            node.ReferencedSOPSequence = Sequence([inner])
            content.append(node)
        evidence.ReferencedSeriesSequence.append(s)
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    ds.ContentSequence = Sequence(content)
    return ds


def reason_of(note: Dataset) -> tuple[str, str, str]:
    """(code value, scheme, meaning) of a note's title."""
    c = note.ConceptNameCodeSequence[0]
    return c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning


def listed(note: Dataset) -> list[tuple[str, str]]:
    """(series, sop) of every object a note lists in its evidence sequence."""
    out = []
    for study in note.CurrentRequestedProcedureEvidenceSequence:
        for series in study.ReferencedSeriesSequence:
            out += [(series.SeriesInstanceUID, r.ReferencedSOPInstanceUID)
                    for r in series.ReferencedSOPSequence]
    return out
