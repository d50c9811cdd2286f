"""The DICOM attribute columns `a:<keyword>` of the instance, series, study and subject tables.

Each holds one de-identified attribute's value as UTF-8 text (multi-values joined by `\\`).
Which keywords a table holds is that table's data (`instance.ATTRIBUTES`, `series.ATTRIBUTES`,
...). The study table also has `a:mod.<modality>` marks (see `study`), and the subject table
`a:hospital` (see `subject`); `decode` skips the marks.
"""
from __future__ import annotations

from pacs_hdfs.rows.cells import Row, column

FAMILY = b"a"
#: study-row marks `a:mod.<Modality>` = b"1" (one per modality in the study)
MODALITY_PREFIX = b"a:mod."


def col(keyword: str) -> bytes:
    """The column of one DICOM keyword: 'Modality' -> b'a:Modality'."""
    return column(FAMILY, keyword)


def encode(attrs: dict[str, str], keys: tuple[str, ...]) -> Row:
    """Columns of the non-empty values of `keys` in `attrs` (keyword -> text)."""
    return {col(k): attrs[k].encode("utf-8") for k in keys if attrs.get(k)}


def decode(row: Row) -> dict[str, str]:
    """keyword -> text of every attribute column of a row (modality marks left out)."""
    return {k[2:].decode(): v.decode("utf-8") for k, v in row.items()
            if k.startswith(b"a:") and not k.startswith(MODALITY_PREFIX)}


def value(row: Row, keyword: str, errors: str = "strict") -> str:
    """One attribute's text, '' when absent."""
    return row.get(col(keyword), b"").decode("utf-8", errors)
