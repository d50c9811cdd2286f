"""FDK accuracy against the analytic phantom, conventions, and kernel agreement."""

import numpy as np
import pytest

from recon_mapreduce import backends, phantom
from recon_mapreduce.fdk_fast import backproject_numba
from recon_mapreduce.fdk_reference import backproject_reference, fdk_reference
from recon_mapreduce.filters import filter_projections
from recon_mapreduce.geometry import ConeBeamGeometry

# Central region: away from the cone-beam-limited top/bottom and the skull edge.
MAX_RMSE = 0.02  # attenuation units; the brain is 0.2, the fine structures differ by 0.1
MIN_PSNR_DB = 20 * np.log10(1.0 / MAX_RMSE)  # peak = phantom range 1.0


def central_mask(geom):
    coords = geom.voxel_coordinates()
    z, y, x = np.meshgrid(coords, coords, coords, indexing="ij")
    half = geom.n_voxels * geom.voxel_size / 2
    return (np.abs(z) < 0.35 * half) & (x**2 + y**2 < (0.6 * half) ** 2)


def rmse(volume, truth, mask):
    return float(np.sqrt(np.mean((volume - truth)[mask] ** 2)))


def psnr(volume, truth, mask):
    return float(20 * np.log10(1.0 / rmse(volume, truth, mask)))


@pytest.fixture(scope="module")
def shepp_logan():
    geom = ConeBeamGeometry.for_volume(40, 80, detector_shape=(48, 56))
    ellipsoids = phantom.shepp_logan_ellipsoids(geom)
    projections = phantom.project(ellipsoids, geom)
    truth = phantom.voxelise(ellipsoids, geom, supersample=2)
    volume = backends.reconstruct(projections, geom, "ram-lak", backend="numba")
    return geom, projections, truth, volume


def test_shepp_logan_reconstruction_is_accurate(shepp_logan):
    geom, _, truth, volume = shepp_logan
    mask = central_mask(geom)
    assert rmse(volume, truth, mask) <= MAX_RMSE
    assert psnr(volume, truth, mask) >= MIN_PSNR_DB


@pytest.mark.parametrize("wrong", [
    pytest.param(lambda v: 2 * v, id="scale-x2"),
    pytest.param(lambda v: v / 2, id="scale-half"),
    pytest.param(lambda v: v[:, :, ::-1], id="flip-x"),
    pytest.param(lambda v: v[:, ::-1, :], id="flip-y"),
    pytest.param(lambda v: v[::-1], id="flip-z"),
    pytest.param(lambda v: v.transpose(0, 2, 1), id="swap-xy"),
])
def test_wrong_scaling_or_axes_fail_the_threshold(shepp_logan, wrong):
    geom, _, truth, volume = shepp_logan
    mask = central_mask(geom)
    assert rmse(wrong(volume), truth, mask) > MAX_RMSE
    assert psnr(wrong(volume), truth, mask) < MIN_PSNR_DB


def test_off_centre_point_lands_on_its_voxel():
    geom = ConeBeamGeometry.for_volume(32, 64, detector_shape=(48, 48))
    coords = geom.voxel_coordinates()
    # x, y, z on voxel centres, distinct and off-centre so no mirror image coincides
    centre = np.array([coords[25], coords[9], coords[21]])
    projections = phantom.project(phantom.sphere_ellipsoids(tuple(centre), 1.5), geom)
    volume = backends.reconstruct(projections, geom, "ram-lak", backend="numba")
    peak = np.unravel_index(np.argmax(volume), volume.shape)
    assert peak == geom.voxel_index_of(centre)
    mirrored = {geom.voxel_index_of(centre * flip) for flip in ([-1, 1, 1], [1, -1, 1], [1, 1, -1])}
    assert peak not in mirrored


def test_numpy_reference_and_numba_agree_with_offsets_and_uneven_angles():
    rng = np.random.default_rng(7)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 30))
    geom = ConeBeamGeometry(90.0, 140.0, 30, 34, 1.3, 1.1, angles, 20, 1.0,
                            offset_u=1.7, offset_v=-0.9)
    filtered = rng.standard_normal((geom.n_angles, geom.n_rows, geom.n_cols)).astype(np.float32)
    reference = backproject_reference(filtered, geom)
    fast = backproject_numba(filtered, geom, angle_chunk=7)
    relative = np.sqrt(np.mean((fast - reference) ** 2) / np.mean(reference**2))
    assert relative <= 1e-5


def test_full_pipelines_agree_on_the_phantom(shepp_logan):
    geom, projections, _, volume = shepp_logan
    small = ConeBeamGeometry.for_volume(16, 24, detector_shape=(24, 24))
    small_projections = phantom.project(phantom.shepp_logan_ellipsoids(small), small)
    reference = fdk_reference(small_projections, small)
    fast = backends.reconstruct(small_projections, small, backend="numba")
    assert np.sqrt(np.mean((fast - reference) ** 2) / np.mean(reference**2)) <= 1e-5


def test_backend_names_and_fallback():
    assert backends.get_backprojector("numpy") is backproject_reference
    assert backends.get_backprojector("numba") is backproject_numba
    best = backends.available_backends()[0]
    assert backends.get_backprojector("auto") is backends.LOADERS[best]()
    if "cupy" not in backends.available_backends():
        assert backends.get_backprojector("cupy") is backproject_numba  # CPU fallback
    with pytest.raises(ValueError):
        backends.get_backprojector("opencl")


def test_filtered_weights_are_applied_by_both_kernels():
    geom = ConeBeamGeometry.for_volume(12, 6, detector_shape=(16, 16))
    filtered = np.ones((6, 16, 16), dtype=np.float32)
    weights = np.arange(1, 7, dtype=float)
    for kernel in (backproject_reference, backproject_numba):
        single = kernel(filtered, geom, weights=np.ones(6))
        weighted = kernel(filtered, geom, weights=weights)
        assert weighted.sum() > single.sum() * 2  # weights 1..6 average 3.5
        assert np.isclose(weighted.sum() / single.sum(), weights.mean(), rtol=0.05)
