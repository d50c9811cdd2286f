"""Analytic ellipsoid phantoms: voxelised volumes and exact cone-beam line integrals.

Because each ellipsoid's chord length along a ray has a closed form, the projections are the
exact ground truth of the voxelised phantom (up to the voxel sampling), so reconstruction error
can be measured without a discrete forward projector in the loop.
"""

from __future__ import annotations

import numpy as np

from recon_mapreduce.geometry import ConeBeamGeometry

# 3D modified Shepp-Logan (Kak & Slaney ellipsoids with Toft's higher-contrast values), in units
# of the half field of view. Columns: value, semi-axes a b c, centre x0 y0 z0, rotation phi
# about +z in degrees. The 10 degree tilt of two ventricles in some tables is dropped.
MODIFIED_SHEPP_LOGAN = np.array([
    # value    a       b      c      x0      y0      z0    phi
    [1.0,   0.6900, 0.920, 0.810,  0.00,  0.0000,  0.00,   0.0],
    [-0.8,  0.6624, 0.874, 0.780,  0.00, -0.0184,  0.00,   0.0],
    [-0.2,  0.1100, 0.310, 0.220,  0.22,  0.0000,  0.00, -18.0],
    [-0.2,  0.1600, 0.410, 0.280, -0.22,  0.0000,  0.00,  18.0],
    [0.1,   0.2100, 0.250, 0.410,  0.00,  0.3500, -0.15,   0.0],
    [0.1,   0.0460, 0.046, 0.050,  0.00,  0.1000,  0.25,   0.0],
    [0.1,   0.0460, 0.046, 0.050,  0.00, -0.1000,  0.25,   0.0],
    [0.1,   0.0460, 0.023, 0.050, -0.08, -0.6050,  0.00,   0.0],
    [0.1,   0.0230, 0.023, 0.020,  0.00, -0.6060,  0.00,   0.0],
    [0.1,   0.0230, 0.046, 0.020,  0.06, -0.6050,  0.00,   0.0],
])


def shepp_logan_ellipsoids(geom: ConeBeamGeometry) -> np.ndarray:
    """Modified Shepp-Logan table scaled to ``geom``'s field of view (lengths in mm)."""
    half_fov = geom.n_voxels * geom.voxel_size / 2
    table = MODIFIED_SHEPP_LOGAN.copy()
    table[:, 1:7] *= half_fov
    return table


def sphere_ellipsoids(centre_mm: tuple[float, float, float], radius_mm: float,
                      value: float = 1.0) -> np.ndarray:
    """One small sphere at ``centre_mm`` = (x, y, z): an off-centre point object."""
    x, y, z = centre_mm
    return np.array([[value, radius_mm, radius_mm, radius_mm, x, y, z, 0.0]])


def _to_ellipsoid_frame(ellipsoid: np.ndarray, vectors: np.ndarray, is_point: bool) -> np.ndarray:
    """Map world points/directions (..., 3) into the frame where the ellipsoid is the unit ball."""
    _, a, b, c, x0, y0, z0, phi = ellipsoid
    cos_p, sin_p = np.cos(np.radians(phi)), np.sin(np.radians(phi))
    shifted = vectors - np.array([x0, y0, z0]) if is_point else vectors
    x, y, z = shifted[..., 0], shifted[..., 1], shifted[..., 2]
    local = np.stack([cos_p * x + sin_p * y, -sin_p * x + cos_p * y, z], axis=-1)
    return local / np.array([a, b, c])


def voxelise(ellipsoids: np.ndarray, geom: ConeBeamGeometry, supersample: int = 1) -> np.ndarray:
    """Sum of ellipsoid indicators times values, averaged over ``supersample**3`` points per voxel.

    Returns a float64 ``(N, N, N)`` volume indexed ``[z, y, x]``.
    """
    n = geom.n_voxels
    offsets = ((np.arange(supersample) + 0.5) / supersample - 0.5) * geom.voxel_size
    coords = geom.voxel_coordinates()
    volume = np.zeros((n, n, n))
    for oz in offsets:
        for oy in offsets:
            for ox in offsets:
                z, y, x = np.meshgrid(coords + oz, coords + oy, coords + ox, indexing="ij")
                points = np.stack([x, y, z], axis=-1)
                for ellipsoid in ellipsoids:
                    local = _to_ellipsoid_frame(ellipsoid, points, is_point=True)
                    volume += ellipsoid[0] * (np.sum(local**2, axis=-1) <= 1.0)
    return volume / supersample**3


def chord_lengths(ellipsoid: np.ndarray, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Length of each ray ``origin + t * direction`` (unit directions) inside the ellipsoid."""
    q = _to_ellipsoid_frame(ellipsoid, origin, is_point=True)
    e = _to_ellipsoid_frame(ellipsoid, directions, is_point=False)
    a = np.sum(e * e, axis=-1)
    b = np.sum(q * e, axis=-1)
    c = np.sum(q * q, axis=-1) - 1.0
    disc = b * b - a * c
    return 2.0 * np.sqrt(np.clip(disc, 0.0, None)) / a


def project(ellipsoids: np.ndarray, geom: ConeBeamGeometry) -> np.ndarray:
    """Exact cone-beam line integrals through pixel centres: float32 ``(n_angles, n_rows, n_cols)``."""
    projections = np.zeros((geom.n_angles, geom.n_rows, geom.n_cols), dtype=np.float32)
    for index, beta in enumerate(geom.angles):
        source = geom.source_position(beta)
        rays = geom.pixel_positions(beta) - source
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        total = np.zeros(rays.shape[:2])
        for ellipsoid in ellipsoids:
            total += ellipsoid[0] * chord_lengths(ellipsoid, source, rays)
        projections[index] = total
    return projections
