"""deid.burned_in: the pixel screen on real files from pydicom's test data.

A rule-covered ultrasound is cleaned (exact rectangles zeroed in every frame, nothing else
changed), a risky object no rule covers is held, BurnedInAnnotation NO does not clear an
ultrasound, and CT_small passes untouched.
"""

from __future__ import annotations

import copy
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread, dcmwrite
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder, pack_bits
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from deid import DeidKeys, deidentify
from deid.burned_in import (
    CLEAN_PIXEL_DATA,
    NOT_APPLIED,
    RuleSet,
    RecipeUse,
    assess,
    default_rules,
    load_rules,
    screen,
)
from deid.edge.encode import encode
from deid.pixel_rules import parse

KEYS = DeidKeys.generate()


def _read(name: str) -> Dataset:
    return dcmread(get_testdata_file(name))


def _pixels(ds: Dataset) -> np.ndarray:
    """Decoded pixels as the screen sees them (colour as RGB)."""
    return get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, as_rgb=True)[0]


def _reread(ds: Dataset) -> Dataset:
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return dcmread(BytesIO(buf.getvalue()))


def _expect_blanked(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> None:
    """``after`` is ``before`` with exactly ``mask`` (rows x columns) zeroed in every frame."""
    if before.shape[:2] == mask.shape:  # one frame: (rows, columns[, samples])
        before, after = before[None], after[None]
    assert after.shape == before.shape
    assert (after[:, mask] == 0).all()
    np.testing.assert_array_equal(after[:, ~mask], before[:, ~mask])


def _mask(rows: int, columns: int, *boxes) -> np.ndarray:
    mask = np.zeros((rows, columns), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def _custom(text: str, modalities=None) -> RuleSet:
    use = RecipeUse("test.dicom", "test", modalities, "test")
    return RuleSet([(use, parse(text, "test.dicom"))], not_applied={})


# --- pass ----------------------------------------------------------------------------------

def test_ct_small_passes_untouched():
    original = _read("CT_small.dcm")
    out = deidentify(original, KEYS).dataset
    pixels = out.PixelData
    verdict = screen(original, out)
    assert verdict.action == "pass" and verdict.hold_reason is None
    assert verdict.method_code is None and out.PixelData is pixels
    assert "BurnedInAnnotation" not in out


def test_objects_without_pixel_data_pass():
    report = _read("reportsi.dcm")
    assert screen(report, deidentify(report, KEYS).dataset).action == "pass"


# --- clean ---------------------------------------------------------------------------------

def test_real_cx50_ultrasound_has_the_rule_banner_zeroed():
    """examples_palette.dcm is a Philips CX50 ultrasound: deid's "CX50" rule (ctpcoordinates
    0,0,800,59) covers it as it is. Its SequenceOfUltrasoundRegions describe a larger matrix
    than its 350x800 pixels, so the regions recipe is not trusted and only the banner goes."""
    original = _read("examples_palette.dcm")
    before = _pixels(original)
    out = deidentify(original, KEYS).dataset
    verdict = screen(original, out)
    assert before[:59].any()  # the banner has content
    assert verdict.cleaned and verdict.rules == ("deid.dicom:CX50",)
    assert verdict.method_code == CLEAN_PIXEL_DATA == ("113101", "Clean Pixel Data Option")
    assert verdict.blanked_pixels == 59 * 800
    after = _pixels(out)
    _expect_blanked(before, after, _mask(350, 800, (0, 0, 800, 59)))
    assert out.BurnedInAnnotation == "NO"
    assert out.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID  # native
    assert out.PhotometricInterpretation == "PALETTE COLOR"
    np.testing.assert_array_equal(_pixels(_reread(out)), after)
    np.testing.assert_array_equal(_pixels(original), before)  # the received object untouched


def _atl_hdi_5000() -> tuple[Dataset, np.ndarray]:
    """A real ultrasound (examples_jpeg2k.dcm, GE LOGIQ 700, 480x640) made into the layout of
    deid's "ATL HDI 5000" rule: 476x640, Manufacturer ATL, model HDI 5000, native RGB."""
    ds = _read("examples_jpeg2k.dcm")
    rgb = _pixels(ds)[:476]
    ds.set_pixel_data(np.ascontiguousarray(rgb), "RGB", 8, generate_instance_uid=False)
    ds.Manufacturer, ds.ManufacturerModelName = "ATL", "HDI 5000"
    return ds, rgb


def test_constructed_atl_hdi_5000_has_exactly_its_two_rectangles_zeroed():
    original, before = _atl_hdi_5000()
    out = deidentify(original, KEYS).dataset
    verdict = screen(original, out)
    assert verdict.rules == ("deid.dicom:ATL HDI 5000",)
    boxes = ((40, 0, 240, 40), (240, 0, 430, 16))  # ctpcoordinates 40,0,200,40 / 240,0,190,16
    after = _pixels(out)
    _expect_blanked(before, after, _mask(476, 640, *boxes))
    assert before[:40, 40:240].any() and after[40:].any()  # real content went, the rest stayed
    assert verdict.blanked_pixels == 200 * 40 + 190 * 16


def test_compressed_ultrasound_is_decoded_blanked_and_written_native():
    """examples_jpeg2k.dcm (JPEG 2000, YBR_RCT) as an ATL HDI4000 (480 rows): "ATL HDI4000"
    blanks ctpcoordinates 0,0,1140,62, clipped to the 640 columns."""
    original = _read("examples_jpeg2k.dcm")
    original.Manufacturer, original.ManufacturerModelName = "ATL", "HDI4000"
    before = _pixels(original)
    out = deidentify(original, KEYS).dataset
    assert screen(original, out).cleaned
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.PhotometricInterpretation == "RGB" and out.PlanarConfiguration == 0
    back = _reread(out)
    _expect_blanked(before, back.pixel_array, _mask(480, 640, (0, 0, 640, 62)))


def test_edge_encoder_writes_the_cleaned_object():
    original = _read("examples_jpeg2k.dcm")
    original.Manufacturer, original.ManufacturerModelName = "ATL", "HDI4000"
    out = deidentify(original, KEYS).dataset
    screen(original, out)
    back = dcmread(BytesIO(encode(out)))
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(back.pixel_array, _pixels(out))
    assert back.BurnedInAnnotation == "NO"


def test_low_risk_ct_with_a_known_dose_report_layout_is_cleaned():
    """CT_small is a GE CT; as a dose report deid's "Dose Report" (ctpcoordinates 0,0,512,110)
    blanks its top 110 rows (all 128 columns)."""
    original = _read("CT_small.dcm")
    original.SeriesDescription = "Dose Report"
    before = _pixels(original)
    out = deidentify(original, KEYS).dataset
    assert screen(original, out).rules == ("deid.dicom:Dose Report",)
    _expect_blanked(before, _pixels(_reread(out)), _mask(128, 128, (0, 0, 128, 110)))


def _region(x0, y0, x1, y1) -> Dataset:
    item = Dataset()
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    return item


def test_multiframe_ultrasound_is_blanked_outside_its_regions_in_every_frame():
    """examples_ybr_color.dcm: 30 JPEG frames, 240x320, SonoSite (no device rule). With an
    ultrasound region that fits its matrix, deid.dicom.ultrasound blanks all but the region."""
    original = _read("examples_ybr_color.dcm")
    original.SequenceOfUltrasoundRegions = Sequence([_region(84, 31, 295, 214)])
    before = _pixels(original)
    out = deidentify(original, KEYS).dataset
    verdict = screen(original, out)
    assert verdict.rules == ("deid.dicom.ultrasound:Blank Image",
                             "deid.dicom.ultrasound:Clean Ultrasound Regions")
    keep = _mask(240, 320, (84, 31, 296, 215))
    after = _reread(out).pixel_array
    assert after.shape == (30, 240, 320, 3)
    _expect_blanked(before, after, ~keep)


def test_a_keep_in_one_recipe_never_restores_another_recipes_blank():
    """The device banner (deid.dicom) stays blank inside an ultrasound region."""
    original, before = _atl_hdi_5000()
    original.SequenceOfUltrasoundRegions = Sequence([_region(0, 0, 639, 400)])
    out = deidentify(original, KEYS).dataset
    assert screen(original, out).cleaned
    blank = _mask(476, 640, (40, 0, 240, 40), (240, 0, 430, 16), (0, 401, 640, 476))
    _expect_blanked(before, _pixels(out), blank)


@pytest.mark.parametrize("name", ["ExplVR_BigEnd.dcm", "MR_small_bigendian.dcm",
                                  "SC_rgb_rle_16bit_2frame.dcm",
                                  "SC_ybr_full_422_uncompressed.dcm"])
def test_native_big_endian_rle_and_ybr_sources(name):
    """Byte order is kept for native data; RLE becomes Explicit VR Little Endian; YBR -> RGB."""
    original = _read(name)
    rules = _custom("%filter graylist\nLABEL corner\n  coordinates 0,0,7,5\n")
    before = _pixels(original)
    out = deidentify(original, KEYS).dataset
    assert screen(original, out, rules=rules).cleaned
    syntax = original.file_meta.TransferSyntaxUID
    expected = ExplicitVRLittleEndian if syntax.is_encapsulated else syntax
    assert out.file_meta.TransferSyntaxUID == expected
    rows, columns = original.Rows, original.Columns
    _expect_blanked(before, _pixels(_reread(out)), _mask(rows, columns, (0, 0, 7, 5)))


def test_single_bit_pixels_are_repacked():
    ds = _read("CT_small.dcm")
    bits = (np.arange(16 * 24) % 3 == 0).astype(np.uint8).reshape(16, 24)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.Rows, ds.Columns = 16, 24
    ds.PixelData = pack_bits(bits)
    out = deidentify(ds, KEYS).dataset
    corner = _custom("%filter graylist\nLABEL c\n coordinates 0,0,8,4\n")
    assert screen(ds, out, rules=corner).cleaned
    _expect_blanked(bits, _pixels(_reread(out)), _mask(16, 24, (0, 0, 8, 4)))


# --- hold ----------------------------------------------------------------------------------

def test_ultrasound_declared_clean_without_a_rule_is_still_held():
    """examples_rgb_color.dcm: GE LOGIQ 700, no device rule, no ultrasound regions; the sender
    says BurnedInAnnotation NO, which no longer clears an ultrasound."""
    original = _read("examples_rgb_color.dcm")
    original.BurnedInAnnotation = "NO"
    out = deidentify(original, KEYS).dataset
    pixels = out.PixelData
    verdict = screen(original, out)
    assert verdict.held and "Ultrasound" in verdict.hold_reason
    assert "would blank the whole frame" in verdict.reason  # "Blank Image" alone is no layout
    assert out.PixelData is pixels


def test_ultrasound_regions_outside_the_matrix_are_not_trusted():
    original = _read("examples_ybr_color.dcm")  # its regions come from a larger original
    verdict = screen(original, deidentify(original, KEYS).dataset)
    assert verdict.held and "outside the 320x240 frame" in verdict.reason


@pytest.mark.parametrize("name", ["SC_rgb_small_odd.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                                  "JPEG2000.dcm", "SC_jpeg_no_color_transform.dcm"])
def test_secondary_captures_no_rule_covers_are_held(name):
    original = _read(name)
    verdict = screen(original, deidentify(original, KEYS).dataset)
    assert verdict.held and verdict.hold_reason


@pytest.mark.parametrize("modality,sop_class", [
    ("XA", "1.2.840.10008.5.1.4.1.1.12.1"), ("RF", "1.2.840.10008.5.1.4.1.1.12.2"),
    ("CR", "1.2.840.10008.5.1.4.1.1.1"),
])
def test_xa_rf_cr_without_a_rule_are_held(modality, sop_class):
    original = _read("CT_small.dcm")
    original.Modality, original.SOPClassUID = modality, sop_class
    original.BurnedInAnnotation = "NO"
    verdict = screen(original, deidentify(original, KEYS).dataset)
    assert verdict.held and sop_class not in verdict.reason


def test_blacklist_rule_holds_a_low_risk_ct():
    original = _read("CT_small.dcm")
    original.Manufacturer = "SIEMENS"  # GE's dose reports have a layout rule ("Dose Report")
    original.SeriesDescription = "Dose Report"
    verdict = assess(original)
    assert verdict.held and "Stanford Blacklist Dose Report or External" in verdict.reason


def test_recognizable_features_are_held_even_with_a_layout():
    original = _read("examples_palette.dcm")
    original.RecognizableVisualFeatures = "YES"
    assert assess(original).held


def test_undecodable_pixels_hold_and_leave_out_unchanged():
    original = _read("examples_jpeg2k.dcm")
    original.Manufacturer, original.ManufacturerModelName = "ATL", "HDI4000"
    out = deidentify(original, KEYS).dataset
    out.PixelData = out.PixelData[:200]  # truncated codestream
    damaged = copy.deepcopy(out)
    verdict = screen(original, out)
    assert verdict.held and "could not be cleaned" in verdict.reason
    assert out.PixelData == damaged.PixelData
    assert out.file_meta.TransferSyntaxUID == damaged.file_meta.TransferSyntaxUID


def test_whole_frame_or_empty_masks_are_no_layout():
    original = _read("CT_small.dcm")
    everything = _custom("%filter graylist\nLABEL all\n coordinates all\n")
    nothing = _custom("%filter graylist\nLABEL out\n coordinates 500,500,600,600\n")
    assert assess(original, rules=everything).action == "pass"  # low risk: falls through
    assert "would blank nothing" in assess(original, rules=nothing).reason


# --- the rule set ----------------------------------------------------------------------------

def test_remembered_verdicts_follow_the_attributes():
    """Verdicts are remembered per device by the values they depend on: the same device with
    another series description, frame size or flag gets its own verdict, in any order."""
    rules = load_rules()
    plain = _read("CT_small.dcm")
    dose = _read("CT_small.dcm")
    dose.SeriesDescription = "Dose Report"
    flagged = _read("CT_small.dcm")
    flagged.BurnedInAnnotation = "YES"
    no_pixels = _read("CT_small.dcm")
    del no_pixels.PixelData
    expected = {"plain": "pass", "dose": "clean", "flagged": "hold", "no_pixels": "pass"}
    for _ in range(2):
        for name, ds in (("plain", plain), ("dose", dose), ("flagged", flagged),
                         ("no_pixels", no_pixels)):
            assert assess(ds, rules=rules).action == expected[name], name


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on its own odd test files
def test_remembered_verdicts_equal_fresh_ones_for_every_bundled_file():
    import pydicom
    remembered = load_rules()
    bundled = Path(pydicom.__file__).parent / "data" / "test_files"  # never the network
    for path in sorted(bundled.glob("*.dcm")):
        try:
            first, second = dcmread(path, force=True), dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - not every bundled file is a data set
            continue
        fresh = assess(first, rules=load_rules())
        assess(first, rules=remembered)
        assert assess(second, rules=remembered) == fresh, path


def test_not_applied_rules_name_real_rules_and_are_skipped():
    rules = default_rules()
    applied = {(r.recipe, r.label) for r, _ in rules.rules}
    assert not applied & set(NOT_APPLIED)
    assert all(r.section in ("graylist", "blacklist") for r, _ in rules.rules)


def test_a_stale_not_applied_entry_is_an_error():
    use = RecipeUse("t.dicom", "test", None, "")
    with pytest.raises(ValueError, match="exactly one rule"):
        RuleSet([(use, parse("%filter g\nLABEL a\n", "t.dicom"))],
                not_applied={("t.dicom", "b"): ""})


def test_assess_never_touches_pixels():
    original = _read("examples_palette.dcm")
    pixels = original.PixelData
    assert assess(original).cleaned and original.PixelData is pixels


def test_deidentify_runs_the_screen_and_declares_what_it_did():
    """The edge's one call: a covered layout comes back blanked, not held, with 113101 among
    the method codes; a risky object no rule covers comes back held, with no 113101."""
    cleaned = deidentify(_read("examples_palette.dcm"), KEYS)
    codes = [item.CodeValue for item in cleaned.dataset.DeidentificationMethodCodeSequence]
    assert cleaned.quarantine_reason is None and "113101" in codes
    assert not _pixels(cleaned.dataset)[:59].any()
    assert "Clean Pixel Data Option" in cleaned.dataset.DeidentificationMethod

    risky = _read("examples_rgb_color.dcm")
    risky.BurnedInAnnotation = "NO"
    held = deidentify(risky, KEYS)
    codes = [item.CodeValue for item in held.dataset.DeidentificationMethodCodeSequence]
    assert held.quarantine_reason and "Ultrasound" in held.quarantine_reason
    assert "113101" not in codes
