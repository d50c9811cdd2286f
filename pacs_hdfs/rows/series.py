"""The `series` table: one row per series.

Key: study_uid \\0 series_uid. Family `a`: the SERIES-level attributes (`ATTRIBUTES`, see
`attributes`); family `c`: HBase counters `c:instances` and `c:bytes` of its visible objects.
"""
from __future__ import annotations

from pacs_hdfs.rows import attributes
from pacs_hdfs.rows.cells import Row, counter
from pacs_hdfs.schema import SEP, row_key

TABLE = "series"
INSTANCES, BYTES = b"c:instances", b"c:bytes"
COUNTERS = (INSTANCES, BYTES)
ATTRIBUTES = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
              "SeriesDescription", "SeriesDate", "SeriesTime", "BodyPartExamined")
MODALITY = attributes.col("Modality")


def key(study_uid: str, series_uid: str) -> bytes:
    return row_key(study_uid, series_uid)


def study_prefix(study_uid: str) -> bytes:
    """Scan prefix of the series rows of a study."""
    return row_key(study_uid) + SEP.encode()


def encode(attrs: dict[str, str]) -> Row:
    """The attribute columns of a series row (counters are incremented, not put)."""
    return attributes.encode(attrs, ATTRIBUTES)


def instances(row: Row) -> int:
    return counter(row, INSTANCES)


def size(row: Row) -> int:
    """The series' bytes counter."""
    return counter(row, BYTES)
