"""Quarantine rules for objects likely to carry burned-in PHI."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.uid import CTImageStorage

from deid import DeidKeys, deidentify, quarantine_reason
from deid.quarantine import RISKY_MODALITIES, RISKY_SOP_CLASSES


def _ds(modality="CT", sop_class=CTImageStorage, **extra) -> Dataset:
    ds = Dataset()
    ds.Modality = modality
    ds.SOPClassUID = sop_class
    ds.PatientID = "P1"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def test_plain_ct_passes():
    assert quarantine_reason(_ds()) is None


def test_burned_in_annotation_yes_always_quarantines():
    assert "BurnedInAnnotation" in quarantine_reason(_ds(BurnedInAnnotation="YES"))


@pytest.mark.parametrize("modality", sorted(RISKY_MODALITIES))
def test_risky_modalities_quarantine_unless_declared_clean(modality):
    assert modality in quarantine_reason(_ds(modality=modality))
    assert quarantine_reason(_ds(modality=modality, BurnedInAnnotation="NO")) is None


@pytest.mark.parametrize("sop_class", sorted(RISKY_SOP_CLASSES))
def test_risky_sop_classes_quarantine(sop_class):
    assert quarantine_reason(_ds(modality="CT", sop_class=sop_class)) is not None


def test_recognizable_features_quarantine_even_when_no_burned_in_text():
    ds = _ds(modality="XC", BurnedInAnnotation="NO", RecognizableVisualFeatures="YES")
    assert "RecognizableVisualFeatures" in quarantine_reason(ds)


def test_deidentify_reports_quarantine():
    keys = DeidKeys.generate()
    assert deidentify(_ds(modality="US"), keys).quarantine_reason is not None
    assert deidentify(_ds(), keys).quarantine_reason is None
