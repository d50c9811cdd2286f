"""Edge extraction and resampling of images onto the 2B × 2B sphere grid (cylmap, projmap).

Edges are the Sobel gradient magnitude of the image (computed before mapping, at full image
resolution). Before point-sampling at grid nodes the edge image is blurred to about the grid
spacing, so thin edges are not missed between nodes (anti-aliasing).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, sobel

from analytics_jobs.scc.grid import sphere_directions, sphere_grid
from analytics_jobs.scc.synthetic import cylinder_focal, focal_length


def edge_magnitude(image: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Sobel gradient magnitude of a lightly smoothed grey image."""
    smooth = gaussian_filter(np.asarray(image, dtype=np.float64), smoothing)
    return np.hypot(sobel(smooth, axis=0), sobel(smooth, axis=1))


def _antialias(edges: np.ndarray, pixels_per_sample: float, wrap_columns: bool = False) -> np.ndarray:
    sigma = max(0.0, pixels_per_sample / 2.0)
    if sigma == 0:
        return edges
    return gaussian_filter(edges, sigma, mode=("nearest", "wrap" if wrap_columns else "nearest"))


def cylmap(panorama: np.ndarray, bandwidth: int) -> np.ndarray:
    """Edge map of a 360° cylindrical panorama sampled on the sphere grid (0 outside its band)."""
    height, width = panorama.shape
    focal = cylinder_focal(width)
    edges = _antialias(edge_magnitude(panorama), width / (2 * bandwidth), wrap_columns=True)
    theta, phi = sphere_grid(bandwidth)
    elevation = np.pi / 2 - theta
    rows = (height - 1) / 2 - np.tan(elevation) * focal
    columns = phi * width / (2 * np.pi)
    r, c = np.meshgrid(rows, columns, indexing="ij")
    inside = (r >= 0) & (r <= height - 1)
    # pad one wrapped column so interpolation across azimuth 2π → 0 is seamless
    padded = np.concatenate([edges, edges[:, :1]], axis=1)
    values = map_coordinates(padded, [np.clip(r, 0, height - 1), c], order=1)
    return np.where(inside, values, 0.0)


def projmap(photo: np.ndarray, fov: float, bandwidth: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge map of a perspective photo on the sphere grid in the camera frame, and its footprint.

    Camera frame: x right, y down, z optical axis; horizontal field of view ``fov`` (radians).
    """
    height, width = photo.shape
    focal = focal_length(width, fov)
    grid_step = np.pi / (2 * bandwidth)
    edges = _antialias(edge_magnitude(photo), focal * grid_step)
    dirs = sphere_directions(bandwidth)
    z = dirs[..., 2]
    front = z > 1e-6
    safe_z = np.where(front, z, 1.0)
    u = focal * dirs[..., 0] / safe_z + (width - 1) / 2
    v = focal * dirs[..., 1] / safe_z + (height - 1) / 2
    inside = front & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    values = map_coordinates(edges, [np.clip(v, 0, height - 1), np.clip(u, 0, width - 1)], order=1)
    return np.where(inside, values, 0.0), inside


def normalise(samples: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Zero mean over ``mask`` (whole grid if None), zero outside it, unit RMS.

    A zero-mean photo template makes the score ignore how much edge the panorama has overall
    under the footprint and respond to where the edges are.
    """
    mask = np.ones(samples.shape, dtype=bool) if mask is None else mask
    out = np.where(mask, samples - samples[mask].mean(), 0.0)
    rms = np.sqrt(np.mean(out**2))
    return out / rms if rms > 0 else out
