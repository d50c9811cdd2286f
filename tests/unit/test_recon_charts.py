"""The fdk chart and numbers table: central planes from slabs, the exact phantom profile, PNG
output, and clear refusals of wrongly shaped input."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from recon_mapreduce import charts, phantom
from recon_mapreduce.geometry import ConeBeamGeometry

N = 24


@pytest.fixture(scope="module")
def geom():
    return ConeBeamGeometry.for_volume(N, 8)


@pytest.fixture(scope="module")
def volume(geom):
    return phantom.voxelise(phantom.shepp_logan_ellipsoids(geom), geom).astype(np.float32)


def test_central_planes_from_slabs_match_the_volume(volume):
    slabs = [volume[z0:z0 + 5] for z0 in range(0, N, 5)]   # uneven last slab
    planes = charts.central_planes(iter(slabs), N)
    c = N // 2
    assert np.array_equal(planes.axial, volume[c])
    assert np.array_equal(planes.coronal, volume[:, c, :])
    assert np.array_equal(planes.sagittal, volume[:, :, c])


def test_central_planes_refuse_wrong_slabs(volume):
    with pytest.raises(ValueError, match="not \\(k, 24, 24\\)"):
        charts.central_planes([volume[:, :, :10]], N)
    with pytest.raises(ValueError, match="cover 16 slices"):
        charts.central_planes([volume[:16]], N)


def test_phantom_profile_is_the_exact_phantom_on_the_line(geom, volume):
    assert charts.phantom_profile({"phantom": None}, geom) is None
    assert charts.phantom_profile({}, geom) is None
    y, values = charts.phantom_profile({"phantom": charts.SIMULATED_PHANTOM}, geom)
    assert y[0] == pytest.approx(-N / 2) and y[-1] == pytest.approx(N / 2)
    # at voxel centres the point evaluation equals the (unsupersampled) voxelised phantom
    centres = geom.voxel_coordinates()
    at_centres = charts.phantom_values(phantom.shepp_logan_ellipsoids(geom),
                                       np.stack([np.full(N, centres[N // 2]), centres,
                                                 np.full(N, centres[N // 2])], axis=-1))
    assert np.allclose(at_centres, volume[N // 2, :, N // 2])
    assert values.max() == pytest.approx(1.0)      # the skull; outside the head it is 0
    assert values[0] == 0.0 and values[-1] == 0.0


def _image(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png))


def test_chart_png_with_and_without_the_phantom(geom, volume):
    planes = charts.central_planes([volume], N)
    truth = charts.phantom_profile({"phantom": charts.SIMULATED_PHANTOM}, geom)
    with_truth = charts.volume_chart_png(planes, geom, truth)
    image = _image(with_truth)
    assert image.size == (1100, 750)
    alone = charts.volume_chart_png(planes, geom)
    assert _image(alone).size == (1100, 750) and alone != with_truth


def test_chart_refuses_wrongly_shaped_input(geom, volume):
    planes = charts.central_planes([volume], N)
    bad = charts.CentralPlanes(planes.axial, planes.coronal[:-1], planes.sagittal)
    with pytest.raises(ValueError, match=r"coronal plane has shape \(23, 24\), expected \(24, 24\)"):
        charts.volume_chart_png(bad, geom)
    with pytest.raises(ValueError, match="1-D of the same length"):
        charts.volume_chart_png(planes, geom, (np.zeros(5), np.zeros(6)))


def test_default_window_is_common_and_never_empty(volume):
    planes = charts.central_planes([volume], N)
    lo, hi = charts.default_window(planes)
    assert lo < hi and lo <= 0.0 and hi == pytest.approx(1.0)
    flat = charts.CentralPlanes(*(np.zeros((N, N)),) * 3)
    assert charts.default_window(flat) == (-0.5, 0.5)


def test_result_numbers_rows():
    result = {"volume": {"shape": [4, 4, 4], "voxel_size_mm": 1.0, "min": -0.1, "max": 1.2},
              "accuracy": {"rmse": 0.01234567, "psnr_db": 38.123, "peak": 1.0, "voxels": 10,
                           "region": "centre"},
              "spark": {"seconds": 3.5, "map_tasks": 12, "slabs": 2},
              "dicom": {"instances": 4}}
    rows = charts.result_numbers(result)
    assert all(set(r) == {"quantity", "value", "unit"} for r in rows)
    by_name = {r["quantity"]: r for r in rows}
    assert by_name["RMSE against the phantom"]["value"] == 0.012346
    assert by_name["PSNR against the phantom"] == {"quantity": "PSNR against the phantom",
                                                   "value": 38.12, "unit": "dB"}
    assert by_name["volume size"]["value"] == "4 × 4 × 4"
    no_truth = charts.result_numbers({**result, "accuracy": None, "dicom": None})
    assert not any("phantom" in r["quantity"] for r in no_truth)
    assert len(no_truth) == len(rows) - 5
