"""Each PS3.15 Annex E option changes exactly what its Table E.1-1 column says, the object declares
exactly the options applied, and what the edge writes under any option verifies at the MDC."""
from __future__ import annotations

import dataclasses
import io

import pydicom
import pytest
from pydicom import Dataset, Sequence
from pydicom.datadict import dictionary_VR
from pydicom.uid import CTImageStorage

from deid import DeidKeys, DeidOptions, deidentify
from deid.options import OPTIONS
from deid.policy import SPECIAL_ACTIONS, resolve_row, row_vr
from deid.profile_table import load_rows
from deid.verify import CLEAN_CELLS, verify_deidentified
from pacs_hdfs.dicom.synthetic import ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEYS = DeidKeys.generate()
#: Every option off (the Basic Profile alone): each test turns one on.
BASIC = DeidOptions(retain_longitudinal_modified_dates=False, retain_patient_characteristics=False,
                    clean_descriptors=False, clean_structured_content=False)
COLUMN_OPTIONS = [o for o in OPTIONS if o.column]

#: One value per VR, valid for it and clean for the descriptor vocabulary.
VALUE_BY_VR = {
    "DA": "20200315", "DT": "20200315101010", "TM": "101010", "AS": "045Y", "UI": None,
    "CS": "CHEST", "LO": "CT CHEST", "SH": "CT CHEST", "ST": "CT CHEST", "LT": "CT CHEST",
    "UT": "CT CHEST", "UC": "CT CHEST", "PN": "Doe^Jane", "AE": "STATION1", "IS": "7",
    "DS": "1.5", "US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 1.5, "FD": 1.5,
}


def _full_table_object() -> Dataset:
    """A CT with every exact-tag Table E.1-1 attribute present with a value valid for its VR
    (sequences with one item holding a code), so that every option cell has something to act on."""
    ds = ct_series(1, patient_id="PID-OPT", patient_name="Opt^Pat", size=8)[0]
    for n, row in enumerate(load_rows()):
        if "X" in row.tag:
            continue
        tag = int(row.tag, 16)
        if tag >> 16 in (0x0000, 0x0002, 0x0004) or tag in ds:
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr == "SQ":
            item = Dataset()
            item.CodeValue = "T-D0050"
            ds.add_new(tag, vr, Sequence([item]))
        elif vr == "UI":
            ds.add_new(tag, vr, f"1.2.826.0.1.3680043.99.{n}")
        elif vr in VALUE_BY_VR:
            ds.add_new(tag, vr, VALUE_BY_KEYWORD.get(row.keyword, VALUE_BY_VR[vr]))
    return ds


def _received(ds: Dataset) -> Dataset:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def full() -> Dataset:
    return _received(_full_table_object())


def _with(option, base: DeidOptions = BASIC) -> DeidOptions:
    value = frozenset({("ACME 1.0", 0x10)}) if option.name == "safe_private" else True
    return dataclasses.replace(base, **{option.name: value})


#: Per-attribute values where the VR's would be refused as malformed.
VALUE_BY_KEYWORD = {"TimezoneOffsetFromUTC": "+0100"}


def _effect(row, options: DeidOptions) -> str:
    """The planned action by its effect: a sequence kept (K) or remapped (U) is cleaned alike."""
    action = resolve_row(row, options)
    return "K" if action == "U" and row_vr(row) == "SQ" else action


def _column_rows(column: str) -> set[str]:
    """Keywords of the rows the column changes: a 'K', or a 'C' it can clean for the VR."""
    return {row.keyword for row in load_rows()
            if row.keyword not in SPECIAL_ACTIONS and "X" not in row.tag
            and _effect(row, BASIC) != ("K" if row.action(column) == "K" else "")
            and (row.action(column) == "K"
                 or (row.action(column) == "C" and row_vr(row) in CLEAN_CELLS.get(column, {})))}


def _changed(a: Dataset, b: Dataset) -> set[str]:
    keys = {e.keyword for e in a} | {e.keyword for e in b}
    return {k for k in keys if k and (k in a) != (k in b) or (k in a and k in b and
                                                               a[k].value != b[k].value)}


