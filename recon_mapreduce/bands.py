"""Per-(angle, detector-row band) FDK pieces for the MapReduce job.

A map task gets one projection angle and a band of detector rows ``[v0, v1)``, filters those
rows (the ramp filter runs along rows only, so bands are independent) and back-projects them
onto the volume slabs they reach. Reducers add the partial slabs.

Ownership and halo. Bilinear interpolation at row coordinate ``r`` reads rows ``floor(r)`` and
``floor(r) + 1``. A voxel is *owned* by the band whose ``[v0, v1)`` contains ``floor(r)``, so
every voxel/angle pair is counted exactly once across bands. The band therefore carries rows
``v0 .. v1`` inclusive (one halo row after the band, absent for the last band) - see
``band_rows``. The detector is zero outside its rows, so the first band also owns
``floor(r) = -1`` (it interpolates from the zero row above row 0), and the last band reads the
zero row ``n_rows``. The sum over all bands is then identical to the whole-volume kernel.
"""

from __future__ import annotations

import math

import numpy as np

from recon_mapreduce.fdk_fast import backproject_owned, pad_transposed
from recon_mapreduce.filters import filter_projection_rows
from recon_mapreduce.geometry import ConeBeamGeometry


def split_range(length: int, size: int) -> list[tuple[int, int]]:
    """``[0, length)`` cut into consecutive ``[start, stop)`` pieces of at most ``size``."""
    return [(start, min(start + size, length)) for start in range(0, length, size)]


def band_rows(v0: int, v1: int, n_rows: int) -> tuple[int, int]:
    """Detector rows ``[first, stop)`` a task for band ``[v0, v1)`` must carry (owned + halo)."""
    if not 0 <= v0 < v1 <= n_rows:
        raise ValueError(f"band [{v0}, {v1}) outside detector rows [0, {n_rows})")
    return v0, min(v1 + 1, n_rows)


def filter_rows(rows: np.ndarray, geom: ConeBeamGeometry, angle_index: int, v0: int,
                filter_name: str = "ram-lak") -> np.ndarray:
    """Cosine-weight and ramp-filter the carried rows of one band (``rows[0]`` is row ``v0``).

    ``angle_index`` is part of the task's identity only: on a circular orbit the weights do not
    depend on the angle. Returns float32 ``(n_rows_carried, n_cols)``.
    """
    if not 0 <= angle_index < geom.n_angles:
        raise ValueError(f"angle index {angle_index} outside [0, {geom.n_angles})")
    return filter_projection_rows(rows, geom, v0, filter_name)


def backproject_band(filtered_band: np.ndarray, geom: ConeBeamGeometry, angle: float, v0: int,
                     v1: int, z0: int, z1: int, weight: float | None = None) -> np.ndarray:
    """Contribution of one filtered band to volume slab ``[z0, z1)``: float32 ``(z1-z0, N, N)``.

    ``filtered_band`` holds the rows given by ``band_rows(v0, v1, n_rows)``; ``weight`` is the
    angle's ``d_beta / 2`` (default: uniform full circle, ``pi / n_angles``).
    """
    first, stop = band_rows(v0, v1, geom.n_rows)
    if filtered_band.shape != (stop - first, geom.n_cols):
        raise ValueError(f"band [{v0}, {v1}) needs rows [{first}, {stop}) x {geom.n_cols} cols, "
                         f"got {filtered_band.shape}")
    # Padded rows are v0 - 1 .. v1 + 1 (exclusive); rows outside the detector stay zero.
    padded = pad_transposed(filtered_band[None], rows_before=1, rows_after=v1 + 1 - stop)
    weight = geom.uniform_angle_weight if weight is None else weight
    slab = np.zeros((z1 - z0, geom.n_voxels, geom.n_voxels), dtype=np.float32)
    own_lo = -1 if v0 == 0 else v0
    return backproject_owned(slab, padded, geom, np.array([angle]), np.array([weight]),
                             row_base=v0 - 1, own_lo=own_lo, own_hi=v1, z0=z0)


def slabs_touched_by_band(geom: ConeBeamGeometry, angle: float, v0: int, v1: int,
                          slab_size: int) -> list[tuple[int, int]]:
    """Slabs ``(z0, z1)`` of ``slab_size`` slices that may own a voxel projecting into ``[v0, v1)``.

    Conservative: bounds the magnification over the volume's corners at this angle, so a slab
    left out is guaranteed to receive nothing from the band.
    """
    half = (geom.n_voxels - 1) / 2 * geom.voxel_size
    t_max = half * (abs(math.cos(angle)) + abs(math.sin(angle)))
    magnifications = (geom.dsd / (geom.dso + t_max), geom.dsd / (geom.dso - t_max))
    row_lo = -1 if v0 == 0 else v0
    z_edges = [((row - (geom.n_rows - 1) / 2) * geom.dv + geom.offset_v) / mag
               for row in (row_lo, v1) for mag in magnifications]
    to_index = lambda z: z / geom.voxel_size + (geom.n_voxels - 1) / 2  # noqa: E731
    k_min = math.floor(to_index(min(z_edges))) - 1
    k_max = math.ceil(to_index(max(z_edges))) + 1
    return [(z0, z1) for z0, z1 in split_range(geom.n_voxels, slab_size)
            if z1 > k_min and z0 <= k_max]


def map_band(rows: np.ndarray, geom: ConeBeamGeometry, angle_index: int, v0: int, v1: int,
             slab_size: int, filter_name: str = "ram-lak"):
    """One whole map task: filter the carried rows of band ``[v0, v1)`` at ``angle_index`` and
    yield ``(z0, z1, partial_slab)`` for every slab it may touch. Reducers sum by ``(z0, z1)``.

    ``rows`` are the raw projection rows ``band_rows(v0, v1, n_rows)``; the angle's weight comes
    from ``geom.angle_weights()`` so uneven scans are handled too.
    """
    angle = float(geom.angles[angle_index])
    weight = float(geom.angle_weights()[angle_index])
    filtered = filter_rows(rows, geom, angle_index, v0, filter_name)
    for z0, z1 in slabs_touched_by_band(geom, angle, v0, v1, slab_size):
        yield z0, z1, backproject_band(filtered, geom, angle, v0, v1, z0, z1, weight)
