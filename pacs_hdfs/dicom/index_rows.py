"""Which de-identified attributes each Q/R level indexes, and the HBase rows built from them.

The rows' layout (keys, columns, encodings) is owned by the row codecs in `pacs_hdfs/rows/`
(`instance`, `sop`, `series`, `study`, `subject`, `search`); this module maps Q/R levels onto
them and builds the parent rows of one stored object. The names below re-export the codecs' data
for the many Q/R callers.
"""
from __future__ import annotations

from pydicom import Dataset

from pacs_hdfs.rows import attributes as attribute_cols
from pacs_hdfs.rows import instance, search, series, study, subject

PATIENT_KEYS = subject.ATTRIBUTES
STUDY_KEYS = study.ATTRIBUTES
SERIES_KEYS = series.ATTRIBUTES
IMAGE_KEYS = instance.ATTRIBUTES

LEVEL_KEYS = {"PATIENT": PATIENT_KEYS, "STUDY": STUDY_KEYS, "SERIES": SERIES_KEYS,
              "IMAGE": IMAGE_KEYS}
#: Q/R level -> (HBase table, unique key keyword)
LEVEL_TABLE = {"PATIENT": ("subject", "PatientID"), "STUDY": ("study", "StudyInstanceUID"),
               "SERIES": ("series", "SeriesInstanceUID"), "IMAGE": ("instance", "SOPInstanceUID")}
#: Counter columns shown as DICOM attributes per level.
COUNTERS = {"STUDY": {"NumberOfStudyRelatedInstances": study.INSTANCES,
                      "NumberOfStudyRelatedSeries": study.SERIES},
            "SERIES": {"NumberOfSeriesRelatedInstances": series.INSTANCES}}
MODALITY_PREFIX = study.MODALITY_PREFIX
#: `search` row kind resolving a de-identified accession to its studies (prefix-scan kind\0acc\0).
STUDY_ACCESSION = search.STUDY_ACCESSION

decode_attributes = attribute_cols.decode
columns = attribute_cols.encode
modalities = study.modalities
instance_key = instance.key
accession_key = search.study_accession_key
ALL_KEYS = instance.ALL_ATTRIBUTES


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


def parent_rows(attrs: dict[str, str]) -> dict[str, tuple[bytes, dict[bytes, bytes]]]:
    """table -> (row key, columns) of the series, study and subject rows of one instance.

    `attrs` is the instance's attribute dict (every level's keys), so a released quarantined
    instance can build them from its own row."""
    study_uid, series_uid = attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"]
    rows = {"series": (series.key(study_uid, series_uid), series.encode(attrs)),
            "study": (study.key(study_uid), study.encode(attrs)),
            "subject": (subject.key(attrs.get("PatientID", "")), subject.encode_dicom(attrs))}
    if attrs.get("AccessionNumber"):
        rows["search"] = (search.study_accession_key(attrs["AccessionNumber"], study_uid),
                          search.encode_study_accession())
    return rows
