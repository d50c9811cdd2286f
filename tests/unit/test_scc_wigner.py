"""Wigner-d recurrence: agrees with Wigner's closed-form sum and stays orthogonal at l = 255."""

import math

import numpy as np
import pytest

from analytics_jobs.scc.wigner import wigner_d_matrix


def wigner_closed_form(l: int, m: int, n: int, beta: float) -> float:
    """Wigner's explicit sum for d^l_mn(β) with exact integer factorials."""
    total = 0.0
    for s in range(0, 2 * l + 1):
        if l + n - s < 0 or s + m - n < 0 or l - s - m < 0:
            continue
        num = (-1) ** (m - n + s) * math.cos(beta / 2) ** (2 * l + n - m - 2 * s) * math.sin(beta / 2) ** (m - n + 2 * s)
        den = math.factorial(l + n - s) * math.factorial(s) * math.factorial(m - n + s) * math.factorial(l - s - m)
        total += num / den
    norm = math.factorial(l + m) * math.factorial(l - m) * math.factorial(l + n) * math.factorial(l - n)
    return math.sqrt(norm) * total


@pytest.mark.parametrize("l", range(0, 8))
def test_recurrence_matches_closed_form(l):
    rng = np.random.default_rng(l)
    for beta in rng.uniform(0.01, np.pi - 0.01, size=3):
        d = wigner_d_matrix(l, beta)
        expected = np.array(
            [[wigner_closed_form(l, m, n, beta) for n in range(-l, l + 1)] for m in range(-l, l + 1)]
        )
        np.testing.assert_allclose(d, expected, atol=1e-13)


def test_known_low_order_values():
    beta = 0.7
    d1 = wigner_d_matrix(1, beta)
    assert d1[1, 1] == pytest.approx(np.cos(beta))
    assert d1[2, 1] == pytest.approx(-np.sin(beta) / np.sqrt(2))  # d^1_{1,0}
    assert d1[2, 2] == pytest.approx((1 + np.cos(beta)) / 2)


@pytest.mark.parametrize("beta", [np.pi / 1024, 0.3, np.pi / 2, 2.9, np.pi - np.pi / 1024])
def test_orthogonal_at_degree_255(beta):
    d = wigner_d_matrix(255, beta)
    assert d.shape == (511, 511)
    assert np.abs(d @ d.T - np.eye(511)).max() < 1e-10
