"""The burned-in risk tables (deid.quarantine) and the metadata-only quarantine_reason."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.uid import CTImageStorage

from deid import DeidKeys, deidentify, quarantine_reason
from deid.pixel_rules import Fields
from deid.quarantine import (
    ENCAPSULATED_DOCUMENTS,
    MODALITY_RISK,
    RISKY_SOP_CLASSES,
    SOP_CLASS_MODALITY,
    class_risk,
    uncleanable_reason,
)

RISKY = sorted(m for m, risk in MODALITY_RISK.items() if risk.risky)
LOW_RISK = sorted(m for m, risk in MODALITY_RISK.items() if not risk.risky)


def _ds(modality="CT", sop_class=CTImageStorage, pixels=True, **extra) -> Dataset:
    ds = Dataset()
    if modality is not None:
        ds.Modality = modality
    ds.SOPClassUID = sop_class
    ds.PatientID = "P1"
    ds.Manufacturer = "Nobody"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = 4
    if pixels:
        ds.PixelData = bytes(16)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def test_plain_ct_passes():
    assert quarantine_reason(_ds()) is None


def test_the_risk_table_considers_the_modalities_issue_14_names():
    for modality in ("US", "SC", "XA", "RF", "OT", "DOC", "XC", "ES", "GM", "OP", "SM", "CR"):
        assert MODALITY_RISK[modality].risky, modality
    for modality in ("CT", "MR", "PT", "NM", "DX"):
        assert not MODALITY_RISK[modality].risky, modality
    assert all(risk.reason for risk in MODALITY_RISK.values())


def test_burned_in_annotation_yes_always_quarantines():
    assert "BurnedInAnnotation" in quarantine_reason(_ds(BurnedInAnnotation="YES"))


@pytest.mark.parametrize("modality", RISKY)
def test_risky_modalities_quarantine_even_when_declared_clean(modality):
    """Senders set BurnedInAnnotation NO by default: it no longer clears a risky class."""
    assert modality in quarantine_reason(_ds(modality=modality))
    assert modality in quarantine_reason(_ds(modality=modality, BurnedInAnnotation="NO"))


@pytest.mark.parametrize("modality", LOW_RISK)
def test_low_risk_modalities_pass_when_not_flagged(modality):
    flagged = {"BurnedInAnnotation": "NO"} if MODALITY_RISK[modality].requires_flag else {}
    assert class_risk(Fields(_ds(modality=modality, **flagged))) is None
    assert class_risk(Fields(_ds(modality=modality, BurnedInAnnotation="YES"))) is not None


@pytest.mark.parametrize("modality", ["DX", "MG", "IO"])
def test_dx_without_the_type_1_flag_is_held(modality):
    assert "without BurnedInAnnotation" in class_risk(Fields(_ds(modality=modality)))


@pytest.mark.parametrize("sop_class", sorted(RISKY_SOP_CLASSES))
def test_risky_sop_classes_quarantine_whatever_the_modality_says(sop_class):
    reason = quarantine_reason(_ds(modality="CT", sop_class=sop_class, BurnedInAnnotation="NO"))
    assert RISKY_SOP_CLASSES[sop_class] in reason


@pytest.mark.parametrize("sop_class", sorted(ENCAPSULATED_DOCUMENTS))
def test_encapsulated_documents_are_held_without_pixel_data(sop_class):
    ds = _ds(modality="DOC", sop_class=sop_class, pixels=False)
    assert uncleanable_reason(Fields(ds)) is not None
    assert "cannot be screened" in quarantine_reason(ds)


def test_screen_saves_are_risky_in_any_modality():
    ds = _ds(ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"])
    assert "SCREEN SAVE" in class_risk(Fields(ds))


def test_derived_reformats_of_low_risk_modalities_pass():
    assert quarantine_reason(_ds(modality="MR", ImageType=["DERIVED", "SECONDARY", "MPR"])) is None


def test_missing_modality_falls_back_to_the_sop_class():
    assert quarantine_reason(_ds(modality=None)) is None
    assert "no Modality" in quarantine_reason(_ds(modality=None, sop_class="1.2.3.4"))
    assert SOP_CLASS_MODALITY[CTImageStorage] == "CT"


def test_unlisted_modality_is_held():
    assert "not in the burned-in risk table" in quarantine_reason(_ds(modality="ZZ"))


def test_objects_without_pixel_data_pass():
    assert quarantine_reason(_ds(modality="US", pixels=False)) is None


def test_recognizable_features_quarantine_even_when_no_burned_in_text():
    ds = _ds(modality="XC", BurnedInAnnotation="NO", RecognizableVisualFeatures="YES")
    assert "RecognizableVisualFeatures" in quarantine_reason(ds)
    assert "RecognizableVisualFeatures" in quarantine_reason(_ds(RecognizableVisualFeatures="YES"))


def test_an_object_a_rule_would_clean_is_held_by_the_metadata_only_check():
    """quarantine_reason cannot clean pixels, so a known layout is held, not passed."""
    ds = _ds(modality="US", Manufacturer="Philips Medical Systems", ManufacturerModelName="CX50",
             Rows=350, Columns=800)
    reason = quarantine_reason(ds)
    assert "not applied" in reason and "CX50" in reason


def test_deidentify_reports_quarantine():
    keys = DeidKeys.generate()
    assert deidentify(_ds(modality="US"), keys).quarantine_reason is not None
    assert deidentify(_ds(), keys).quarantine_reason is None
