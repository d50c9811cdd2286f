"""The eight-voxel window step (AVX2 shuffles) against exact interpolation and its scalar twin."""

import numpy as np
import pytest
from numba import njit

from recon_mapreduce import lerp_window
from recon_mapreduce.fdk_fast import WINDOW, backproject_owned, pad_transposed
from recon_mapreduce.fdk_reference import backproject_reference
from recon_mapreduce.geometry import ConeBeamGeometry


@njit(cache=False)
def _avx2_step(out, k, left, right, base, wl, wr, frac, dr):
    lerp_window.add_window8(out, k, left, right, base, wl, wr, frac, dr)


def _exact(left, right, base, wl, wr, frac, dr):
    column = wl * left.astype(np.float64) + wr * right.astype(np.float64)
    rows = base + frac + dr * np.arange(lerp_window.LANES)
    return np.interp(rows, np.arange(column.size), column)


STEPS = [(base, frac, dr) for base in (0, 5, 23) for frac in (0.0, 0.37, 0.999)
         for dr in (0.3, 1.0, 1.5, 1.98)]


@pytest.mark.parametrize("base, frac, dr", STEPS)
def test_scalar_step_is_linear_interpolation(base, frac, dr):
    rng = np.random.default_rng(base)
    left, right = rng.standard_normal((2, 48), dtype=np.float32)
    out = np.full(12, 0.5, dtype=np.float32)
    lerp_window.add_window8_scalar(out, 2, left, right, base, np.float32(0.7), np.float32(0.3),
                                   np.float32(frac), np.float32(dr))
    expected = 0.5 + _exact(left, right, base, np.float32(0.7), np.float32(0.3), frac, dr)
    np.testing.assert_allclose(out[2:10], expected, rtol=0, atol=2e-5)
    assert (out[:2] == 0.5).all() and (out[10:] == 0.5).all()  # only its eight voxels


@pytest.mark.skipif(not lerp_window.HAS_AVX2, reason="the AVX2 window needs an x86 CPU with AVX2")
@pytest.mark.parametrize("base, frac, dr", STEPS)
def test_avx2_step_equals_the_scalar_twin(base, frac, dr):
    rng = np.random.default_rng(base + 1)
    left, right = rng.standard_normal((2, 48), dtype=np.float32)
    out_vector = rng.standard_normal(12, dtype=np.float32)
    out_scalar = out_vector.copy()
    args = (left, right, base, np.float32(0.6), np.float32(0.4), np.float32(frac), np.float32(dr))
    _avx2_step(out_vector, 3, *args)
    lerp_window.add_window8_scalar(out_scalar, 3, *args)
    np.testing.assert_allclose(out_vector, out_scalar, rtol=0, atol=1e-5)  # FMA rounding


def _window_geometry():
    """Row step ~1.4 rows per voxel: every column takes the window path."""
    rng = np.random.default_rng(11)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 20))
    return ConeBeamGeometry(90.0, 140.0, 40, 34, 1.3, 1.1, angles, 24, 1.0,
                            offset_u=0.6, offset_v=-1.3)


def test_window_path_agrees_with_the_reference():
    geom = _window_geometry()
    assert geom.voxel_size * geom.dsd / (geom.dso - 24) / geom.dv < lerp_window.MAX_DR
    filtered = np.random.default_rng(3).standard_normal(
        (geom.n_angles, geom.n_rows, geom.n_cols)).astype(np.float32)
    reference = backproject_reference(filtered, geom)
    volume = np.zeros((geom.n_voxels,) * 3, dtype=np.float32)
    backproject_owned(volume, pad_transposed(filtered, 1, 1), geom, geom.angles,
                      geom.angle_weights(), row_base=-1, own_lo=-1, own_hi=geom.n_rows, z0=0)
    assert np.sqrt(np.mean((volume - reference) ** 2) / np.mean(reference**2)) <= 1e-5


def test_an_array_without_window_rows_takes_the_scalar_loop_and_gives_the_same_volume():
    geom = _window_geometry()
    filtered = np.random.default_rng(4).standard_normal(
        (geom.n_angles, geom.n_rows, geom.n_cols)).astype(np.float32)
    padded = pad_transposed(filtered, 1, 1)
    volumes = []
    for array in (padded, np.ascontiguousarray(padded[..., :-WINDOW])):
        volume = np.zeros((geom.n_voxels,) * 3, dtype=np.float32)
        backproject_owned(volume, array, geom, geom.angles, geom.angle_weights(), row_base=-1,
                          own_lo=-1, own_hi=geom.n_rows, z0=0)
        volumes.append(volume)
    np.testing.assert_allclose(volumes[0], volumes[1], rtol=0,
                               atol=1e-5 * float(np.abs(volumes[1]).max()))
