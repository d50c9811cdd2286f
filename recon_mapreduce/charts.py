"""What the portal shows of an fdk result: a chart of the reconstructed volume and a numbers table.

The chart (matplotlib, headless) has the central axial, coronal and sagittal planes in one grey
window with a colourbar and mm axes, plus a line profile through the centre along y, drawn
against the phantom's true attenuation when the projections were simulated (the analytic
ellipsoids are evaluated on the line, so the truth is exact, not voxelised).
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import matplotlib
import numpy as np

from recon_mapreduce import phantom
from recon_mapreduce.geometry import ConeBeamGeometry

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# `pacs recon simulate` records the phantom only by this description in geometry.json
SIMULATED_PHANTOM = "modified Shepp-Logan (3D ellipsoids)"
UNIT = "1/mm"


@dataclass(frozen=True)
class CentralPlanes:
    """The three planes through the volume's central voxel (index N // 2 on each axis)."""

    axial: np.ndarray     # [y, x] at the central z
    coronal: np.ndarray   # [z, x] at the central y
    sagittal: np.ndarray  # [z, y] at the central x


def central_planes(slabs: Iterable[np.ndarray], n: int) -> CentralPlanes:
    """Central planes of an ``(n, n, n)`` ``[z, y, x]`` volume given as slabs in z order.

    Only one slab is needed at a time, so a large volume is never assembled in memory."""
    c, z, axial, coronal, sagittal = n // 2, 0, None, [], []
    for slab in slabs:
        slab = np.asarray(slab)
        if slab.ndim != 3 or slab.shape[1:] != (n, n):
            raise ValueError(f"slab of shape {slab.shape} is not (k, {n}, {n})")
        if z <= c < z + slab.shape[0]:
            axial = np.array(slab[c - z], dtype=np.float32)
        coronal.append(slab[:, c, :].astype(np.float32))
        sagittal.append(slab[:, :, c].astype(np.float32))
        z += slab.shape[0]
    if z != n:
        raise ValueError(f"slabs cover {z} slices, the volume has {n}")
    return CentralPlanes(axial, np.concatenate(coronal), np.concatenate(sagittal))


def profile_line(geom: ConeBeamGeometry, samples_per_voxel: int = 4) -> np.ndarray:
    """World points ``(k, 3)`` (x, y, z) of the profile: along y through the central voxel."""
    coords = geom.voxel_coordinates()
    c = geom.n_voxels // 2
    half = geom.n_voxels * geom.voxel_size / 2
    y = np.linspace(-half, half, geom.n_voxels * samples_per_voxel + 1)
    return np.stack([np.full_like(y, coords[c]), y, np.full_like(y, coords[c])], axis=-1)


