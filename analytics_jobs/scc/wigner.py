"""Wigner small-d functions d^l_mn(β) by the Kostelec–Rockmore three-term recurrence in l.

Convention: d^l_mn(β) = <l m| exp(−iβ J_y) |l n> (so d^{1/2}_{1/2,−1/2} = −sin(β/2) and
d^1_00 = cos β). For a column (fixed n ≥ 0) the recurrence starts at l₀ = max(|m|, n) from the
closed forms
    d^l_{m,l}  = √C(2l, l+m) c^{l+m} s^{l−m},
    d^l_{l,n}  = (−1)^{l−n} √C(2l, l+n) c^{l+n} s^{l−n},
    d^l_{−l,n} = √C(2l, l−n) c^{l−n} s^{l+n},          c = cos(β/2), s = sin(β/2),
evaluated in log space (no overflow; values that underflow are genuinely negligible), then
    d^{l}_{mn} = l(2l−1) / (√(l²−m²) √(l²−n²)) · (cos β − mn / (l(l−1))) · d^{l−1}_{mn}
               − l √((l−1)²−m²) √((l−1)²−n²) / ((l−1) √(l²−m²) √(l²−n²)) · d^{l−2}_{mn}.
Only one β is handled at a time and only two previous columns are kept: O(B) working memory
per column, never a table growing like B^4.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def recurrence_tables(bandwidth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables shared by every β, indexed [l, m + B − 1] with signed m: √(l²−m²), its reciprocal
    (0 where |m| ≥ l) and log k! for k ≤ 2B + 1."""
    l = np.arange(bandwidth + 1, dtype=np.float64)
    m = np.arange(-(bandwidth - 1), bandwidth, dtype=np.float64)
    diff = l[:, None] ** 2 - m[None, :] ** 2
    root = np.sqrt(np.clip(diff, 0.0, None))
    inv_root = np.divide(1.0, root, out=np.zeros_like(root), where=root > 0)
    log_factorial = np.array([math.lgamma(k + 1.0) for k in range(2 * bandwidth + 2)])
    return root, inv_root, log_factorial


@njit(cache=True)
def _power_log(exponent: int, log_base: float) -> float:
    return 0.0 if exponent == 0 else exponent * log_base


@njit(cache=True)
def seed_value(l: int, m: int, n: int, log_cos: float, log_sin: float, log_factorial: np.ndarray) -> float:
    """d^l_mn at l = max(|m|, n) for n ≥ 0 (closed forms in the module docstring)."""
    sign = 1.0
    if n >= abs(m):
        up, down, x = l + m, l - m, l + m
    elif m > 0:
        up, down, x = l + n, l - n, l + n
        if (l - n) % 2 == 1:
            sign = -1.0
    else:
        up, down, x = l - n, l + n, l - n
    log_value = 0.5 * (log_factorial[2 * l] - log_factorial[x] - log_factorial[2 * l - x])
    log_value += _power_log(up, log_cos) + _power_log(down, log_sin)
    return sign * math.exp(log_value)


@njit(cache=True, fastmath=True, error_model="numpy")
def column_step(l, n, cos_beta, log_cos, log_sin, root, inv_root, log_factorial, d_prev2, d_prev, d_new):
    """Fill d_new[m + centre] = d^l_mn(β) for |m| ≤ l from the two previous degrees (n ≥ 0, l ≥ n)."""
    centre = (d_new.shape[0] - 1) // 2
    if l == n:
        for m in range(-l, l + 1):
            d_new[centre + m] = seed_value(l, m, n, log_cos, log_sin, log_factorial)
        return
    if l == 1:  # only m = n = 0 reaches here: d^1_00 = cos β · d^0_00
        d_new[centre] = cos_beta * d_prev[centre]
    else:
        lm1 = l - 1
        inv_n = inv_root[l, centre + n]
        first = l * (2 * l - 1) * inv_n
        mixed = n / (l * lm1)
        second = l / lm1 * root[lm1, centre + n] * inv_n
        inv_row, root_row = inv_root[l], root[lm1]
        for i in range(centre - lm1, centre + lm1 + 1):
            m = i - centre
            d_new[i] = inv_row[i] * (first * (cos_beta - m * mixed) * d_prev[i] - second * root_row[i] * d_prev2[i])
    d_new[centre + l] = seed_value(l, l, n, log_cos, log_sin, log_factorial)
    d_new[centre - l] = seed_value(l, -l, n, log_cos, log_sin, log_factorial)


@njit(cache=True)
def wigner_d_matrix(l_target: int, beta: float) -> np.ndarray:
    """The full (2l+1) × (2l+1) matrix d^l_mn(β), indexed [m + l, n + l], via the recurrence.

    Columns n < 0 come from the symmetry d^l_{m,−n} = (−1)^{m+n} d^l_{−m,n}. Meant for tests
    and diagnostics; the correlation kernel runs the same ``column_step`` inline.
    """
    bandwidth = l_target + 1
    centre = bandwidth - 1
    root = np.zeros((bandwidth + 1, 2 * bandwidth - 1))
    inv_root = np.zeros((bandwidth + 1, 2 * bandwidth - 1))
    for i in range(bandwidth + 1):
        for m in range(-i + 1, i):
            if abs(m) < bandwidth:
                root[i, centre + m] = math.sqrt(i * i - m * m)
                inv_root[i, centre + m] = 1.0 / root[i, centre + m]
    log_factorial = np.zeros(2 * bandwidth + 2)
    for k in range(2 * bandwidth + 2):
        log_factorial[k] = math.lgamma(k + 1.0)
    cos_beta, log_cos, log_sin = math.cos(beta), math.log(math.cos(beta / 2)), math.log(math.sin(beta / 2))
    width = 2 * l_target + 1
    out = np.zeros((width, width))
    for n in range(l_target + 1):
        d_prev2, d_prev, d_new = np.zeros(width), np.zeros(width), np.zeros(width)
        for l in range(n, l_target + 1):
            column_step(l, n, cos_beta, log_cos, log_sin, root, inv_root, log_factorial, d_prev2, d_prev, d_new)
            d_prev2, d_prev, d_new = d_prev, d_new, d_prev2
        out[:, l_target + n] = d_prev
        for m in range(-l_target, l_target + 1):
            sign = 1.0 if (m + n) % 2 == 0 else -1.0
            out[l_target - m, l_target - n] = sign * d_prev[l_target + m]
    return out
