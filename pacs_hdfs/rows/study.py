"""The `study` table: one row per study.

Key: study_uid. Family `a`: the STUDY- and PATIENT-level attributes (`ATTRIBUTES`, see
`attributes`) and a mark `a:mod.<Modality>` = b"1" per modality in the study; family `c`:
HBase counters `c:instances`, `c:bytes` and `c:series`.
"""
from __future__ import annotations

from pacs_hdfs.rows import attributes, subject
from pacs_hdfs.rows.cells import Row, counter
from pacs_hdfs.schema import row_key

TABLE = "study"
INSTANCES, BYTES, SERIES = b"c:instances", b"c:bytes", b"c:series"
COUNTERS = (INSTANCES, BYTES, SERIES)
ATTRIBUTES = ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
              "StudyDescription") + subject.ATTRIBUTES
ACCESSION = attributes.col("AccessionNumber")
MODALITY_PREFIX = attributes.MODALITY_PREFIX


def key(study_uid: str) -> bytes:
    return row_key(study_uid)


def modality_column(modality: str | bytes) -> bytes:
    return MODALITY_PREFIX + (modality.encode() if isinstance(modality, str) else modality)


def encode(attrs: dict[str, str]) -> Row:
    """Attribute columns of a study row, with the mark of the object's modality."""
    cols = attributes.encode(attrs, ATTRIBUTES)
    if attrs.get("Modality"):
        cols[modality_column(attrs["Modality"])] = b"1"
    return cols


def modality_columns(row: Row) -> list[bytes]:
    return [k for k in row if k.startswith(MODALITY_PREFIX)]


def modalities(row: Row) -> list[str]:
    """The modalities marked in a study row, sorted."""
    return sorted(k[len(MODALITY_PREFIX):].decode() for k in modality_columns(row))


def instances(row: Row) -> int:
    return counter(row, INSTANCES)


def size(row: Row) -> int:
    """The study's bytes counter."""
    return counter(row, BYTES)
