"""Circular cone-beam geometry shared by the phantom, the filters and every back-projector.

Conventions (all lengths in mm, angles in radians):

* World frame: isocentre at the origin, rotation axis is +z.
* Source at angle ``beta``: ``S = DSO * (cos beta, sin beta, 0)``. The source rotates
  counter-clockwise seen from +z (beta increases from +x towards +y).
* Flat detector centre at ``-(DSD - DSO) * (cos beta, sin beta, 0)`` (plus offsets), with
  unit vectors ``e_u = (-sin beta, cos beta, 0)`` along detector columns and ``e_v = +z``
  along detector rows.
* Projection arrays are ``(n_angles, n_rows, n_cols)``: index ``[a, v, u]``. Row index grows
  with +z, column index grows with ``e_u``. Pixel centres sit at
  ``u = (col - (n_cols - 1) / 2) * du + offset_u`` and ``v = (row - (n_rows - 1) / 2) * dv + offset_v``.
* Volumes are ``(N, N, N)`` arrays indexed ``[z, y, x]``; voxel centres at
  ``(i - (N - 1) / 2) * voxel_size`` along each axis.
* For a voxel at ``(x, y, z)``: ``t = x cos beta + y sin beta`` (towards the source),
  ``s = -x sin beta + y cos beta`` (along ``e_u``); its distance from the source along the
  central ray is ``L = DSO - t``; it projects to ``u = DSD * s / L``, ``v = DSD * z / L``.
  The FDK distance weight is ``(DSO / L) ** 2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class ConeBeamGeometry:
    """Circular-orbit cone-beam scanner plus the reconstruction grid (see module docstring)."""

    dso: float
    dsd: float
    n_rows: int
    n_cols: int
    du: float
    dv: float
    angles: np.ndarray = field(repr=False)
    n_voxels: int
    voxel_size: float
    offset_u: float = 0.0
    offset_v: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "angles", np.asarray(self.angles, dtype=np.float64))
        if not 0 < self.dso < self.dsd:
            raise ValueError("need 0 < DSO < DSD")

    @classmethod
    def for_volume(
        cls,
        n_voxels: int,
        n_angles: int,
        voxel_size: float = 1.0,
        detector_shape: tuple[int, int] | None = None,
        dso_factor: float = 4.0,
        dsd_factor: float = 1.5,
        margin: float = 1.05,
    ) -> "ConeBeamGeometry":
        """Full-circle scan whose detector sees the whole volume (no truncation).

        ``dso = dso_factor * field of view``; pixel pitch is chosen so that the magnified
        bounding cylinder of the volume (times ``margin``) fits the detector.
        """
        fov = n_voxels * voxel_size
        dso = dso_factor * fov
        dsd = dsd_factor * dso
        radius = fov / np.sqrt(2.0)
        half_u = margin * dsd * radius / np.sqrt(dso**2 - radius**2)
        half_v = margin * dsd * (fov / 2) / (dso - radius)
        n_rows, n_cols = detector_shape or (2 * n_voxels, 2 * n_voxels)
        angles = np.arange(n_angles) * (2 * np.pi / n_angles)
        return cls(dso, dsd, n_rows, n_cols, float(2 * half_u / n_cols), float(2 * half_v / n_rows),
                   angles, n_voxels, voxel_size)

    @property
    def n_angles(self) -> int:
        return int(self.angles.size)

    @property
    def uniform_angle_weight(self) -> float:
        """FDK angular factor ``d_beta / 2`` for a uniform full-circle scan (pi / n_angles)."""
        return float(np.pi / self.n_angles)

    def angle_weights(self) -> np.ndarray:
        """Per-angle ``d_beta / 2`` from the circular spacing of the (possibly uneven) angles."""
        order = np.argsort(np.mod(self.angles, 2 * np.pi))
        sorted_angles = np.mod(self.angles, 2 * np.pi)[order]
        gaps = np.diff(np.concatenate([sorted_angles, sorted_angles[:1] + 2 * np.pi]))
        half_span = 0.5 * (gaps + np.roll(gaps, 1))
        weights = np.empty_like(half_span)
        weights[order] = 0.5 * half_span
        return weights

    def voxel_coordinates(self) -> np.ndarray:
        """Centre coordinate of voxel index ``0..N-1`` along any axis (mm)."""
        return (np.arange(self.n_voxels) - (self.n_voxels - 1) / 2) * self.voxel_size

    def u_coordinates(self) -> np.ndarray:
        """Detector column centres (mm)."""
        return (np.arange(self.n_cols) - (self.n_cols - 1) / 2) * self.du + self.offset_u

    def v_coordinates(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Detector row centres (mm) for ``rows`` (default all rows)."""
        rows = np.arange(self.n_rows) if rows is None else np.asarray(rows)
        return (rows - (self.n_rows - 1) / 2) * self.dv + self.offset_v

    def column_index(self, u: np.ndarray) -> np.ndarray:
        """Continuous column index of detector coordinate ``u``."""
        return (u - self.offset_u) / self.du + (self.n_cols - 1) / 2

    def row_index(self, v: np.ndarray) -> np.ndarray:
        """Continuous row index of detector coordinate ``v``."""
        return (v - self.offset_v) / self.dv + (self.n_rows - 1) / 2

    def source_position(self, beta: float) -> np.ndarray:
        return self.dso * np.array([np.cos(beta), np.sin(beta), 0.0])

    def pixel_positions(self, beta: float) -> np.ndarray:
        """World positions of all detector pixel centres at angle ``beta``: ``(n_rows, n_cols, 3)``."""
        c, s = np.cos(beta), np.sin(beta)
        centre = -(self.dsd - self.dso) * np.array([c, s, 0.0])
        e_u = np.array([-s, c, 0.0])
        e_v = np.array([0.0, 0.0, 1.0])
        u = self.u_coordinates()[None, :, None]
        v = self.v_coordinates()[:, None, None]
        return centre + u * e_u + v * e_v

    def project_point(self, point: np.ndarray, beta: float) -> tuple[float, float]:
        """Continuous (row, col) index where world ``point`` (x, y, z) lands at angle ``beta``."""
        x, y, z = point
        t = x * np.cos(beta) + y * np.sin(beta)
        s = -x * np.sin(beta) + y * np.cos(beta)
        mag = self.dsd / (self.dso - t)
        return float(self.row_index(z * mag)), float(self.column_index(s * mag))

    def voxel_index_of(self, point: np.ndarray) -> tuple[int, int, int]:
        """Nearest ``(iz, iy, ix)`` voxel index of world point ``(x, y, z)``."""
        x, y, z = point
        to_index = lambda c: int(round(c / self.voxel_size + (self.n_voxels - 1) / 2))  # noqa: E731
        return to_index(z), to_index(y), to_index(x)
