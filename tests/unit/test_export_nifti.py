"""NIfTI conversion of one series with dcm2niix: real conversion when dcm2niix is installed,
a clean 'skipped' reason otherwise."""
import importlib.util
import json

import numpy as np
import pytest
from pydicom import dcmwrite

from analytics_jobs.export import nifti
from pacs_hdfs.dicom.synthetic import ct_series

HAVE_DCM2NIIX = nifti.available() is not None
HAVE_NIBABEL = importlib.util.find_spec("nibabel") is not None
SIZE, SLICES = 64, 6


def write_series(folder):
    folder.mkdir()
    for i, ds in enumerate(ct_series(SLICES, patient_id="RSAAAABBBBCCCCDDDD",
                                     patient_name="RSAAAABBBBCCCCDDDD", size=SIZE)):
        dcmwrite(folder / f"{i:04d}.dcm", ds, enforce_file_format=True)
    return folder


def test_missing_executable_gives_reason(tmp_path):
    r = nifti.convert_series(write_series(tmp_path / "s"), tmp_path / "out",
                             exe="dcm2niix-not-installed-here")
    assert not r.converted and "not installed" in r.reason and "dcm2niix" in r.reason


def test_empty_series_gives_reason(tmp_path):
    (tmp_path / "s").mkdir()
    r = nifti.convert_series(tmp_path / "s", tmp_path / "out")
    assert not r.converted and r.reason


def test_modalities_offered():
    assert nifti.NIFTI_MODALITIES == {"CT", "MR"}


@pytest.mark.skipif(not HAVE_DCM2NIIX, reason="dcm2niix is not installed (Debian package "
                    "dcm2niix; `make system` installs it)")
def test_ct_series_converts(tmp_path):
    r = nifti.convert_series(write_series(tmp_path / "s"), tmp_path / "out")
    assert r.converted, r.reason
    assert len(r.volumes) == 1
    vol = r.volumes[0]
    assert vol.nifti.name == "series.nii.gz" and vol.suffix == ""
    assert vol.sidecar is not None
    sidecar = json.loads(vol.sidecar.read_text())
    assert sidecar.get("Modality") == "CT"
    assert "PatientName" not in sidecar and "PatientID" not in sidecar
    if not HAVE_NIBABEL:
        pytest.skip("nibabel is not installed: shape and affine not checked")
    import nibabel
    img = nibabel.load(vol.nifti)
    assert img.shape == (SIZE, SIZE, SLICES)
    zooms = np.abs(np.asarray(img.header.get_zooms()[:3], float))
    assert np.allclose(zooms, (0.977, 0.977, 1.0), atol=1e-3), zooms
    assert np.allclose(np.abs(np.diag(img.affine)[:3]), (0.977, 0.977, 1.0), atol=1e-3)


@pytest.mark.skipif(not HAVE_DCM2NIIX, reason="dcm2niix is not installed (Debian package "
                    "dcm2niix; `make system` installs it)")
def test_non_dicom_series_skipped_with_reason(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x.dcm").write_bytes(b"not a DICOM file")
    r = nifti.convert_series(tmp_path / "s", tmp_path / "out")
    assert not r.converted and r.reason == "dcm2niix made no volume: no DICOM images found"
