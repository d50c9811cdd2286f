"""Forward spherical harmonic transform on the 2B × 2B midpoint (SOFT/Driscoll–Healy) grid.

Coefficients use orthonormal complex harmonics with the Condon–Shortley phase,
Y_lm(θ, φ) = P̄_lm(cos θ) e^{imφ},  f_lm = ∫ f conj(Y_lm) dΩ,
stored as an array ``coeffs[l, m + B - 1]`` of shape ``(B, 2B - 1)`` (zero where |m| > l).

Two back-ends give the same numbers: ``forward_sht`` (pure NumPy: FFT over φ, Fejér's first
quadrature rule in θ, associated Legendre functions by the stable three-term recurrence in l,
O(B^3) time and O(B^2) memory) and ``forward_sht_ducc`` (ducc0's ``analysis_2d`` with the
"F1" geometry, which is this very grid).
"""

from __future__ import annotations

import os

import numpy as np


def fejer_weights(n: int) -> np.ndarray:
    """Fejér's first rule on θ_j = π(2j+1)/(2n): Σ w_j p(cos θ_j) = ∫_{-1}^{1} p(x) dx, exact to degree n−1."""
    theta = np.pi * (2 * np.arange(n) + 1) / (2 * n)
    k = np.arange(1, n // 2 + 1)
    series = (np.cos(2 * np.outer(theta, k)) / (4 * k**2 - 1)).sum(axis=1)
    return 2.0 / n * (1.0 - 2.0 * series)


def _check_grid(samples: np.ndarray, bandwidth: int) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float64)
    if samples.shape != (2 * bandwidth, 2 * bandwidth):
        raise ValueError(f"expected a {2 * bandwidth}x{2 * bandwidth} grid, got {samples.shape}")
    return samples


def _fill_negative_m(positive: np.ndarray, bandwidth: int) -> np.ndarray:
    """Full (B, 2B-1) layout from m ≥ 0 coefficients of a real function: f_{l,-m} = (-1)^m conj(f_lm)."""
    centre = bandwidth - 1
    coeffs = np.zeros((bandwidth, 2 * bandwidth - 1), dtype=np.complex128)
    coeffs[:, centre:] = positive
    m = np.arange(1, bandwidth)
    coeffs[:, centre - m] = ((-1.0) ** m) * np.conj(positive[:, m])
    return coeffs


def forward_sht(samples: np.ndarray, bandwidth: int) -> np.ndarray:
    """Spherical harmonic coefficients (l < B) of a real function sampled on the 2B × 2B grid."""
    samples = _check_grid(samples, bandwidth)
    n = 2 * bandwidth
    theta = np.pi * (2 * np.arange(n) + 1) / (2 * n)
    x, s = np.cos(theta), np.sin(theta)
    # φ integral for every ring and m ≥ 0, folded together with the θ quadrature weight
    ring = np.fft.rfft(samples, axis=1)[:, :bandwidth] * (2 * np.pi / n) * fejer_weights(n)[:, None]

    m_all = np.arange(bandwidth)
    p_mm = np.empty((bandwidth, n))  # P̄_mm(cos θ) seeds, may underflow harmlessly near the poles
    p_mm[0] = np.sqrt(1.0 / (4 * np.pi))
    for m in range(1, bandwidth):
        p_mm[m] = -np.sqrt((2 * m + 1) / (2 * m)) * s * p_mm[m - 1]

    positive = np.zeros((bandwidth, bandwidth), dtype=np.complex128)
    p_prev2 = np.zeros((bandwidth, n))
    p_prev = np.zeros((bandwidth, n))
    for l in range(bandwidth):
        m = m_all[:l]
        a = np.sqrt((4.0 * l * l - 1) / (l * l - m * m))
        b = np.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1) ** 2 - 1)) if l > 1 else np.zeros(l)
        p_l = np.empty((l + 1, n))
        p_l[:l] = a[:, None] * (x * p_prev[:l] - b[:, None] * p_prev2[:l])
        p_l[l] = p_mm[l]
        positive[l, : l + 1] = np.einsum("mj,jm->m", p_l, ring[:, : l + 1])
        p_prev2[: l + 1], p_prev[: l + 1] = p_prev[: l + 1], p_l
    return _fill_negative_m(positive, bandwidth)


def ducc_available() -> bool:
    """True when the optional ducc0 package can be imported."""
    try:
        import ducc0  # noqa: F401
    except ImportError:
        return False
    return True


def forward_sht_ducc(samples: np.ndarray, bandwidth: int, nthreads: int | None = None) -> np.ndarray:
    """Same transform as ``forward_sht`` computed by ducc0 (geometry "F1" is the midpoint grid)."""
    from ducc0.sht.experimental import analysis_2d

    samples = _check_grid(samples, bandwidth)
    lmax = bandwidth - 1
    alm = analysis_2d(
        map=samples[None], spin=0, lmax=lmax, geometry="F1", nthreads=nthreads or os.cpu_count() or 1
    )[0]
    positive = np.zeros((bandwidth, bandwidth), dtype=np.complex128)
    for m in range(bandwidth):  # healpy order: index(l, m) = m (2 lmax + 1 − m) / 2 + l
        start = m * (2 * lmax + 1 - m) // 2
        positive[m:, m] = alm[start + m : start + bandwidth]
    return _fill_negative_m(positive, bandwidth)


#: forward SHT back-ends by name, so callers choose by configuration
SHT_BACKENDS = {"numpy": forward_sht, "ducc0": forward_sht_ducc}


def default_sht_backend() -> str:
    """ducc0 when installed (≈ 4–20× faster here, see benchmarks/scc/RESULTS.md), else NumPy."""
    return "ducc0" if ducc_available() else "numpy"
