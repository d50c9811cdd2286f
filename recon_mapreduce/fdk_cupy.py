"""CuPy (CUDA) FDK back-projection: one thread per voxel, same sampling rules as the reference.

Only imported through ``backends``; ``available()`` says whether CuPy and a GPU are usable.
Projections go to the GPU in chunks of angles so device memory stays bounded.
"""

from __future__ import annotations

import numpy as np

from recon_mapreduce.geometry import ConeBeamGeometry

_SOURCE = r"""
__device__ float fetch(const float* p, int row, int col, int n_rows, int n_cols) {
    return (row < 0 || row >= n_rows || col < 0 || col >= n_cols) ? 0.0f : p[row * n_cols + col];
}

extern "C" __global__ void fdk_backproject(
    float* volume, const float* proj, const double* cos_b, const double* sin_b,
    const double* weights, int n_angles, int n_rows, int n_cols, int n,
    double dso, double dsd, double du, double dv, double col_centre, double row_centre,
    double offset_u, double offset_v, double voxel_size)
{
    long long index = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    long long total = (long long)n * n * n;
    if (index >= total) return;
    int ix = index % n;
    int iy = (index / n) % n;
    int iz = index / ((long long)n * n);
    double centre = (n - 1) / 2.0;
    double x = (ix - centre) * voxel_size, y = (iy - centre) * voxel_size;
    double z = (iz - centre) * voxel_size;
    float acc = 0.0f;
    for (int a = 0; a < n_angles; ++a) {
        double distance = dso - (x * cos_b[a] + y * sin_b[a]);
        double mag = dsd / distance;
        double c = ((-x * sin_b[a] + y * cos_b[a]) * mag - offset_u) / du + col_centre;
        double r = (z * mag - offset_v) / dv + row_centre;
        if (c <= -1.0 || c >= n_cols || r <= -1.0 || r >= n_rows) continue;
        int c0 = (int)floor(c), r0 = (int)floor(r);
        float fc = (float)(c - c0), fr = (float)(r - r0);
        const float* p = proj + (long long)a * n_rows * n_cols;
        float top = fetch(p, r0, c0, n_rows, n_cols) * (1 - fc) + fetch(p, r0, c0 + 1, n_rows, n_cols) * fc;
        float bottom = fetch(p, r0 + 1, c0, n_rows, n_cols) * (1 - fc) + fetch(p, r0 + 1, c0 + 1, n_rows, n_cols) * fc;
        acc += (float)(weights[a] * (dso / distance) * (dso / distance)) * (top * (1 - fr) + bottom * fr);
    }
    volume[index] += acc;
}
"""

_BLOCK = 256


def available() -> bool:
    """True when CuPy imports and at least one CUDA device answers."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, missing driver, no device
        return False


def backproject_cupy(filtered: np.ndarray, geom: ConeBeamGeometry,
                     weights: np.ndarray | None = None, angle_chunk: int = 64) -> np.ndarray:
    """Whole-volume back-projection on the GPU; float32 ``(N, N, N)`` on the host."""
    import cupy

    kernel = cupy.RawKernel(_SOURCE, "fdk_backproject")
    weights = geom.angle_weights() if weights is None else np.asarray(weights)
    n = geom.n_voxels
    volume = cupy.zeros((n, n, n), dtype=cupy.float32)
    grid = ((n**3 + _BLOCK - 1) // _BLOCK,)
    for start in range(0, geom.n_angles, angle_chunk):
        stop = min(start + angle_chunk, geom.n_angles)
        angles = geom.angles[start:stop]
        kernel(grid, (_BLOCK,), (
            volume, cupy.asarray(filtered[start:stop], dtype=cupy.float32),
            cupy.asarray(np.cos(angles)), cupy.asarray(np.sin(angles)),
            cupy.asarray(weights[start:stop], dtype=cupy.float64),
            np.int32(stop - start), np.int32(geom.n_rows), np.int32(geom.n_cols), np.int32(n),
            np.float64(geom.dso), np.float64(geom.dsd), np.float64(geom.du), np.float64(geom.dv),
            np.float64((geom.n_cols - 1) / 2), np.float64((geom.n_rows - 1) / 2),
            np.float64(geom.offset_u), np.float64(geom.offset_v), np.float64(geom.voxel_size)))
    return cupy.asnumpy(volume)