@pytest.mark.parametrize("option", COLUMN_OPTIONS, ids=lambda o: o.name)
def test_each_option_changes_exactly_its_table_column(option, full):
    on = _with(option)
    planned = {row.keyword for row in load_rows()
               if "X" not in row.tag and _effect(row, on) != _effect(row, BASIC)}
    assert planned == _column_rows(option.column)
    out_off = deidentify(full, KEYS, BASIC).dataset
    out_on = deidentify(full, KEYS, on).dataset
    marks = {"DeidentificationMethod", "DeidentificationMethodCodeSequence",
             "LongitudinalTemporalInformationModified"}
    assert _changed(out_off, out_on) - marks == planned & {e.keyword for e in full}


#: Table E.1-1 basic action class -> what it does here (combined actions: their resolution).
CLASS_EFFECT = {"X": "X", "Z": "Z", "D": "D", "U": "U", "X/Z": "Z", "X/D": "D", "Z/D": "D",
                "X/Z/D": "D", "X/Z/U*": "U"}


def _effect_seen(elem, source) -> str:
    """What happened to one attribute: removed, emptied, dummy, remapped UID or kept."""
    if elem is None:
        return "X"
    if elem.VR == "SQ":
        return "Z" if len(elem.value) == 0 else "K"
    value = elem.value
    if value in ("", None, b"") or (isinstance(value, (list, pydicom.multival.MultiValue))
                                    and not value):
        return "Z"
    if elem.VR == "UI":
        return "U" if str(value).startswith("2.25.") and value != source.value else "K"
    return "K" if value == source.value else "D"


@pytest.mark.parametrize("action_class", list(CLASS_EFFECT))
def test_each_basic_action_class_is_applied(action_class, full):
    """Under the Basic Profile alone, every attribute of a class gets that class's action
    (a D of a VR without a dummy value is emptied; a D of a UID is remapped; a U or D sequence
    keeps or empties its items as the class says)."""
    out = deidentify(full, KEYS, BASIC).dataset
    rows = [r for r in load_rows() if r.basic == action_class and "X" not in r.tag
            and r.keyword not in SPECIAL_ACTIONS and r.keyword in full]
    assert rows
    expected = CLASS_EFFECT[action_class]
    for row in rows:
        tag = int(row.tag, 16)
        seen = _effect_seen(out[tag] if tag in out else None, full[tag])
        vr = row_vr(row)
        allowed = {expected}
        if expected == "D":
            allowed |= {"Z"} if vr not in ("PN", "LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE",
                                           "DA", "TM", "DT", "AS", "IS", "DS") else set()
            allowed |= {"U"} if vr == "UI" else set()
            allowed |= {"Z"} if vr == "SQ" else set()
        if expected == "U" and vr == "SQ":
            allowed = {"K"}  # a U sequence: items kept, cleaned
        assert seen in allowed, (row.keyword, vr, seen)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_method_codes_list_exactly_the_options_applied(option, full):
    out = deidentify(full, KEYS, _with(option)).dataset
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", option.code]
    assert list(out.DeidentificationMethod)[1:] == [option.meaning]
    basic = deidentify(full, KEYS, BASIC).dataset
    assert [item.CodeValue for item in basic.DeidentificationMethodCodeSequence] == ["113100"]


def test_default_profile_declares_its_options():
    out = deidentify(_received(_full_table_object()), KEYS).dataset
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == [
        "113100", "113104", "113105", "113107", "113108"]
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_extra_codes_of_a_per_object_stage_are_declared_too():
    extra = (("113101", "Clean Pixel Data Option"),)
    out = deidentify(_received(_full_table_object()), KEYS, extra_method_codes=extra).dataset
    assert "113101" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]


@pytest.mark.parametrize("option", [None, *OPTIONS], ids=lambda o: o.name if o else "basic")
def test_what_the_edge_writes_under_each_option_verifies(option, full):
    options = _with(option) if option else BASIC
    out = deidentify(full, KEYS, options).dataset
    safe = options.safe_private
    assert verify_deidentified(out, safe_private=safe) == []
    assert verify_deidentified(_received(out), safe_private=safe) == []


def test_full_dates_keep_dates_and_declare_113106(full):
    options = DeidOptions(retain_longitudinal_modified_dates=False,
                          retain_longitudinal_full_dates=True)
    out = deidentify(full, KEYS, options).dataset
    assert out.StudyDate == full.StudyDate and out.AcquisitionDateTime == full.AcquisitionDateTime
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert "113106" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]


