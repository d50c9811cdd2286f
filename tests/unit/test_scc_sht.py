"""Forward SHT on the midpoint grid: exact for band-limited functions, NumPy and ducc0 agree."""

import numpy as np
import pytest

from analytics_jobs.scc.grid import sphere_directions
from analytics_jobs.scc.sht import ducc_available, fejer_weights, forward_sht, forward_sht_ducc
from analytics_jobs.scc.bandlimited import evaluate_harmonics, random_real_coefficients


def test_fejer_weights_integrate_polynomials():
    n = 16
    x = np.cos(np.pi * (2 * np.arange(n) + 1) / (2 * n))
    w = fejer_weights(n)
    for degree in range(n):
        exact = 0.0 if degree % 2 else 2.0 / (degree + 1)
        assert np.dot(w, x**degree) == pytest.approx(exact, abs=1e-13)


@pytest.mark.parametrize("bandwidth", [4, 8])
def test_forward_sht_recovers_coefficients(bandwidth):
    coeffs = random_real_coefficients(bandwidth, seed=bandwidth)
    samples = evaluate_harmonics(coeffs, sphere_directions(bandwidth))
    np.testing.assert_allclose(forward_sht(samples, bandwidth), coeffs, atol=1e-12)


@pytest.mark.skipif(not ducc_available(), reason="ducc0 not installed")
def test_ducc_backend_matches_numpy():
    # both are exact on band-limited input (their quadratures differ only on aliased content)
    coeffs = random_real_coefficients(16, seed=3)
    samples = evaluate_harmonics(coeffs, sphere_directions(16))
    np.testing.assert_allclose(forward_sht_ducc(samples, 16), coeffs, atol=1e-12)
    np.testing.assert_allclose(forward_sht_ducc(samples, 16), forward_sht(samples, 16), atol=1e-12)


def test_rejects_wrong_grid_shape():
    with pytest.raises(ValueError):
        forward_sht(np.zeros((8, 10)), 4)
