"""The per-(angle, row band) decomposition used by the Spark job sums to the whole volume."""

import dataclasses

import numpy as np
import pytest

from recon_mapreduce import phantom
from recon_mapreduce.bands import (backproject_band, band_rows, filter_rows, map_band,
                                   slabs_touched_by_band, split_range)
from recon_mapreduce.fdk_fast import backproject_numba
from recon_mapreduce.filters import filter_projections
from recon_mapreduce.geometry import ConeBeamGeometry

BAND, SLAB = 8, 8


@pytest.fixture(scope="module", params=["covering", "truncated", "fine-rows"])
def case(request):
    geom = ConeBeamGeometry.for_volume(32, 24, detector_shape=(40, 44))
    if request.param == "fine-rows":  # under 2 rows per voxel: the kernel's AVX2 window path
        geom = ConeBeamGeometry.for_volume(32, 24, detector_shape=(64, 44))
    if request.param == "truncated":  # the volume overhangs the detector's first and last rows
        geom = dataclasses.replace(geom, dv=geom.dv * 0.7, offset_u=0.8, offset_v=1.3)
    # phantom plus noise, so the outermost detector rows and columns carry data too
    projections = phantom.project(phantom.shepp_logan_ellipsoids(geom), geom)
    projections += np.random.default_rng(2).uniform(0, 1, projections.shape).astype(np.float32)
    whole = backproject_numba(filter_projections(projections, geom, "shepp-logan"), geom)
    return geom, projections, whole


def map_reduce(geom, projections, slab_size):
    """What the Spark job does: map over (angle, band) -> partial slabs, reduce by slab."""
    volume = np.zeros((geom.n_voxels,) * 3)
    tasks = 0
    for index, angle in enumerate(geom.angles):
        for v0, v1 in split_range(geom.n_rows, BAND):
            first, stop = band_rows(v0, v1, geom.n_rows)
            band = filter_rows(projections[index, first:stop], geom, index, v0, "shepp-logan")
            for z0, z1 in slabs_touched_by_band(geom, angle, v0, v1, slab_size):
                volume[z0:z1] += backproject_band(band, geom, angle, v0, v1, z0, z1)
                tasks += 1
    return volume, tasks


def test_band_sum_equals_whole_volume_kernel(case):
    geom, projections, whole = case
    volume, tasks = map_reduce(geom, projections, SLAB)
    relative = np.sqrt(np.mean((volume - whole) ** 2) / np.mean(whole**2))
    assert relative <= 1e-6
    all_pairs = geom.n_angles * len(split_range(geom.n_rows, BAND)) * len(split_range(32, SLAB))
    assert tasks < all_pairs  # slab pruning does skip work


def test_dropping_the_halo_row_breaks_the_sum(case):
    geom, projections, whole = case
    index, angle = 3, geom.angles[3]
    v0, v1 = 8, 16
    first, stop = band_rows(v0, v1, geom.n_rows)
    band = filter_rows(projections[index, first:stop], geom, index, v0)
    with_halo = backproject_band(band, geom, angle, v0, v1, 0, geom.n_voxels)
    band_without_halo = band.copy()
    band_without_halo[-1] = 0
    without = backproject_band(band_without_halo, geom, angle, v0, v1, 0, geom.n_voxels)
    assert not np.allclose(with_halo, without)


def test_slabs_skipped_by_the_pruning_receive_nothing(case):
    geom, projections, _ = case
    rng = np.random.default_rng(5)
    for index in rng.choice(geom.n_angles, 4, replace=False):
        angle = geom.angles[index]
        for v0, v1 in split_range(geom.n_rows, BAND):
            first, stop = band_rows(v0, v1, geom.n_rows)
            band = filter_rows(projections[index, first:stop], geom, index, v0)
            full = backproject_band(band, geom, angle, v0, v1, 0, geom.n_voxels)
            touched = slabs_touched_by_band(geom, angle, v0, v1, 4)
            for z0, z1 in split_range(geom.n_voxels, 4):
                if (z0, z1) not in touched:
                    assert not full[z0:z1].any()


def test_band_arguments_are_checked(case):
    geom, projections, _ = case
    assert band_rows(32, 40, 40) == (32, 40)  # last band: no halo row exists
    assert band_rows(0, 8, 40) == (0, 9)
    with pytest.raises(ValueError):
        band_rows(8, 41, 40)
    with pytest.raises(ValueError):
        backproject_band(np.zeros((8, geom.n_cols), np.float32), geom, 0.0, 0, 8, 0, 8)
    with pytest.raises(ValueError):
        filter_rows(projections[0, :9], geom, geom.n_angles, 0)


def test_map_band_reduces_to_the_whole_volume_with_uneven_angles():
    rng = np.random.default_rng(9)
    geom = ConeBeamGeometry(60.0, 90.0, 20, 24, 1.4, 1.2, np.sort(rng.uniform(0, 2 * np.pi, 9)),
                            12, 1.0)
    projections = rng.uniform(0, 1, (geom.n_angles, geom.n_rows, geom.n_cols))
    whole = backproject_numba(filter_projections(projections, geom, "cosine"), geom)
    volume = np.zeros_like(whole, dtype=np.float64)
    for index in range(geom.n_angles):
        for v0, v1 in split_range(geom.n_rows, 6):
            first, stop = band_rows(v0, v1, geom.n_rows)
            for z0, z1, partial in map_band(projections[index, first:stop], geom, index, v0, v1,
                                            5, "cosine"):
                volume[z0:z1] += partial
    assert np.sqrt(np.mean((volume - whole) ** 2) / np.mean(whole**2)) <= 1e-6
