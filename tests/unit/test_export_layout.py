"""Export zip layout: names from de-identified UIDs and pseudonyms only, all safe to extract."""
import pytest

from analytics_jobs.export import layout

P, ST, SE, SOP = "RSABCDEFGH234567AB", "2.25.1234", "2.25.5678", "2.25.90"


def test_paths():
    assert layout.dicom_path(P, ST, SE, SOP) == f"dicom/{P}/{ST}/{SE}/{SOP}.dcm"
    assert layout.nifti_path(P, ST, SE) == f"nifti/{P}/{ST}/{SE}.nii.gz"
    assert layout.nifti_path(P, ST, SE, "e2", ".json") == f"nifti/{P}/{ST}/{SE}_e2.json"
    assert layout.nifti_path(P, ST, SE, "../x y") == f"nifti/{P}/{ST}/{SE}_x_y.nii.gz"
    for fixed in (layout.README, layout.MANIFEST, layout.VISITS_CSV, layout.VISITS_PARQUET):
        assert layout.check_entry_path(fixed) == fixed


@pytest.mark.parametrize("bad_uid", ["", "1..2", "1.2.", "01.2", "1.2.a", "../1", "1" * 65,
                                     "1.2/3", "1.2\x00"])
def test_bad_uids_rejected(bad_uid):
    with pytest.raises(ValueError, match="UID"):
        layout.dicom_path(P, ST, SE, bad_uid)


@pytest.mark.parametrize("bad", ["", "..", "a/b", "Doe^John", "é", "x" * 65])
def test_bad_pseudonyms_rejected(bad):
    with pytest.raises(ValueError, match="pseudonym"):
        layout.dicom_path(bad, ST, SE, SOP)


@pytest.mark.parametrize("text, expected", [("", "x"), ("..", "x"), ("a b/c", "a_b_c"),
                                            ("ROI1", "ROI1"), ("é" * 50, "x")])
def test_safe_component(text, expected):
    assert layout.safe_component(text) == expected


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "C:x", "a/", "a\x00"])
def test_unsafe_entry_paths(bad):
    with pytest.raises(ValueError, match="unsafe"):
        layout.check_entry_path(bad)


def test_nifti_extension_checked():
    with pytest.raises(ValueError):
        layout.nifti_path(P, ST, SE, ext=".sh")
