"""Readable NumPy FDK: the definition every faster kernel is tested against.

Back-projection is voxel-driven: each voxel is projected onto the filtered detector, the value
is read with bilinear interpolation, multiplied by the distance weight ``(DSO / L)^2`` and the
angular factor ``d_beta / 2``, and summed over angles. The detector is treated as zero outside
its pixels, with bilinear interpolation into that zero border, so the sampled value is a
continuous function of position (samples are non-zero for row in (-1, n_rows), col in (-1, n_cols)).
"""

from __future__ import annotations

import numpy as np

from recon_mapreduce.filters import filter_projections
from recon_mapreduce.geometry import ConeBeamGeometry


def bilinear_zero_padded(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample ``image`` at continuous ``(rows, cols)`` (broadcast), zero outside the pixel grid."""
    padded = np.pad(image.astype(np.float64), 1)
    r = np.asarray(rows, dtype=np.float64) + 1.0
    c = np.asarray(cols, dtype=np.float64) + 1.0
    r, c = np.broadcast_arrays(r, c)
    inside = (r >= 0) & (r < padded.shape[0] - 1) & (c >= 0) & (c < padded.shape[1] - 1)
    r0 = np.clip(np.floor(r), 0, padded.shape[0] - 2).astype(np.intp)
    c0 = np.clip(np.floor(c), 0, padded.shape[1] - 2).astype(np.intp)
    fr, fc = r - r0, c - c0
    top = padded[r0, c0] * (1 - fc) + padded[r0, c0 + 1] * fc
    bottom = padded[r0 + 1, c0] * (1 - fc) + padded[r0 + 1, c0 + 1] * fc
    return np.where(inside, top * (1 - fr) + bottom * fr, 0.0)


def backproject_reference(filtered: np.ndarray, geom: ConeBeamGeometry,
                          weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted back-projection of filtered projections ``(n_angles, n_rows, n_cols)``.

    ``weights`` are the per-angle ``d_beta / 2`` factors (default: ``geom.angle_weights()``).
    Returns a float64 ``(N, N, N)`` volume indexed ``[z, y, x]``.
    """
    weights = geom.angle_weights() if weights is None else weights
    coords = geom.voxel_coordinates()
    z = coords[:, None, None]
    y = coords[None, :, None]
    x = coords[None, None, :]
    volume = np.zeros((geom.n_voxels,) * 3)
    for projection, beta, weight in zip(filtered, geom.angles, weights):
        t = x * np.cos(beta) + y * np.sin(beta)
        s = -x * np.sin(beta) + y * np.cos(beta)
        distance = geom.dso - t
        magnification = geom.dsd / distance
        cols = geom.column_index(s * magnification)
        rows = geom.row_index(z * magnification)
        sample = bilinear_zero_padded(projection, rows, cols)
        volume += weight * (geom.dso / distance) ** 2 * sample
    return volume


def fdk_reference(projections: np.ndarray, geom: ConeBeamGeometry,
                  filter_name: str = "ram-lak") -> np.ndarray:
    """Full FDK (pre-weight, ramp filter, back-project) with the NumPy reference back-projector."""
    return backproject_reference(filter_projections(projections, geom, filter_name), geom)
