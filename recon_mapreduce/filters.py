"""FDK pre-weighting and row-wise ramp filtering.

Scaling: projections are rescaled to a virtual detector through the isocentre (pitch
``du * DSO / DSD``). The ramp is the band-limited spatial-domain Ram-Lak kernel
``h[0] = 1/(4 tau^2), h[odd n] = -1/(pi n tau)^2`` (Kak & Slaney eq. 3.61) transformed by a
zero-padded FFT, which avoids the DC offset of sampling ``|f|`` directly, and multiplied by the
``tau`` of the convolution sum. With the back-projection factor ``d_beta / 2`` and the distance
weight ``(DSO / L)^2`` the reconstruction comes out in the phantom's attenuation units (1/mm).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from recon_mapreduce.geometry import ConeBeamGeometry

# Apodisation windows as functions of frequency in cycles/sample (Nyquist = 0.5).
WINDOWS = {
    "ram-lak": lambda f: np.ones_like(f),
    "shepp-logan": lambda f: np.sinc(f),
    "cosine": lambda f: np.cos(np.pi * f),
    "hann": lambda f: 0.5 * (1.0 + np.cos(2.0 * np.pi * f)),
}
FILTER_NAMES = tuple(WINDOWS)


def padded_length(n_cols: int) -> int:
    """FFT length: a power of two at least ``2 * n_cols`` so the linear convolution does not wrap."""
    return int(2 ** np.ceil(np.log2(2 * n_cols)))


@lru_cache(maxsize=32)
def ramp_response(n_pad: int, tau: float, filter_name: str) -> np.ndarray:
    """Real frequency response (length ``n_pad``) of ``tau * (h_ramlak * window)``."""
    if filter_name not in WINDOWS:
        raise ValueError(f"unknown filter {filter_name!r}; choose from {FILTER_NAMES}")
    n = np.fft.fftfreq(n_pad, d=1.0 / n_pad)  # signed integer lags 0, 1, ..., -1
    h = np.zeros(n_pad)
    h[0] = 1.0 / (4.0 * tau**2)
    odd = n % 2 == 1
    h[odd] = -1.0 / (np.pi * n[odd] * tau) ** 2
    response = tau * np.real(np.fft.fft(h)) * WINDOWS[filter_name](np.fft.fftfreq(n_pad))
    response.setflags(write=False)
    return response


def cosine_weights(geom: ConeBeamGeometry, rows: np.ndarray) -> np.ndarray:
    """FDK pre-weight ``DSD / sqrt(DSD^2 + u^2 + v^2)`` for detector ``rows``: ``(len(rows), n_cols)``."""
    u = geom.u_coordinates()[None, :]
    v = geom.v_coordinates(rows)[:, None]
    return geom.dsd / np.sqrt(geom.dsd**2 + u**2 + v**2)


def filter_projection_rows(rows: np.ndarray, geom: ConeBeamGeometry, first_row: int,
                           filter_name: str = "ram-lak") -> np.ndarray:
    """Cosine-weight and ramp-filter detector rows ``first_row, first_row + 1, ...``.

    ``rows`` is ``(..., n_rows_band, n_cols)``; each row is filtered independently, which is
    what makes the per-band Spark decomposition exact. Returns float32 of the same shape.
    """
    rows = np.asarray(rows, dtype=np.float64)
    row_index = first_row + np.arange(rows.shape[-2])
    weighted = rows * cosine_weights(geom, row_index)
    n_pad = padded_length(geom.n_cols)
    tau = geom.du * geom.dso / geom.dsd
    spectrum = np.fft.rfft(weighted, n=n_pad, axis=-1)
    response = ramp_response(n_pad, tau, filter_name)[: n_pad // 2 + 1]
    filtered = np.fft.irfft(spectrum * response, n=n_pad, axis=-1)[..., : geom.n_cols]
    return filtered.astype(np.float32)


def filter_projections(projections: np.ndarray, geom: ConeBeamGeometry,
                       filter_name: str = "ram-lak") -> np.ndarray:
    """Filter a whole ``(n_angles, n_rows, n_cols)`` stack, one angle at a time to bound memory."""
    out = np.empty(projections.shape, dtype=np.float32)
    for index, projection in enumerate(projections):
        out[index] = filter_projection_rows(projection, geom, 0, filter_name)
    return out
