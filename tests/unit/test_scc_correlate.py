"""SO(3) correlation: rotation recovery, autocorrelation peak, agreement with direct quadrature."""

import numpy as np
import pytest

from analytics_jobs.scc.bandlimited import evaluate_harmonics, random_real_coefficients
from analytics_jobs.scc.correlate import correlate_so3, correlation_slices
from analytics_jobs.scc.grid import (
    euler_to_matrix,
    grid_pose,
    nearest_grid_index,
    rotation_angle,
    so3_angles,
    sphere_directions,
)
from analytics_jobs.scc.sht import forward_sht


def rotated_samples(coeffs: np.ndarray, rotation: np.ndarray, bandwidth: int) -> np.ndarray:
    """Samples of f(R⁻¹x) on the grid, evaluating f directly at the rotated directions."""
    directions = sphere_directions(bandwidth)
    return evaluate_harmonics(coeffs, directions @ rotation)  # rows xᵀR = (Rᵀx)ᵀ = (R⁻¹x)ᵀ


def argmax_index(block: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(i) for i in np.unravel_index(np.argmax(block), block.shape))


# (α, β, γ): generic poses, and poses within a grid step of β = 0 and β = π
ROTATIONS = [
    (1.0, 0.7, 2.0),
    (4.0, 2.2, 0.3),
    (0.5, 0.02, 3.5),
    (2.5, np.pi - 0.03, 5.5),
    (5.9, 1.5708, 1.1),
]


@pytest.mark.parametrize("angles", ROTATIONS)
def test_rotation_is_recovered_at_nearest_grid_pose(angles):
    bandwidth = 16
    coeffs = random_real_coefficients(bandwidth, seed=7)
    rotation = euler_to_matrix(*angles)
    f = forward_sht(rotated_samples(coeffs, rotation, bandwidth), bandwidth)
    g = forward_sht(evaluate_harmonics(coeffs, sphere_directions(bandwidth)), bandwidth)
    found = argmax_index(correlate_so3(f, g, bandwidth))
    nearest = nearest_grid_index(rotation, bandwidth)
    found_error = rotation_angle(rotation, euler_to_matrix(*grid_pose(found, bandwidth)))
    nearest_error = rotation_angle(rotation, euler_to_matrix(*grid_pose(nearest, bandwidth)))
    # near the poles several grid poses are (almost) equally near; the peak must be one of them
    assert found == nearest or found_error <= nearest_error + 1e-9
    assert found_error < np.pi / bandwidth


def test_autocorrelation_peaks_at_identity():
    bandwidth = 8
    coeffs = forward_sht(evaluate_harmonics(random_real_coefficients(bandwidth, 2), sphere_directions(bandwidth)), bandwidth)
    block = correlate_so3(coeffs, coeffs, bandwidth)
    best = grid_pose(argmax_index(block), bandwidth)
    # the identity is not on the grid (β_0 = π/4B); the closest grid poses are β_0 away
    assert rotation_angle(np.eye(3), euler_to_matrix(*best)) == pytest.approx(np.pi / (4 * bandwidth))
    assert block.max() <= np.sum(np.abs(coeffs) ** 2) + 1e-9  # Cauchy–Schwarz bound ‖f‖²


@pytest.mark.parametrize("bandwidth", [8, 16])
def test_matches_direct_quadrature(bandwidth):
    f_coeffs = random_real_coefficients(bandwidth, seed=11)
    g_coeffs = random_real_coefficients(bandwidth, seed=12)
    f = forward_sht(evaluate_harmonics(f_coeffs, sphere_directions(bandwidth)), bandwidth)
    g = forward_sht(evaluate_harmonics(g_coeffs, sphere_directions(bandwidth)), bandwidth)
    block = correlate_so3(f, g, bandwidth)
    # Gauss–Legendre × uniform grid, exact for the product (degree ≤ 2B − 2)
    nodes, weights = np.polynomial.legendre.leggauss(2 * bandwidth)
    phi = 2 * np.pi * np.arange(4 * bandwidth) / (4 * bandwidth)
    theta = np.arccos(nodes)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    x = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)
    area = weights[:, None] * (2 * np.pi / phi.size)
    f_vals = evaluate_harmonics(f_coeffs, x)
    rng = np.random.default_rng(bandwidth)
    alpha, beta, gamma = so3_angles(bandwidth)
    for _ in range(4):
        a, k, c = (int(i) for i in rng.integers(0, 2 * bandwidth, 3))
        rotation = euler_to_matrix(alpha[a], beta[k], gamma[c])
        direct = np.sum(area * f_vals * evaluate_harmonics(g_coeffs, x @ rotation))
        assert block[a, k, c] == pytest.approx(direct, rel=1e-9, abs=1e-9)


def test_streamed_slices_cover_every_beta_once_and_match_block():
    bandwidth = 8
    rng = np.random.default_rng(5)
    f = forward_sht(rng.normal(size=(16, 16)), bandwidth)
    g = forward_sht(rng.normal(size=(16, 16)), bandwidth)
    block = correlate_so3(f, g, bandwidth)
    seen = dict(correlation_slices(f, g, bandwidth, chunk=3))
    assert sorted(seen) == list(range(16))
    for k, piece in seen.items():
        np.testing.assert_allclose(piece, block[:, k, :])


def test_lower_output_bandwidth_truncates_degrees():
    b_in, b_out = 16, 8
    coeffs = random_real_coefficients(b_in, seed=4)
    high = correlate_so3(coeffs, coeffs, b_out)
    low = correlate_so3(coeffs[:b_out, b_in - b_out : b_in + b_out - 1], coeffs[:b_out, b_in - b_out : b_in + b_out - 1], b_out)
    np.testing.assert_allclose(high, low)
    with pytest.raises(ValueError):
        correlate_so3(coeffs[:4, 12:19], coeffs[:4, 12:19], 8)
