"""Convert one series' de-identified DICOM files to NIfTI with `dcm2niix` (Debian package).

`convert_series` never raises for a series that does not convert: it returns the volumes made
and, when there are none, the reason (dcm2niix missing, timed out, failed, produced nothing), so
the export lists the series as skipped and goes on. Only CT and MR series are offered.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NIFTI_MODALITIES = frozenset({"CT", "MR"})
EXE = "dcm2niix"
BASENAME = "series"
TIMEOUT_S = 600
# -z y gzip, -b y BIDS sidecar, -ba y anonymised sidecar, -d 0 this folder only,
# -w 2 add suffixes on name clashes, -v 0 quiet
ARGS = ("-z", "y", "-b", "y", "-ba", "y", "-d", "0", "-w", "2", "-v", "0")
# dcm2niix exit statuses (its ERRORS.md), for the reason a series is skipped
EXIT_REASONS = {
    1: "unspecified error", 2: "no DICOM images found", 4: "corrupt DICOM file",
    5: "input folder invalid", 6: "output folder invalid", 7: "output folder not writable",
    8: "some images converted, some failed", 9: "rename error", 10: "incomplete volumes",
}
# dcm2niix's banner and notes that say nothing about why a series failed (1.0.20220720 notes
# "n.b. Setting directory search depth of zero invokes internal gz (network mode)" for -d 0)
NOISE = ("Chris Rorden's dcm2niiX version", "n.b. ")


@dataclass(frozen=True)
class Volume:
    nifti: Path
    sidecar: Path | None
    suffix: str           # what dcm2niix added to the base name ('' for the first volume)


@dataclass(frozen=True)
class NiftiResult:
    volumes: list[Volume] = field(default_factory=list)
    reason: str | None = None      # why nothing converted (None when volumes were made)

    @property
    def converted(self) -> bool:
        return bool(self.volumes)


def available(exe: str = EXE) -> str | None:
    """Path of the dcm2niix executable, or None."""
    return shutil.which(exe)


def convert_series(series_dir: Path | str, out_dir: Path | str, *, exe: str = EXE,
                   timeout_s: float = TIMEOUT_S) -> NiftiResult:
    """Run dcm2niix on `series_dir` (the files of ONE series) writing into `out_dir` (created,
    should be empty); returns the .nii.gz (+ .json) files made or the reason there are none."""
    binary = available(exe)
    if binary is None:
        return NiftiResult(reason=f"{exe} is not installed (Debian package dcm2niix)")
    series_dir, out_dir = Path(series_dir), Path(out_dir)
    if not series_dir.is_dir() or not any(series_dir.iterdir()):
        return NiftiResult(reason="no DICOM files for this series")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [binary, *ARGS, "-f", BASENAME, "-o", str(out_dir), str(series_dir)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return NiftiResult(reason=f"{exe} timed out after {timeout_s:g} s")
    except OSError as e:
        return NiftiResult(reason=f"{exe} could not run: {e.strerror or e}")
    volumes = []
    for nii in sorted(out_dir.glob(f"{BASENAME}*.nii.gz")):
        stem = nii.name[:-len(".nii.gz")]
        sidecar = nii.with_name(stem + ".json")
        volumes.append(Volume(nii, sidecar if sidecar.exists() else None,
                              stem[len(BASENAME):].lstrip("_")))
    if volumes:
        return NiftiResult(volumes=volumes)
    # dcm2niix output names no patient data here: inputs are de-identified, and only the tail
    # is kept to explain the failure.
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines()
             if ln.strip() and not ln.startswith(NOISE)]
    tail = " ".join(" ".join(lines).split())[-300:]
    why = EXIT_REASONS.get(proc.returncode, f"exit status {proc.returncode}")
    return NiftiResult(reason=f"{exe} made no volume: {why}" + (f" ({tail})" if tail else ""))
