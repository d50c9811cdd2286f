"""deid.pixel_rules: our reader of pydicom deid's recipe files, against the pinned real files."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence

from deid import burned_in
from deid.pixel_rules import (
    AND,
    OR,
    Fields,
    Region,
    RuleSyntaxError,
    attribute_strings,
    load,
    parse,
    region_boxes,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rules_dir() -> Path:
    directory = burned_in.rules_dir()
    if not (directory / "deid.dicom").is_file():
        pytest.fail(f"{directory} has no deid.dicom: run `make venv` to extract the pinned rules")
    return directory


@pytest.fixture(scope="module")
def default(rules_dir):
    return load(rules_dir / "deid.dicom")


def _rule(recipe, label):
    (rule,) = [r for r in recipe.rules if r.label == label]
    return rule


def _ds(**attrs) -> Dataset:
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


# --- the real files ------------------------------------------------------------------------

def test_makefile_pins_the_version_the_code_reads():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^DEID_VERSION := {re.escape(burned_in.UPSTREAM_VERSION)}$", makefile, re.M)
    assert burned_in.DEFAULT_RULES_DIR.name == burned_in.UPSTREAM_VERSION


def test_extracted_files_and_licence(rules_dir):
    names = {p.name for p in rules_dir.iterdir()}
    assert {"deid.dicom", "deid.dicom.ultrasound", "deid.dicom.xray.chest", "LICENSE"} <= names
    assert "MIT" in (rules_dir / "LICENSE").read_text() or "Permission is hereby granted" in \
        (rules_dir / "LICENSE").read_text()


def test_default_recipe_counts(default):
    assert len(default.rules) == 118
    assert Counter(r.section for r in default.rules) == {"graylist": 109, "blacklist": 7,
                                                          "whitelist": 2}
    assert sum(bool(r.regions) for r in default.rules) == 105
    assert all(r.section == "graylist" for r in default.rules if r.regions)


def test_other_recipes_counts(rules_dir):
    ultrasound = load(rules_dir / "deid.dicom.ultrasound")
    assert ultrasound.labels() == ("Marked as Clean Catch All", "Blank Image",
                                   "Clean Ultrasound Regions")
    chest = load(rules_dir / "deid.dicom.xray.chest")
    assert Counter(r.section for r in chest.rules) == {"whitelist": 2, "blacklist": 2}


def test_ctp_coordinates_become_corner_boxes(default):
    atl = _rule(default, "ATL HDI 5000")
    assert [r.box for r in atl.regions] == [(40, 0, 240, 40), (240, 0, 430, 16)]
    assert not any(r.keep for r in atl.regions)
    conditions = [str(c) for line in atl.lines for _, c in line.terms]
    assert conditions == ["contains Modality US", "contains Manufacturer ATL", "equals Rows 476",
                          "equals Columns 640", "contains ManufacturerModelName HDI 5000"]


def test_native_coordinates_are_kept_as_written(default):
    """``coordinates`` is xmin,ymin,xmax,ymax, even written at column 0 with a space."""
    assert _rule(default, "3D Lab reconstructions").regions[0].box == (450, 0, 672, 85)


def test_ultrasound_recipe_blanks_all_and_keeps_the_regions(rules_dir):
    ultrasound = load(rules_dir / "deid.dicom.ultrasound")
    assert _rule(ultrasound, "Blank Image").regions == (Region(keep=False, whole=True),)
    regions = _rule(ultrasound, "Clean Ultrasound Regions")
    assert regions.regions == (Region(keep=True, source="SequenceOfUltrasoundRegions"),)
    assert not _rule(ultrasound, "Blank Image").lines  # no conditions: always holds


def test_line_operators_and_inner_operators(default):
    """``||`` at the start of a line is OR (deid 0.4.13 would AND it)."""
    annotation = _rule(default, "Burned In Annotation")
    assert [line.op for line in annotation.lines] == [AND, AND] + [OR] * 7
    localizers = _rule(default, "LightSpeed Localizers")
    assert [op for op, _ in localizers.lines[2].terms] == [AND, OR]


def test_plus_inside_a_value_is_part_of_the_value(default):
    (term,) = _rule(default, "3D Lab reconstructions").lines[0].terms
    assert term[1].value == "SOMATOM Definition AS+"
    (term,) = _rule(default, "Stanford Medical Center GE").lines[2].terms
    assert term[1].value == "DERIVED+SECONDARY+SCREEN SAVE"


def test_misspelled_keywords_are_reported_and_never_match(default):
    unknown = {re.search(r"unknown attribute '(\w+)'", w).group(1) for w in default.warnings}
    assert unknown == {"Manfacturer", "Manufacture"}
    adac = [r for r in default.rules if r.label == "ADAC"][0]
    ds = _ds(Rows=832, Columns=1024, Manufacturer="ADAC")
    assert not adac.matches(Fields(ds))


def test_local_recipe_parses_clean():
    local = load(burned_in.LOCAL_RECIPE)
    assert not local.warnings
    adac = _rule(local, "ADAC")
    assert adac.matches(Fields(_ds(Rows=832, Columns=1024, Manufacturer="ADAC Labs")))
    assert [r.box for r in adac.regions] == [(0, 0, 1024, 80), (0, 762, 1024, 842)]


# --- matching ------------------------------------------------------------------------------

def test_left_to_right_evaluation_with_line_groups(default):
    localizers = _rule(default, "LightSpeed Localizers")
    base = dict(ManufacturerModelName="LightSpeed VCT", Modality="CT")
    assert localizers.matches(Fields(_ds(**base, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])))
    assert localizers.matches(Fields(_ds(**base, SeriesDescription="Scout localizer")))
    assert not localizers.matches(Fields(_ds(**base, SeriesDescription="Axial")))
    # the OR inside the third line does not escape it: another scanner's localizer is no match
    assert not localizers.matches(Fields(_ds(Modality="CT", SeriesDescription="localizer")))


def test_blacklist_or_lines(default):
    annotation = _rule(default, "Burned In Annotation")
    assert annotation.matches(Fields(_ds(Modality="US", BurnedInAnnotation="YES")))
    assert annotation.matches(Fields(_ds(Modality="CT", ImageType=["DERIVED", "SCREEN SAVE"])))
    assert not annotation.matches(Fields(_ds(Modality="US", ImageType=["DERIVED", "SAVE"])))
    assert not annotation.matches(Fields(_ds(Modality="CT", ImageType=["ORIGINAL"])))


def test_condition_semantics():
    recipe = parse("""FORMAT dicom
