"""SO(3) cross-correlation of two real functions on the sphere (inverse SO(3) FFT, separation of variables).

For coefficients f_lm, g_ln (see ``sht``) the correlation
    C(R) = ∫ f(x) g(R⁻¹x) dΩ = Σ_l Σ_m Σ_n f_lm conj(g_ln) d^l_mn(β) e^{+i(mα + nγ)}
is evaluated on the SOFT grid of output bandwidth B_out (l < B_out; the '+' signs follow from
D^l_mn(R) = e^{−imα} d^l_mn(β) e^{−inγ} and (Λ(R)Y_ln)(x) = Y_ln(R⁻¹x) = Σ_m D^l_mn(R) Y_lm(x)).
C is large where the rotated photo g matches the panorama f.

Per β: S_mn(β) = Σ_l f_lm conj(g_ln) d^l_mn(β), then one 2-D inverse real FFT over (m, n) gives
the (α, γ) slice. Two symmetries halve the work: real f, g make S Hermitian (S_{−m,−n} =
conj S_mn, so only n ≥ 0 is computed), and d^l_mn(π−β) = (−1)^{n+l} d^l_{−m,n}(β) (from the
standard reflection rules) lets each recurrence pass serve β_k and β_{2B−1−k} = π − β_k.
Cost O(B_out^4) flops; memory O(B_out^2) per slice — the full (2B)^3 block is only built on request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numba
import numpy as np
import scipy.fft
from numba import njit, prange

from analytics_jobs.scc.grid import so3_angles
from analytics_jobs.scc.wigner import column_step, recurrence_tables


@njit(cache=True, fastmath=True, error_model="numpy")
def _column_sums(betas, n, f, g, root, inv_root, log_factorial, s_low, s_high):
    """Column n ≥ 0 of S(β) and S(π−β) for every β in ``betas`` (irfft2 layout [p, m mod 2B, n]).

    Row l of h_lm = f_lm conj(g_ln) is formed when degree l is reached and shared by all β (as
    separate real/imaginary vectors, plus an m-reversed copy carrying the (−1)^l of the
    reflection), so the inner loops are plain forward multiply-adds and nothing of size B² is
    written per column: the working set is the per-β recurrence state and accumulators.
    """
    bandwidth = f.shape[0]
    width = 2 * bandwidth - 1
    centre = bandwidth - 1
    n_grid = 2 * bandwidth
    row_re, row_im = np.zeros(width), np.zeros(width)
    rrow_re, rrow_im = np.zeros(width), np.zeros(width)
    n_beta = betas.shape[0]
    cos_beta, log_cos, log_sin = np.cos(betas), np.log(np.cos(betas / 2)), np.log(np.sin(betas / 2))
    # recurrence state and accumulators for all β at once: each h row is read once per l
    d_prev2, d_prev, d_new = np.zeros((n_beta, width)), np.zeros((n_beta, width)), np.zeros((n_beta, width))
    lo_re, lo_im = np.zeros((n_beta, width)), np.zeros((n_beta, width))
    hi_re, hi_im = np.zeros((n_beta, width)), np.zeros((n_beta, width))
    for l in range(n, bandwidth):
        gc = np.conj(g[l, centre + n])
        parity = 1.0 if l % 2 == 0 else -1.0
        for i in range(centre - l, centre + l + 1):
            v = f[l, i] * gc
            w = f[l, 2 * centre - i] * gc * parity
            row_re[i], row_im[i], rrow_re[i], rrow_im[i] = v.real, v.imag, w.real, w.imag
        for p in range(n_beta):
            new = d_new[p]
            column_step(l, n, cos_beta[p], log_cos[p], log_sin[p], root, inv_root, log_factorial,
                        d_prev2[p], d_prev[p], new)
            a_re, a_im, b_re, b_im = lo_re[p], lo_im[p], hi_re[p], hi_im[p]
            for i in range(centre - l, centre + l + 1):
                d = new[i]
                a_re[i] += d * row_re[i]
                a_im[i] += d * row_im[i]
                b_re[i] += d * rrow_re[i]
                b_im[i] += d * rrow_im[i]
        d_prev2, d_prev, d_new = d_prev, d_new, d_prev2
    sign = 1.0 if n % 2 == 0 else -1.0
    for p in range(n_beta):
        for m in range(-centre, centre + 1):
            s_low[p, m % n_grid, n] = complex(lo_re[p, centre + m], lo_im[p, centre + m])
            s_high[p, m % n_grid, n] = sign * complex(hi_re[p, centre - m], hi_im[p, centre - m])


@njit(parallel=True, cache=True)
def _pair_spectra(betas, f, g, root, inv_root, log_factorial, s_low, s_high, threads):
    """All columns n of S(β), S(π−β); columns are dealt round-robin to threads for balance."""
    bandwidth = f.shape[0]
    for t in prange(threads):
        for n in range(t, bandwidth, threads):
            _column_sums(betas, n, f, g, root, inv_root, log_factorial, s_low, s_high)


#: β pairs computed per kernel call (shares h_lm set-up; bounds the spectra buffers)
DEFAULT_CHUNK = 16


def truncate(coeffs: np.ndarray, bandwidth: int) -> np.ndarray:
    """Coefficients with l < bandwidth in the (bandwidth, 2·bandwidth − 1) layout."""
    b_in = coeffs.shape[0]
    if bandwidth > b_in:
        raise ValueError(f"output bandwidth {bandwidth} exceeds input bandwidth {b_in}")
    return np.ascontiguousarray(coeffs[:bandwidth, b_in - bandwidth : b_in + bandwidth - 1])


def pair_order(bandwidth: int) -> list[int]:
    """β_k (k < B) pairs in middle-out order, so both halves of the β axis grow monotonically."""
    return list(range(bandwidth - 1, -1, -1))


def correlation_slices(
    f: np.ndarray,
    g: np.ndarray,
    bandwidth: int,
    pairs: Iterable[int] | None = None,
    chunk: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (k, C[:, k, :]) slices (axes α, γ; float64, 2B × 2B) for β_k and β_{2B−1−k}.

    ``pairs`` lists the k < B to compute (default: all, middle-out); ``chunk`` β pairs are
    evaluated per kernel call; columns n are spread over numba threads.
    """
    f, g = truncate(f, bandwidth), truncate(g, bandwidth)
    root, inv_root, log_factorial = recurrence_tables(bandwidth)
    _, beta, _ = so3_angles(bandwidth)
    n_grid = 2 * bandwidth
    order = list(pair_order(bandwidth) if pairs is None else pairs)
    chunk = chunk or DEFAULT_CHUNK
    for start in range(0, len(order), chunk):
        ks = order[start : start + chunk]
        s_low = np.zeros((len(ks), n_grid, bandwidth + 1), dtype=np.complex128)
        s_high = np.zeros_like(s_low)
        _pair_spectra(beta[ks], f, g, root, inv_root, log_factorial, s_low, s_high, numba.get_num_threads())
        scale = float(n_grid * n_grid)
        low = scipy.fft.irfft2(s_low, s=(n_grid, n_grid), axes=(1, 2), workers=-1) * scale
        high = scipy.fft.irfft2(s_high, s=(n_grid, n_grid), axes=(1, 2), workers=-1) * scale
        for i, k in enumerate(ks):
            yield k, low[i]
            yield n_grid - 1 - k, high[i]


def correlate_so3(f: np.ndarray, g: np.ndarray, bandwidth: int, dtype=np.float64) -> np.ndarray:
    """The whole correlation block C[a, k, c] on the (2B)^3 SOFT grid (axes α, β, γ)."""
    n_grid = 2 * bandwidth
    out = np.empty((n_grid, n_grid, n_grid), dtype=dtype)
    for k, piece in correlation_slices(f, g, bandwidth):
        out[:, k, :] = piece
    return out
