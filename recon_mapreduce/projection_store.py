"""Cone-beam projections on HDFS, laid out for detector-row locality.

Layout of a projection directory::

    <dir>/geometry.json            scanner geometry, band list, optional ground truth name
    <dir>/band-<v0>-<v1>.npy       float32 (n_angles, rows, n_cols): rows v0 .. v1 inclusive
    <dir>/truth.npy                optional float32 (N, N, N) ground-truth volume [z, y, x]

Why per band: a map task needs one band of rows (plus the one-row halo ``bands.band_rows``
adds) for a run of angles. In a C-ordered ``(angle, row, col)`` band file the rows of one angle
are contiguous and consecutive angles follow each other, so a task reads exactly its bytes with
one ranged read, and HDFS blocks of a band file sit together on the DataNodes.
"""

from __future__ import annotations

import io
import json
import posixpath

import numpy as np

from recon_mapreduce.bands import band_rows, split_range
from recon_mapreduce.geometry import ConeBeamGeometry

GEOMETRY_FILE = "geometry.json"
TRUTH_FILE = "truth.npy"


def geometry_to_dict(geom: ConeBeamGeometry) -> dict:
    """JSON form of a geometry (angles as a list, exact float round trip)."""
    return {"dso": geom.dso, "dsd": geom.dsd, "n_rows": geom.n_rows, "n_cols": geom.n_cols,
            "du": geom.du, "dv": geom.dv, "angles": [float(a) for a in geom.angles],
            "n_voxels": geom.n_voxels, "voxel_size": geom.voxel_size,
            "offset_u": geom.offset_u, "offset_v": geom.offset_v}


def geometry_from_dict(data: dict) -> ConeBeamGeometry:
    keys = ("dso", "dsd", "n_rows", "n_cols", "du", "dv", "angles", "n_voxels", "voxel_size",
            "offset_u", "offset_v")
    return ConeBeamGeometry(**{k: data[k] for k in keys})


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def npy_header_length(data: bytes) -> int:
    """Byte offset of the array data in an ``.npy`` file (from its first bytes)."""
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    if version == (1, 0):
        np.lib.format.read_array_header_1_0(buffer)
    else:
        np.lib.format.read_array_header_2_0(buffer)
    return buffer.tell()


def band_file(v0: int, v1: int) -> str:
    return f"band-{v0:05d}-{v1:05d}.npy"


def write_projections(hdfs, directory: str, projections: np.ndarray, geom: ConeBeamGeometry,
                      band_size: int = 16, truth: np.ndarray | None = None,
                      extra: dict | None = None) -> dict:
    """Store ``(n_angles, n_rows, n_cols)`` projections as band files plus ``geometry.json``.

    Written last, ``geometry.json`` marks the directory complete. Returns its content.
    """
    if projections.shape != (geom.n_angles, geom.n_rows, geom.n_cols):
        raise ValueError(f"projections {projections.shape} do not match the geometry "
                         f"{(geom.n_angles, geom.n_rows, geom.n_cols)}")
    hdfs.mkdirs(directory)
    bands = []
    for v0, v1 in split_range(geom.n_rows, band_size):
        first, stop = band_rows(v0, v1, geom.n_rows)
        data = npy_bytes(projections[:, first:stop].astype(np.float32))
        hdfs.write(posixpath.join(directory, band_file(v0, v1)), data, overwrite=True)
        bands.append({"v0": v0, "v1": v1, "file": band_file(v0, v1),
                      "header_bytes": npy_header_length(data)})
    meta = {"format": "pacs-fdk-projections/1", "geometry": geometry_to_dict(geom),
            "band_size": band_size, "bands": bands, "dtype": "float32", "truth": None,
            **(extra or {})}
    if truth is not None:
        hdfs.write(posixpath.join(directory, TRUTH_FILE), npy_bytes(truth.astype(np.float32)),
                   overwrite=True)
        meta["truth"] = TRUTH_FILE
    hdfs.write(posixpath.join(directory, GEOMETRY_FILE), json.dumps(meta).encode(),
               overwrite=True)
    return meta


def read_meta(hdfs, directory: str) -> dict:
    """The ``geometry.json`` of a projection directory."""
    return json.loads(hdfs.read(posixpath.join(directory, GEOMETRY_FILE)))


def read_band(hdfs, directory: str, band: dict, n_cols: int, a0: int, a1: int) -> np.ndarray:
    """Angles ``[a0, a1)`` of one stored band (all its carried rows): one ranged read.

    ``band`` is an entry of ``band_layout(meta)``."""
    rows = band_rows(band["v0"], band["v1"], band["n_rows"])
    n_carried = rows[1] - rows[0]
    per_angle = n_carried * n_cols * 4
    data = hdfs.read(posixpath.join(directory, band["file"]),
                     offset=band["header_bytes"] + a0 * per_angle, length=(a1 - a0) * per_angle)
    return np.frombuffer(data, dtype="<f4").reshape(a1 - a0, n_carried, n_cols)


def band_layout(meta: dict) -> list[dict]:
    """The stored bands, each annotated with the detector's row count (for ``read_band``)."""
    n_rows = meta["geometry"]["n_rows"]
    return [{**band, "n_rows": n_rows} for band in meta["bands"]]


def read_truth(hdfs, directory: str, meta: dict) -> np.ndarray | None:
    if not meta.get("truth"):
        return None
    return npy_load(hdfs.read(posixpath.join(directory, meta["truth"])))


def simulate(hdfs, directory: str, size: int, n_angles: int, detector: int | None = None,
             band_size: int = 16, with_truth: bool = True, supersample: int = 1) -> dict:
    """Analytic Shepp-Logan scan (exact line integrals) stored under ``directory``."""
    from recon_mapreduce import phantom

    shape = (detector, detector) if detector else None
    geom = ConeBeamGeometry.for_volume(size, n_angles, detector_shape=shape)
    ellipsoids = phantom.shepp_logan_ellipsoids(geom)
    projections = phantom.project(ellipsoids, geom)
    truth = phantom.voxelise(ellipsoids, geom, supersample) if with_truth else None
    return write_projections(hdfs, directory, projections, geom, band_size, truth,
                             extra={"phantom": "modified Shepp-Logan (3D ellipsoids)"})
