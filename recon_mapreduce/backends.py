"""Choose a back-projector by name; every one has the signature ``(filtered, geom) -> volume``.

``auto`` prefers the GPU, then numba, then NumPy. A named backend that cannot run here falls
back to the best CPU one with a log line, so a job never fails only because a GPU is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from recon_mapreduce.geometry import ConeBeamGeometry

Backprojector = Callable[[np.ndarray, ConeBeamGeometry], np.ndarray]
log = logging.getLogger(__name__)


def _numpy() -> Backprojector:
    from recon_mapreduce.fdk_reference import backproject_reference

    return backproject_reference


def _numba() -> Backprojector:
    from recon_mapreduce.fdk_fast import backproject_numba

    return backproject_numba


def _cupy() -> Backprojector:
    from recon_mapreduce import fdk_cupy

    if not fdk_cupy.available():
        raise ImportError("no GPU/CuPy")
    return fdk_cupy.backproject_cupy


# Loaders in order of preference for "auto"; each raises ImportError when it cannot run here.
LOADERS: dict[str, Callable[[], Backprojector]] = {"cupy": _cupy, "numba": _numba, "numpy": _numpy}
CPU_FALLBACK = ("numba", "numpy")


def available_backends() -> list[str]:
    """Names of the backends that load on this machine."""
    names = []
    for name, loader in LOADERS.items():
        try:
            loader()
            names.append(name)
        except ImportError:
            pass
    return names


def get_backprojector(name: str = "auto") -> Backprojector:
    """Back-projector called ``name`` (``auto``, ``numpy``, ``numba`` or ``cupy``)."""
    if name != "auto" and name not in LOADERS:
        raise ValueError(f"unknown backend {name!r}; choose auto or one of {list(LOADERS)}")
    candidates = list(LOADERS) if name == "auto" else [name, *CPU_FALLBACK]
    for candidate in candidates:
        try:
            backprojector = LOADERS[candidate]()
        except ImportError as error:
            log.info("back-projector %s unavailable (%s); trying the next one", candidate, error)
            continue
        if name not in ("auto", candidate):
            log.warning("back-projector %s unavailable; using %s", name, candidate)
        return backprojector
    raise RuntimeError("no back-projector available")  # numpy always loads; kept for clarity


def reconstruct(projections: np.ndarray, geom: ConeBeamGeometry, filter_name: str = "ram-lak",
                backend: str = "auto") -> np.ndarray:
    """FDK of ``(n_angles, n_rows, n_cols)`` line integrals into an ``(N, N, N)`` volume [z, y, x]."""
    from recon_mapreduce.filters import filter_projections

    return get_backprojector(backend)(filter_projections(projections, geom, filter_name), geom)
