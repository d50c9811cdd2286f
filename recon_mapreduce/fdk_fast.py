"""Fast CPU FDK back-projection with numba, same result as ``fdk_reference`` (float32 sums).

Why it is fast: for a fixed angle and voxel column (y, x) the detector column, the distance
weight and the row step are constant along z, and the row coordinate is linear in z. The kernel
therefore walks z innermost over a contiguous per-tile accumulator, with no per-voxel division
or bounds test. Where the row step is below 2 (every voxel of the benchmark geometries) it
back-projects eight voxels per step from a 16-row window of the two detector columns with AVX2
shuffles (``lerp_window``: column blend, row interpolation and accumulation in vector
registers); the rest, and CPUs without AVX2, take a scalar loop with the same arithmetic. Row
coordinates are 32.32 fixed point, which makes the row ownership test exact integer arithmetic.
Voxel columns are grouped in ``TILE x TILE`` tiles (one per parallel task) and each tile loops
over all angles, so the few detector columns a tile touches stay in cache. Unsigned indices
spare numba's negative-index checks. Measured in benchmarks/fdk.

The same kernel serves the whole volume and one detector-row band (the Spark decomposition):
it back-projects only voxels whose floor(row coordinate) is in ``[own_lo, own_hi)`` and only
slab ``[z0, z1)``. Projections are passed transposed and zero-padded,
``padded[a, col + 1, row - row_base] = filtered[a, row, col]``, so bilinear reads never leave
the array and the zero border matches the reference's interpolation into zero; ``WINDOW`` more
zero rows at the end let the last window of a column read past the band (``pad_transposed``).
A column whose window would not fit takes the scalar loop, so a shorter array is still safe.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recon_mapreduce.geometry import ConeBeamGeometry
from recon_mapreduce.lerp_window import LANES, MAX_DR, WINDOW, window8

TILE = 16
FRACTION_BITS = 32  # row coordinates are fixed point: integer part . 32-bit fraction
ONE = np.int64(1) << FRACTION_BITS
FRACTION_MASK = ONE - 1
TO_FRACTION = np.float32(1.0 / 2**FRACTION_BITS)


@njit(cache=True)
def _ceil_div(numerator, denominator):
    """Integer ceil(numerator / denominator) for denominator > 0."""
    return -((-numerator) // denominator)


@njit(cache=True)
def _owned_z_range(r_fixed_at_0, dr_fixed, lo, hi, z0, z1):
    """Voxel indices k in [z0, z1) whose row floor is in [lo, hi); exact integer arithmetic."""
    k_lo = max(z0, min(z1, _ceil_div(lo * ONE - r_fixed_at_0, dr_fixed)))
    k_hi = max(k_lo, min(z1, _ceil_div(hi * ONE - r_fixed_at_0, dr_fixed)))
    return k_lo, k_hi


@njit(parallel=True, cache=True, boundscheck=False)
def _backproject_tiles(volume, padded, cos_b, sin_b, weights, dso, dsd, du, dv, col_centre,
                       row_centre, offset_u, offset_v, voxel_size, row_base, own_lo, own_hi, z0):
    """Accumulate into ``volume[z - z0, y, x]`` (float32 slab) the owned contributions."""
    n_z, n, _ = volume.shape
    z1 = z0 + n_z
    n_cols_padded = padded.shape[1]
    n_rows_padded = padded.shape[2]
    centre = (n - 1) / 2.0
    z_first = -centre * voxel_size  # z of voxel index 0
    inverse_du = 1.0 / du
    inverse_dv = 1.0 / dv
    tiles_per_side = (n + TILE - 1) // TILE
    lo = own_lo - row_base  # ownership in padded-row coordinates, always >= 0
    hi = own_hi - row_base
    one = np.uintp(1)
    for tile in prange(tiles_per_side * tiles_per_side):
        y_start = (tile // tiles_per_side) * TILE
        x_start = (tile % tiles_per_side) * TILE
        acc = np.zeros((TILE * TILE, n_z), dtype=np.float32)
        for a in range(padded.shape[0]):
            cb = cos_b[a]
            sb = sin_b[a]
            for ty in range(min(TILE, n - y_start)):
                y = (y_start + ty - centre) * voxel_size
                for tx in range(min(TILE, n - x_start)):
                    x = (x_start + tx - centre) * voxel_size
                    inverse_distance = 1.0 / (dso - (x * cb + y * sb))
                    mag = dsd * inverse_distance
                    c = ((-x * sb + y * cb) * mag - offset_u) * inverse_du + col_centre + 1.0
                    if c < 0.0 or c >= n_cols_padded - 1:
                        continue
                    dr = voxel_size * mag * inverse_dv
                    r_at_0 = (z_first * mag - offset_v) * inverse_dv + row_centre - row_base
                    # Fixed point makes ownership exact and consistent across bands.
                    dr_fixed = np.int64(round(dr * ONE))
                    r_fixed_at_0 = np.int64(round(r_at_0 * ONE))
                    k_lo, k_hi = _owned_z_range(r_fixed_at_0, dr_fixed, lo, hi, z0, z1)
                    if k_lo >= k_hi:
                        continue
                    c0 = np.uintp(c)
                    weight = weights[a] * (dso * inverse_distance) ** 2
                    wr = np.float32(weight * (c - c0))  # column interpolation x FDK weight
                    wl = np.float32(weight) - wr
                    left = padded[a, c0]
                    right = padded[a, c0 + one]
                    out = acc[ty * TILE + tx]
                    r_fixed = r_fixed_at_0 + k_lo * dr_fixed
                    k = k_lo - z0
                    stop = k_hi - z0
                    last_row = (r_fixed_at_0 + (k_hi - 1) * dr_fixed) >> FRACTION_BITS
                    if dr < MAX_DR and last_row + WINDOW <= n_rows_padded:
                        # eight voxels per step from a 16-row window (see lerp_window)
                        dr32 = np.float32(dr)
                        step = LANES * dr_fixed
                        while k + LANES <= stop:
                            window8(out, k, left, right, r_fixed >> FRACTION_BITS, wl, wr,
                                    np.float32(r_fixed & FRACTION_MASK) * TO_FRACTION, dr32)
                            r_fixed += step
                            k += LANES
                    # the rest one voxel at a time; unsigned indices spare negative-index tests
                    for kk in range(np.uintp(k), np.uintp(stop)):
                        r0 = np.uintp(r_fixed >> FRACTION_BITS)
                        fr = np.float32(r_fixed & FRACTION_MASK) * TO_FRACTION
                        top = wl * left[r0] + wr * right[r0]
                        bottom = wl * left[r0 + one] + wr * right[r0 + one]
                        out[kk] += top + fr * (bottom - top)
                        r_fixed += dr_fixed
        for k in range(n_z):  # z outermost: contiguous rows of the volume
            for ty in range(min(TILE, n - y_start)):
                for tx in range(min(TILE, n - x_start)):
                    volume[k, y_start + ty, x_start + tx] += acc[ty * TILE + tx, k]


def padded_zeros(n_angles: int, n_rows: int, n_cols: int, rows_before: int,
                 rows_after: int) -> np.ndarray:
    """The kernel's zero projection array for ``n_rows`` detector rows: float32
    ``(n_angles, n_cols + 2, rows_before + n_rows + rows_after + WINDOW)``; fill it with
    ``padded[a, 1:-1, rows_before:rows_before + n_rows] = filtered[a].T``."""
    return np.zeros((n_angles, n_cols + 2, rows_before + n_rows + rows_after + WINDOW),
                    dtype=np.float32)


def pad_transposed(filtered: np.ndarray, rows_before: int, rows_after: int) -> np.ndarray:
    """``(n_angles, n_rows, n_cols)`` -> the kernel's layout (``padded_zeros``), border zero."""
    n_angles, n_rows, n_cols = filtered.shape
    padded = padded_zeros(n_angles, n_rows, n_cols, rows_before, rows_after)
    padded[:, 1:-1, rows_before:rows_before + n_rows] = np.swapaxes(filtered, 1, 2)
    return padded


