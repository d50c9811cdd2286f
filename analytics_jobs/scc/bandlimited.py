"""Random band-limited test functions on the sphere, evaluated independently of the kernel.

Used to check the SHT and the correlation: values come from scipy's ``sph_harm_y``, not from
this package's own Legendre or Wigner recurrences.
"""

import numpy as np
from scipy.special import sph_harm_y


def random_real_coefficients(bandwidth: int, seed: int) -> np.ndarray:
    """Random f_lm (l < B) of a real function, layout [l, m + B − 1]."""
    rng = np.random.default_rng(seed)
    coeffs = np.zeros((bandwidth, 2 * bandwidth - 1), dtype=np.complex128)
    centre = bandwidth - 1
    for l in range(bandwidth):
        coeffs[l, centre] = rng.normal()
        for m in range(1, l + 1):
            value = rng.normal() + 1j * rng.normal()
            coeffs[l, centre + m] = value
            coeffs[l, centre - m] = (-1) ** m * np.conj(value)
    return coeffs


def evaluate_harmonics(coeffs: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Σ f_lm Y_lm at unit vectors (..., 3), using scipy's sph_harm_y (independent of the kernel)."""
    bandwidth = coeffs.shape[0]
    theta = np.arccos(np.clip(directions[..., 2], -1.0, 1.0))
    phi = np.arctan2(directions[..., 1], directions[..., 0])
    total = np.zeros(directions.shape[:-1], dtype=np.complex128)
    for l in range(bandwidth):
        for m in range(-l, l + 1):
            total += coeffs[l, bandwidth - 1 + m] * sph_harm_y(l, m, theta, phi)
    return total.real