def phantom_values(ellipsoids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Exact attenuation of an ellipsoid phantom at world points ``(..., 3)``."""
    total = np.zeros(points.shape[:-1])
    for ellipsoid in ellipsoids:
        local = phantom._to_ellipsoid_frame(ellipsoid, points, is_point=True)
        total += ellipsoid[0] * (np.sum(local**2, axis=-1) <= 1.0)
    return total


def phantom_profile(meta: dict, geom: ConeBeamGeometry) -> tuple[np.ndarray, np.ndarray] | None:
    """(y in mm, true attenuation) on the profile line, or None when the projections do not
    come from `pacs recon simulate` (uploaded scans have no evaluable phantom)."""
    if meta.get("phantom") != SIMULATED_PHANTOM:
        return None
    points = profile_line(geom)
    # the stored scan and the job's grid share the field of view, so the table is the same
    return points[:, 1], phantom_values(phantom.shepp_logan_ellipsoids(geom), points)


def default_window(planes: CentralPlanes) -> tuple[float, float]:
    """Grey window common to the three planes: 0.5th to 99.5th percentile of their values."""
    values = np.concatenate([p.ravel() for p in (planes.axial, planes.coronal, planes.sagittal)])
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def _check(planes: CentralPlanes, geom: ConeBeamGeometry, truth) -> None:
    n = geom.n_voxels
    for name in ("axial", "coronal", "sagittal"):
        plane = getattr(planes, name)
        if plane is None or np.ndim(plane) != 2 or np.shape(plane) != (n, n):
            raise ValueError(f"{name} plane has shape {np.shape(plane)}, expected ({n}, {n})")
    if truth is not None:
        y, values = (np.asarray(a) for a in truth)
        if y.ndim != 1 or y.shape != values.shape:
            raise ValueError(f"phantom profile positions {y.shape} and values {values.shape} "
                             "must be 1-D of the same length")


def volume_chart_png(planes: CentralPlanes, geom: ConeBeamGeometry,
                     truth: tuple[np.ndarray, np.ndarray] | None = None,
                     window: tuple[float, float] | None = None) -> bytes:
    """PNG of the three central planes (common window, colourbar, mm axes) and the central
    line profile along y, with the phantom's true profile when ``truth`` is given."""
    _check(planes, geom, truth)
    lo, hi = window or default_window(planes)
    n, size = geom.n_voxels, geom.voxel_size
    half = n * size / 2
    centre = geom.voxel_coordinates()[n // 2]
    fig, axes = plt.subplot_mosaic([["axial", "coronal", "sagittal"],
                                    ["profile", "profile", "profile"]],
                                   figsize=(11, 7.5), dpi=100, layout="constrained",
                                   height_ratios=[1.15, 0.85])
    views = (("axial", planes.axial, f"axial, z = {centre:g} mm", "x (mm)", "y (mm)"),
             ("coronal", planes.coronal, f"coronal, y = {centre:g} mm", "x (mm)", "z (mm)"),
             ("sagittal", planes.sagittal, f"sagittal, x = {centre:g} mm", "y (mm)", "z (mm)"))
    for key, plane, title, xlabel, ylabel in views:
        ax = axes[key]
        image = ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi, origin="lower",
                          extent=(-half, half, -half, half), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    axes["axial"].axvline(centre, color="tab:orange", linewidth=0.8, linestyle="--")
    fig.colorbar(image, ax=[axes[k] for k, *_ in views], shrink=0.85,
                 label=f"attenuation ({UNIT})")
    profile = axes["profile"]
    profile.plot(geom.voxel_coordinates(), planes.axial[:, n // 2], color="tab:blue",
                 drawstyle="steps-mid", label="FDK reconstruction")
    if truth is not None:
        profile.plot(truth[0], truth[1], color="black", linewidth=1, label="phantom (exact)")
    profile.set_xlim(-half, half)
    profile.set_xlabel("y (mm)")
    profile.set_ylabel(f"attenuation ({UNIT})")
    profile.set_title(f"profile along y through x = z = {centre:g} mm (dashed line above)",
                      fontsize=10)
    profile.grid(True, alpha=0.3)
    profile.legend(fontsize=8, loc="upper center")
    fig.suptitle(f"FDK reconstruction, {n}³ voxels of {size:g} mm")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def result_numbers(result: dict) -> list[dict]:
    """The fdk result as (quantity, value, unit) rows for the portal's table and CSV."""
    volume, spark = result["volume"], result["spark"]
    rows = [("volume size", " × ".join(map(str, volume["shape"])), "voxels"),
            ("voxel size", volume["voxel_size_mm"], "mm"),
            ("minimum value", round(volume["min"], 6), UNIT),
            ("maximum value", round(volume["max"], 6), UNIT)]
    if result.get("accuracy"):
        acc = result["accuracy"]
        rows += [("RMSE against the phantom", round(acc["rmse"], 6), UNIT),
                 ("PSNR against the phantom", round(acc["psnr_db"], 2), "dB"),
                 ("phantom value range (PSNR peak)", round(acc["peak"], 6), UNIT),
                 (f"voxels compared ({acc['region']})", acc["voxels"], "voxels")]
    rows += [("Spark map/reduce time", spark["seconds"], "s"),
             ("map tasks", spark["map_tasks"], ""),
             ("slabs (reduce tasks)", spark["slabs"], "")]
    if result.get("dicom"):
        rows.append(("DICOM CT instances stored", result["dicom"].get("instances"), ""))
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]
