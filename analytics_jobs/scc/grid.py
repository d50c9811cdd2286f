"""Sampling grids on S^2 and SO(3) (SOFT / Driscoll–Healy midpoint grids) and rotation helpers.

Sphere grid for bandwidth B (arrays shaped ``(2B, 2B)`` indexed ``[j, k]``):
    θ_j = π(2j+1)/(4B)  (colatitude from +z),  φ_k = 2πk/(2B)  (azimuth from +x towards +y).

SO(3) grid for bandwidth B (arrays shaped ``(2B, 2B, 2B)`` indexed ``[a, k, c]``):
    α_a = 2πa/(2B),  β_k = π(2k+1)/(4B),  γ_c = 2πc/(2B).

Rotations are active, ZYZ: R(α, β, γ) = Rz(α) · Ry(β) · Rz(γ) (scipy ``"ZYZ"``, intrinsic).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

#: how many β rows either side of the continuous β index are searched for the nearest grid pose
_BETA_SEARCH_ROWS = 3


def sphere_grid(bandwidth: int) -> tuple[np.ndarray, np.ndarray]:
    """Colatitudes θ_j and azimuths φ_k of the 2B × 2B sphere grid."""
    n = 2 * bandwidth
    theta = np.pi * (2 * np.arange(n) + 1) / (4 * bandwidth)
    phi = 2 * np.pi * np.arange(n) / n
    return theta, phi


def sphere_directions(bandwidth: int) -> np.ndarray:
    """Unit vectors of the sphere grid, shape ``(2B, 2B, 3)``."""
    theta, phi = sphere_grid(bandwidth)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)


def so3_angles(bandwidth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The α, β, γ sample values of the SOFT SO(3) grid (each of length 2B)."""
    n = 2 * bandwidth
    alpha = 2 * np.pi * np.arange(n) / n
    beta = np.pi * (2 * np.arange(n) + 1) / (4 * bandwidth)
    return alpha, beta, alpha.copy()


def euler_to_matrix(alpha: float, beta: float, gamma: float) -> np.ndarray:
    """Rotation matrix Rz(α) Ry(β) Rz(γ)."""
    return Rotation.from_euler("ZYZ", [alpha, beta, gamma]).as_matrix()


def matrix_to_euler(rotation: np.ndarray) -> tuple[float, float, float]:
    """ZYZ Euler angles (α, β, γ) with α, γ ∈ [0, 2π) and β ∈ [0, π]."""
    alpha, beta, gamma = Rotation.from_matrix(rotation).as_euler("ZYZ")
    return float(alpha % (2 * np.pi)), float(beta), float(gamma % (2 * np.pi))


def rotation_angle(r1: np.ndarray, r2: np.ndarray) -> float:
    """Geodesic distance (radians) between two rotation matrices."""
    cos = (np.trace(r1.T @ r2) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def _rz(angles: np.ndarray) -> np.ndarray:
    c, s = np.cos(angles), np.sin(angles)
    out = np.zeros(angles.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1] = c, -s, s, c
    out[..., 2, 2] = 1.0
    return out


def _ry(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def nearest_grid_index(rotation: np.ndarray, bandwidth: int) -> tuple[int, int, int]:
    """Index (a, k, c) of the SO(3) grid pose geodesically nearest ``rotation``.

    Near β = 0 or π the nearest pose is not the per-angle rounding (only α ± γ matters
    there), so the search scores every (α, γ) pair in the few β rows around the true β:
    the angle between grid pose and truth is at least |β_k − β|, so rows further away
    cannot win.
    """
    _, beta, gamma = matrix_to_euler(rotation)
    alpha_grid, beta_grid, gamma_grid = so3_angles(bandwidth)
    k0 = int(round(beta * 2 * bandwidth / np.pi - 0.5))
    rows = range(max(0, k0 - _BETA_SEARCH_ROWS), min(2 * bandwidth, k0 + _BETA_SEARCH_ROWS + 1))
    rz_alpha, rz_gamma = _rz(alpha_grid), _rz(gamma_grid)
    best = (-np.inf, (0, 0, 0))
    for k in rows:
        left = rotation.T @ rz_alpha @ _ry(beta_grid[k])  # (2B, 3, 3)
        trace = np.einsum("ail,cli->ac", left, rz_gamma)  # tr(Rᵀ R(α_a, β_k, γ_c))
        a, c = np.unravel_index(int(np.argmax(trace)), trace.shape)
        if trace[a, c] > best[0]:
            best = (float(trace[a, c]), (int(a), k, int(c)))
    return best[1]


def grid_step(bandwidth: int) -> float:
    """One grid step (radians): the α and γ spacing π/B of the SO(3) grid (β's is half of it).

    A single step along α or γ moves a pose by exactly this geodesic angle, so every rotation
    has its nearest grid pose well within it (at most about 0.75 of it, at β = π/2).
    """
    return np.pi / bandwidth


def poses_within(rotation: np.ndarray, bandwidth: int, radius: float) -> dict[int, np.ndarray]:
    """Grid poses within geodesic distance ``radius`` of ``rotation``: {β row k: mask over (a, c)}.

    Only rows with |β_k − β| ≤ radius can hold such poses (the geodesic distance is at least the
    angle between the rotated z axes, which is at least the difference of their β), and within
    a row the (2B)² distances come from one einsum, as in ``nearest_grid_index``. The nearest
    grid pose is always included, so the answer is never empty.
    """
    _, beta, _ = matrix_to_euler(rotation)
    alpha_grid, beta_grid, gamma_grid = so3_angles(bandwidth)
    rz_alpha, rz_gamma = _rz(alpha_grid), _rz(gamma_grid)
    min_trace = 1.0 + 2.0 * np.cos(min(radius, np.pi))  # angle ≤ radius ⇔ trace ≥ 1 + 2 cos(radius)
    found: dict[int, np.ndarray] = {}
    for k in np.nonzero(np.abs(beta_grid - beta) <= radius + 1e-12)[0]:
        left = rotation.T @ rz_alpha @ _ry(beta_grid[k])
        mask = np.einsum("ail,cli->ac", left, rz_gamma) >= min_trace - 1e-12
        if mask.any():
            found[int(k)] = mask
    a, k, c = nearest_grid_index(rotation, bandwidth)
    found.setdefault(k, np.zeros((2 * bandwidth, 2 * bandwidth), dtype=bool))[a, c] = True
    return found


def grid_pose(index: tuple[int, int, int], bandwidth: int) -> tuple[float, float, float]:
    """Euler angles (α, β, γ) of a grid index (a, k, c)."""
    alpha, beta, gamma = so3_angles(bandwidth)
    a, k, c = index
    return float(alpha[a]), float(beta[k]), float(gamma[c])
