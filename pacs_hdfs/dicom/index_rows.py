"""Which de-identified attributes each Q/R level indexes, and the HBase rows built from them.

Rows (tables from pacs_hdfs/schema.py):
  instance  study\\0series\\0sop  l: path offset length sha256 ts [quarantine]; a: IMAGE keys
  sop       sop                   r:key = instance row key
  series    study\\0series         a: SERIES keys; c: instances, bytes (counters)
  study     study                 a: STUDY keys + PATIENT keys + mod.<modality>; c: counters
  subject   pseudonym             a: PATIENT keys; s:<study uid>
  search    study-accession\\0acc\\0study  i:s = b"1" (accession -> study, for the viewer link)
Attribute columns are `a:<DICOM keyword>` holding the value as str (multi-values joined by \\).
"""
from __future__ import annotations

from pydicom import Dataset

from pacs_hdfs.schema import row_key

PATIENT_KEYS = ("PatientID", "PatientName", "PatientSex", "PatientBirthDate", "PatientAge")
STUDY_KEYS = ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
              "StudyDescription") + PATIENT_KEYS
SERIES_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SeriesDescription", "SeriesDate", "SeriesTime", "BodyPartExamined")
IMAGE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "InstanceNumber", "Rows", "Columns", "ContentDate", "ContentTime")

LEVEL_KEYS = {"PATIENT": PATIENT_KEYS, "STUDY": STUDY_KEYS, "SERIES": SERIES_KEYS,
              "IMAGE": IMAGE_KEYS}
#: Q/R level -> (HBase table, unique key keyword)
LEVEL_TABLE = {"PATIENT": ("subject", "PatientID"), "STUDY": ("study", "StudyInstanceUID"),
               "SERIES": ("series", "SeriesInstanceUID"), "IMAGE": ("instance", "SOPInstanceUID")}
#: Counter columns shown as DICOM attributes per level.
COUNTERS = {"STUDY": {"NumberOfStudyRelatedInstances": b"c:instances",
                      "NumberOfStudyRelatedSeries": b"c:series"},
            "SERIES": {"NumberOfSeriesRelatedInstances": b"c:instances"}}
MODALITY_PREFIX = b"a:mod."
#: `search` row kind resolving a de-identified accession to its studies (prefix-scan kind\0acc\0).
STUDY_ACCESSION = "study-accession"


def text(ds: Dataset, keyword: str) -> str:
    elem = ds.get(keyword)
    if elem is None or elem == "":
        return ""
    if isinstance(elem, (list, tuple)) or type(elem).__name__ == "MultiValue":
        return "\\".join(str(v) for v in elem)
    return str(elem).strip()


def attributes(ds: Dataset, keys: tuple[str, ...]) -> dict[str, str]:
    """keyword -> value (as text) for the non-empty values of `keys`."""
    return {k: v for k in keys if (v := text(ds, k))}


def decode_attributes(row: dict[bytes, bytes]) -> dict[str, str]:
    return {k[2:].decode(): v.decode("utf-8") for k, v in row.items()
            if k.startswith(b"a:") and not k.startswith(MODALITY_PREFIX)}


def modalities(row: dict[bytes, bytes]) -> list[str]:
    return sorted(k[len(MODALITY_PREFIX):].decode() for k in row if k.startswith(MODALITY_PREFIX))


def instance_key(study: str, series: str, sop: str) -> bytes:
    return row_key(study, series, sop)


ALL_KEYS = tuple(dict.fromkeys(IMAGE_KEYS + SERIES_KEYS + STUDY_KEYS))


def columns(attrs: dict[str, str], keys: tuple[str, ...]) -> dict[bytes, bytes]:
    return {b"a:" + k.encode(): attrs[k].encode("utf-8") for k in keys if attrs.get(k)}


def parent_rows(attrs: dict[str, str]) -> dict[str, tuple[bytes, dict[bytes, bytes]]]:
    """table -> (row key, columns) of the series, study and subject rows of one instance.

    `attrs` is the instance's attribute dict (every level's keys), so a released quarantined
    instance can build them from its own row."""
    study, series = attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"]
    study_cols = columns(attrs, STUDY_KEYS)
    if attrs.get("Modality"):
        study_cols[MODALITY_PREFIX + attrs["Modality"].encode()] = b"1"
    subject_cols = columns(attrs, PATIENT_KEYS)
    subject_cols[b"s:" + study.encode()] = b"1"
    rows = {"series": (row_key(study, series), columns(attrs, SERIES_KEYS)),
            "study": (row_key(study), study_cols),
            "subject": (row_key(attrs.get("PatientID", "")), subject_cols)}
    if attrs.get("AccessionNumber"):
        rows["search"] = (accession_key(attrs["AccessionNumber"], study), {b"i:s": b"1"})
    return rows


def accession_key(accession: str, study: str = "") -> bytes:
    """`search` row of a study's accession; with study="" the prefix of all its studies."""
    return row_key(STUDY_ACCESSION, accession, study)
