"""Ramp filter scaling, windows and per-row independence."""

import numpy as np
import pytest

from recon_mapreduce import backends, phantom
from recon_mapreduce.filters import (FILTER_NAMES, cosine_weights, filter_projection_rows,
                                     padded_length, ramp_response)
from recon_mapreduce.geometry import ConeBeamGeometry


@pytest.fixture(scope="module")
def geom():
    return ConeBeamGeometry.for_volume(24, 48, detector_shape=(32, 36))


def test_ram_lak_response_is_the_ramp_in_cycles_per_mm():
    n_pad, tau = 256, 0.7
    response = ramp_response(n_pad, tau, "ram-lak")
    ramp = np.abs(np.fft.fftfreq(n_pad, d=tau))
    band = slice(4, n_pad // 2 - 4)
    assert np.allclose(response[band], ramp[band], rtol=0.02, atol=0.01 * ramp.max())
    # spatial-domain ramp: small positive DC instead of the zero of a sampled |f|
    assert 0 < response[0] < response[1]


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_windows_stay_below_the_ramp_and_vanish_only_where_expected(name):
    ramp = ramp_response(128, 1.0, "ram-lak")
    response = ramp_response(128, 1.0, name)
    assert np.all(response <= ramp + 1e-12)
    assert response[1] == pytest.approx(ramp[1], rel=0.01)  # low frequencies pass


def test_unknown_filter_name_is_rejected():
    with pytest.raises(ValueError, match="unknown filter"):
        ramp_response(64, 1.0, "butterworth")


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_each_filter_reconstructs_the_phantom_level(geom, name):
    ellipsoids = phantom.shepp_logan_ellipsoids(geom)
    volume = backends.reconstruct(phantom.project(ellipsoids, geom), geom, name, "numba")
    truth = phantom.voxelise(ellipsoids, geom)
    n = geom.n_voxels
    core = (slice(n // 2 - 2, n // 2 + 2),) * 3
    assert np.mean(volume[core]) == pytest.approx(np.mean(truth[core]), rel=0.1)


def test_smoother_windows_pass_less_noise(geom):
    noise = np.random.default_rng(3).standard_normal((geom.n_angles, geom.n_rows, geom.n_cols))
    spread = {name: backends.reconstruct(noise, geom, name, "numba").std()
              for name in ("ram-lak", "shepp-logan", "hann")}
    assert spread["ram-lak"] > spread["shepp-logan"] > spread["hann"]


def test_rows_are_filtered_independently(geom):
    rows = np.random.default_rng(4).standard_normal((geom.n_rows, geom.n_cols))
    whole = filter_projection_rows(rows, geom, 0, "hann")
    band = filter_projection_rows(rows[10:17], geom, 10, "hann")
    assert np.allclose(band, whole[10:17], atol=1e-6)
    wrong_offset = filter_projection_rows(rows[10:17], geom, 0, "hann")
    assert not np.allclose(wrong_offset, whole[10:17], atol=1e-6)  # cosine weight uses the row


def test_cosine_weight_is_one_on_the_central_ray_and_falls_off(geom):
    weights = cosine_weights(ConeBeamGeometry(100, 150, 3, 3, 10, 10, np.zeros(1), 4, 1.0),
                             np.arange(3))
    assert weights[1, 1] == pytest.approx(1.0)
    assert weights[0, 0] == pytest.approx(150 / np.sqrt(150**2 + 200))
    assert padded_length(geom.n_cols) >= 2 * geom.n_cols