%filter graylist
LABEL rows
  equals Rows 600|768
LABEL missing
  missing Manufacturer
LABEL present
  present Manufacturer
LABEL empty
  empty Manufacturer
LABEL not
  notcontains Modality US + notequals Modality XA
LABEL case and regex
  contains ImageType derived.*screen
LABEL tag
  contains 0x00080060 us
""", "t")
    rule = {r.label: r for r in recipe.rules}
    assert rule["rows"].matches(Fields(_ds(Rows=768)))
    assert not rule["rows"].matches(Fields(_ds(Rows=786)))
    assert rule["missing"].matches(Fields(_ds()))
    assert not rule["missing"].matches(Fields(_ds(Manufacturer="")))
    assert rule["empty"].matches(Fields(_ds(Manufacturer="")))
    assert not rule["empty"].matches(Fields(_ds()))
    assert rule["present"].matches(Fields(_ds(Manufacturer="")))
    assert rule["not"].matches(Fields(_ds(Modality="CT")))
    assert rule["not"].matches(Fields(_ds()))  # absent: does not contain, does not equal
    assert not rule["not"].matches(Fields(_ds(Modality="US")))
    assert rule["case and regex"].matches(Fields(_ds(ImageType=["DERIVED", "SCREEN SAVE"])))
    assert rule["tag"].matches(Fields(_ds(Modality="US")))


def test_may_match_decides_from_device_attributes_only(default):
    iu22 = [r for r in default.rules if r.label == "Philips IU22"][0]
    tags = burned_in.GATE_TAGS
    us = dict(zip(tags, (("US",), ("Philips Medical Systems",), ("iU22",))))
    ct = dict(zip(tags, (("CT",), ("Philips Medical Systems",), ("iU22",))))
    assert iu22.may_match(us, {}) and not iu22.may_match(ct, {})


def test_file_meta_attributes_are_read_from_the_file_meta():
    ds = _ds(Modality="US")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.ImplementationVersionName = "MINDRAY_V1"
    mindray = parse("FORMAT dicom\n%filter graylist\nLABEL m\n contains Modality US\n"
                    " + contains ImplementationVersionName MINDRAY\n ctpcoordinates 0,0,10,10\n",
                    "t").rules[0]
    assert mindray.matches(Fields(ds))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_implicit.dcm", "examples_palette.dcm"])
def test_raw_values_read_as_pydicom_converts_them(name):
    """The fast path over raw bytes gives what pydicom's conversion gives."""
    raw, converted = dcmread(get_testdata_file(name)), dcmread(get_testdata_file(name))
    for elem in converted:  # converts every element of this copy
        pass
    for tag in (0x00080060, 0x00080070, 0x00081090, 0x00080008, 0x00280010, 0x00280011,
                0x00080016, 0x0008103E, 0x00281050):
        if tag in converted:
            assert attribute_strings(raw, tag) == attribute_strings(converted, tag), hex(tag)


# --- regions -------------------------------------------------------------------------------

def _us_regions(*boxes) -> Dataset:
    items = []
    for x0, y0, x1, y1 in boxes:
        item = Dataset()
        item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
        items.append(item)
    return _ds(SequenceOfUltrasoundRegions=Sequence(items))


def test_region_boxes_clip_fixed_boxes_to_the_frame():
    assert region_boxes(Region(False, box=(0, 0, 1150, 75)), _ds(), 600, 800) == ((0, 0, 800, 75),)
    assert region_boxes(Region(False, box=(0, 900, 10, 950)), _ds(), 600, 800) == ()
    assert region_boxes(Region(False, whole=True), _ds(), 600, 800) == ((0, 0, 800, 600),)


def test_sequence_regions_are_inclusive_and_must_fit_the_frame():
    region = Region(True, source="SequenceOfUltrasoundRegions")
    ds = _us_regions((10, 20, 99, 199), (0, 0, 4, 4))
    assert region_boxes(region, ds, 600, 800) == ((10, 20, 100, 200), (0, 0, 5, 5))
    with pytest.raises(ValueError, match="outside"):
        region_boxes(region, _us_regions((120, 60, 800, 518)), 350, 800)


@pytest.mark.parametrize("text,message", [
    ("FORMAT nifti\n", "FORMAT dicom"),
    ("%filter\n", "needs a name"),
    ("%filter g\ncontains Modality US\n", "outside a LABEL"),
    ("%filter g\nLABEL x\n  coordinates 1,2,3\n", "four integers"),
    ("%filter g\nLABEL x\n  equals Rows\n", "attribute and a value"),
    ("%filter g\nLABEL x\n  starts Modality US\n", "not a condition"),
    ("%filter g\nLABEL x\n  ctpcoordinates from:SequenceOfUltrasoundRegions\n", "from:"),
])
def test_syntax_errors_name_the_line(text, message):
    with pytest.raises(RuleSyntaxError, match=message):
        parse(text, "bad.dicom")
