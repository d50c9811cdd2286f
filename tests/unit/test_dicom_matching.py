"""C-FIND matching rules (pure)."""
import pytest

from pacs_hdfs.dicom.matching import matches, row_matches


@pytest.mark.parametrize("query,value,vr,expected", [
    ("", "anything", "LO", True),
    ("*", "", "LO", True),
    ("CT", "CT", "CS", True),
    ("CT", "MR", "CS", False),
    ("C?", "CT", "CS", True),
    ("rs*", "RSABC", "PN", True),          # PN: case-insensitive
    ("rs*", "RSABC", "LO", False),
    ("1.2\\1.3", "1.3", "UI", True),       # UID list
    ("1.2", "1.2.3", "UI", False),
    ("20200101-20200131", "20200115", "DA", True),
    ("20200101-20200131", "20200215", "DA", False),
    ("-20200131", "19991231", "DA", True),
    ("20200101-", "20191231", "DA", False),
    ("110000-120000", "113000.123", "TM", True),
    ("120000-", "113000", "TM", False),
    ("20200101", "20200101", "DA", True),
    ("MR", "CT\\MR", "CS", True),          # multi-valued attribute
    ("2020*", "", "DA", False),
])
def test_matches(query, value, vr, expected):
    assert matches(query, value, vr) is expected


def test_row_matches_needs_every_key():
    attrs = {"Modality": "CT", "StudyDate": "20240101"}
    assert row_matches({"Modality": ("CT", "CS"), "StudyDate": ("2024*", "DA")}, attrs)
    assert not row_matches({"Modality": ("CT", "CS"), "StudyDate": ("2023*", "DA")}, attrs)