def backproject_owned(volume_slab: np.ndarray, padded: np.ndarray, geom: ConeBeamGeometry,
                      angles: np.ndarray, weights: np.ndarray, row_base: int, own_lo: int,
                      own_hi: int, z0: int) -> np.ndarray:
    """Add to ``volume_slab`` (float32 ``(z1 - z0, N, N)``) the contributions of voxels whose
    floor(row) is in ``[own_lo, own_hi)``; ``padded`` row 0 is detector row ``row_base``."""
    angles = np.asarray(angles, dtype=np.float64)
    padded = np.ascontiguousarray(padded, dtype=np.float32)  # the window reads rows in place
    _backproject_tiles(volume_slab, padded, np.cos(angles), np.sin(angles),
                       np.asarray(weights, dtype=np.float64), float(geom.dso), float(geom.dsd),
                       float(geom.du), float(geom.dv), (geom.n_cols - 1) / 2.0,
                       (geom.n_rows - 1) / 2.0, float(geom.offset_u), float(geom.offset_v),
                       float(geom.voxel_size), int(row_base), int(own_lo), int(own_hi), int(z0))
    return volume_slab


def backproject_numba(filtered: np.ndarray, geom: ConeBeamGeometry,
                      weights: np.ndarray | None = None, angle_chunk: int = 64) -> np.ndarray:
    """Whole-volume back-projection; float32 ``(N, N, N)`` indexed ``[z, y, x]``.

    Angles are processed in chunks of ``angle_chunk`` so the padded copy stays small.
    """
    weights = geom.angle_weights() if weights is None else np.asarray(weights)
    n = geom.n_voxels
    volume = np.zeros((n, n, n), dtype=np.float32)
    for start in range(0, geom.n_angles, angle_chunk):
        stop = min(start + angle_chunk, geom.n_angles)
        padded = pad_transposed(filtered[start:stop], rows_before=1, rows_after=1)
        backproject_owned(volume, padded, geom, geom.angles[start:stop], weights[start:stop],
                          row_base=-1, own_lo=-1, own_hi=geom.n_rows, z0=0)
    return volume