def test_without_a_longitudinal_option_dates_are_removed(full):
    result = deidentify(full, KEYS, BASIC)
    out = result.dataset
    assert result.reid_record.date_shift_days == 0
    assert out.StudyDate == "" and "SeriesDate" not in out or out.SeriesDate == "19000101"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert "LastMenstrualDate" not in out  # X, kept only by the date options


def test_the_two_longitudinal_options_exclude_each_other():
    with pytest.raises(ValueError):
        DeidOptions(retain_longitudinal_full_dates=True)  # modified dates is on by default


def test_retain_uids_keeps_them_and_the_verifier_accepts_only_when_declared(full):
    options = dataclasses.replace(BASIC, retain_uids=True)
    result = deidentify(full, KEYS, options)
    out = result.dataset
    assert out.StudyInstanceUID == full.StudyInstanceUID
    assert full.StudyInstanceUID not in result.reid_record.uid_map.values()
    assert out.UID.startswith("2.25.")  # (0040,A124): no 'K' in the Retain UIDs column
    assert out.file_meta.MediaStorageSOPInstanceUID == full.SOPInstanceUID
    assert verify_deidentified(out) == []
    out.DeidentificationMethodCodeSequence = Sequence(
        [i for i in out.DeidentificationMethodCodeSequence if i.CodeValue != "113110"])
    assert "StudyInstanceUID is not a 2.25 UID" in verify_deidentified(out)


def test_retain_device_and_institution_identity_keep_their_k_cells(full):
    device = deidentify(full, KEYS, dataclasses.replace(BASIC, retain_device_identity=True))
    assert device.dataset.DeviceSerialNumber == full.DeviceSerialNumber
    assert "StationAETitle" not in device.dataset  # its 'C': an AE title cannot be cleaned
    institution = deidentify(full, KEYS,
                             dataclasses.replace(BASIC, retain_institution_identity=True))
    assert institution.dataset.InstitutionName == full.InstitutionName
    assert deidentify(full, KEYS, BASIC).dataset.get("InstitutionName") in (None, "", "ANONYMIZED")


def test_clean_graphics_keeps_annotation_items_and_clean_overlay_comments():
    ds = ct_series(1, patient_id="PID-G", patient_name="G^P", size=8)[0]
    text = Dataset()
    text.UnformattedTextValue = "Jan Kowalski"
    text.BoundingBoxAnnotationUnits = "PIXEL"
    ann = Dataset()
    ann.GraphicLayer = "LAYER1"
    ann.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([ann])
    ds.add_new(0x60004000, "LT", "CT CHEST")
    on = deidentify(_received(ds), KEYS, dataclasses.replace(BASIC, clean_graphics=True)).dataset
    assert on.GraphicAnnotationSequence[0].GraphicLayer == "LAYER1"
    assert "UnformattedTextValue" not in on.GraphicAnnotationSequence[0].TextObjectSequence[0]
    assert on[0x60004000].value == "CT CHEST"
    off = deidentify(_received(ds), KEYS, BASIC).dataset
    assert len(off.GraphicAnnotationSequence) == 0 and 0x60004000 not in off


def test_verifier_refuses_what_no_declared_option_allows():
    out = deidentify(_received(_full_table_object()), KEYS).dataset
    assert verify_deidentified(out) == []
    cases = {
        "PatientAge": ("095Y", "PatientAge is over 90 years (must be 090Y)"),
        "PatientBirthDate": ("19260101", "PatientBirthDate has a value (the profile empties it)"),
        "StudyDate": ("20200315KOWALSKI", "StudyDate is not a well-formed DA value"),
        "SeriesDescription": ("Jan Kowalski 85010112345",
                              "SeriesDescription is not a clean descriptor (words outside the "
                              "vocabulary)"),
    }
    for keyword, (value, problem) in cases.items():
        bad = _received(out)
        setattr(bad, keyword, value)
        assert problem in verify_deidentified(bad), keyword
    wrong_vr = _received(out)
    wrong_vr[0x00081048] = pydicom.DataElement(0x00081048, "OB", b"Doe^John")
    assert "PhysiciansOfRecord has VR OB, not the dictionary's PN" in \
        verify_deidentified(_received(wrong_vr))


def test_sop_class_and_structure_survive_every_option(full):
    for option in OPTIONS:
        out = deidentify(full, KEYS, _with(option)).dataset
        assert out.SOPClassUID == CTImageStorage and out.PixelData == full.PixelData
