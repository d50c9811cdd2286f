"""Table E.1-1 as data, and how options and defaults resolve to actions."""

from __future__ import annotations

import pytest
from pydicom.datadict import DicomDictionary, keyword_for_tag

from deid import DeidOptions
from deid import policy
from deid.deidentify import HANDLERS
from deid.profile_table import load_rows, lookup, row_for_keyword

ALL_ON = DeidOptions()
ALL_OFF = DeidOptions(retain_longitudinal_modified_dates=False,
                      retain_patient_characteristics=False, clean_descriptors=False)
FREE_TEXT_VRS = {"PN", "LT", "ST", "UT"}


def _tag(keyword: str) -> int:
    return int(row_for_keyword(keyword).tag, 16)


def test_table_rows_match_pydicom_dictionary():
    rows = load_rows()
    assert len(rows) > 500  # the whole standard table, not a hand-picked subset
    for row in rows:
        if "X" not in row.tag:
            assert keyword_for_tag(int(row.tag, 16)) == row.keyword


def test_every_cell_is_a_known_action():
    basic = {row.basic for row in load_rows()}
    assert basic <= {"D", "Z", "X", "K", "C", "U"} | set(policy.COMBO_RESOLUTION)
    for row in load_rows():
        assert set(row.options.values()) <= {"K", "C"}


@pytest.mark.parametrize("options", [ALL_ON, ALL_OFF])
def test_every_row_resolves_to_an_implemented_action(options):
    for row in load_rows():
        assert policy.resolve_row(row, options) in HANDLERS


@pytest.mark.parametrize("options", [ALL_ON, ALL_OFF])
def test_no_person_name_or_free_text_attribute_is_kept(options):
    """Any dictionary attribute with a PN/LT/ST/UT VR, listed or not, must not pass unchanged."""
    for tag, entry in DicomDictionary.items():
        vr, keyword = entry[0], entry[4]
        if vr in FREE_TEXT_VRS:
            assert policy.action_for(tag, options) != policy.KEEP, keyword


def test_repeating_groups_and_unknown_tags():
    assert lookup(0x60023000).keyword == "OverlayData"
    assert lookup(0x60024000).keyword == "OverlayComments"
    assert lookup(0x50100010).keyword == "CurveData"
    assert lookup(0x60013000) is None  # odd group: private, not an overlay
    assert policy.action_for(0x00231234, ALL_ON) == policy.REMOVE  # unknown public tag


def test_options_change_actions():
    sex, date, desc = _tag("PatientSex"), _tag("StudyDate"), _tag("StudyDescription")
    assert policy.action_for(sex, ALL_ON) == policy.KEEP
    assert policy.action_for(sex, ALL_OFF) != policy.KEEP
    assert policy.action_for(date, ALL_ON) == policy.SHIFT
    assert policy.action_for(date, ALL_OFF) != policy.SHIFT
    assert policy.action_for(desc, ALL_ON) == policy.DESCRIPTOR
    assert policy.action_for(desc, ALL_OFF) == policy.REMOVE


def test_unlisted_attributes_follow_vr_defaults():
    kernel = next(t for t, e in DicomDictionary.items() if e[4] == "ConvolutionKernel")
    text = next(t for t, e in DicomDictionary.items() if e[4] == "TextValue")
    rows = next(t for t, e in DicomDictionary.items() if e[4] == "Rows")
    assert lookup(kernel) is None and lookup(text) is None and lookup(rows) is None
    assert policy.action_for(kernel, ALL_ON) == policy.KEEP  # safe technical text
    assert policy.action_for(text, ALL_ON) == policy.REMOVE
    assert policy.action_for(rows, ALL_ON) == policy.KEEP


def test_identity_attributes_get_pseudonyms():
    assert policy.action_for(_tag("PatientName"), ALL_ON) == policy.PSEUDO
    assert policy.action_for(_tag("PatientID"), ALL_ON) == policy.PSEUDO
    assert policy.action_for(_tag("AccessionNumber"), ALL_ON) == policy.ACCESSION
    assert policy.action_for(_tag("StudyInstanceUID"), ALL_ON) == policy.UID
