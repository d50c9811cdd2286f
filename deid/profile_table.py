"""DICOM PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes) as data.

The rows live in ``profile_table.csv`` next to this module, one per attribute of the
standard's table (DICOM 2025 edition), with the action of the Basic Profile and of each
option column (empty = the option does not change the basic action). Keywords come from
pydicom's data dictionary. The private-attribute row of the table ("(gggg,eeee) where
gggg is odd") is not a tag and is handled by the private-tag rule in ``deid.policy``.

Repeating-group rows (``50XXXXXX`` curve data, ``60XX3000`` overlay data, ...) are
matched on the even groups 0x5000-0x50FE / 0x6000-0x60FE.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE_PATH = Path(__file__).with_name("profile_table.csv")

#: Option columns of the CSV, in the order the standard lists them.
OPTION_COLUMNS = (
    "rtn_long_modif_dates",
    "rtn_patient_chars",
    "clean_desc",
    "rtn_uids",
    "rtn_device_id",
    "rtn_institution_id",
    "rtn_long_full_dates",
    "clean_graphics",
    "clean_struct_content",
)


@dataclass(frozen=True)
class ProfileRow:
    """One attribute of Table E.1-1: its tag pattern, keyword and actions per column."""

    tag: str  # 8 hex digits, 'X' for repeating-group wildcards, e.g. '60XX3000'
    keyword: str
    name: str
    basic: str
    options: dict[str, str]  # option column -> action, only non-empty cells

    def action(self, column: str) -> str:
        """Action of ``column`` ('basic' or an option column); '' when the cell is empty."""
        return self.basic if column == "basic" else self.options.get(column, "")


@cache
def load_rows() -> tuple[ProfileRow, ...]:
    """All rows of the table, read once from the CSV."""
    with TABLE_PATH.open(newline="", encoding="utf-8") as f:
        return tuple(
            ProfileRow(
                tag=rec["tag"].upper(),
                keyword=rec["keyword"],
                name=rec["name"],
                basic=rec["basic"],
                options={col: rec[col] for col in OPTION_COLUMNS if rec[col]},
            )
            for rec in csv.DictReader(f)
        )


@cache
def _exact_rows() -> dict[int, ProfileRow]:
    return {int(r.tag, 16): r for r in load_rows() if "X" not in r.tag}


@cache
def _repeating_rows() -> tuple[tuple[int, int, ProfileRow], ...]:
    """(mask, value, row) triples for rows with 'XX' wildcards."""
    out = []
    for row in load_rows():
        if "X" in row.tag:
            mask = int("".join("0" if c == "X" else "F" for c in row.tag), 16)
            value = int(row.tag.replace("X", "0"), 16)
            out.append((mask, value, row))
    return tuple(out)


def lookup(tag: int) -> ProfileRow | None:
    """The Table E.1-1 row governing ``tag``, or None if the table does not list it."""
    row = _exact_rows().get(tag)
    if row is not None:
        return row
    if (tag >> 16) & 1:  # odd group: private, never a repeating-group match
        return None
    for mask, value, candidate in _repeating_rows():
        if tag & mask == value:
            return candidate
    return None


def row_for_keyword(keyword: str) -> ProfileRow | None:
    """The row whose pydicom keyword is ``keyword`` (for tests and documentation)."""
    return next((r for r in load_rows() if r.keyword == keyword), None)
