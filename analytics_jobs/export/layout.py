"""Where each file goes inside the export zip. Pure; names come only from de-identified UIDs and
patient pseudonyms, which are checked (not rewritten) so two inputs can never collide on one name.

    README.md
    manifest.json
    visits/visits.csv
    visits/visits.parquet
    dicom/<pseudonym>/<study uid>/<series uid>/<sop instance uid>.dcm
    nifti/<pseudonym>/<study uid>/<series uid>[_<dcm2niix suffix>].nii.gz  (+ .json sidecar)
"""
from __future__ import annotations

import re

README = "README.md"
MANIFEST = "manifest.json"
VISITS_CSV = "visits/visits.csv"
VISITS_PARQUET = "visits/visits.parquet"

UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
SUFFIX_MAX = 40


def uid(value: str) -> str:
    """A DICOM UID (digits and dots, at most 64 chars) or ValueError."""
    value = str(value).strip()
    if len(value) > 64 or not UID.match(value):
        raise ValueError(f"not a DICOM UID: {value[:80]!r}")
    return value


def pseudonym(value: str) -> str:
    value = str(value).strip()
    if not PSEUDONYM.match(value):
        raise ValueError(f"not a pseudonym: {value[:80]!r}")
    return value


def safe_component(text: str, max_len: int = SUFFIX_MAX) -> str:
    """Free text (e.g. a dcm2niix file suffix) -> [A-Za-z0-9._-], never '', '.' or '..'."""
    out = _UNSAFE.sub("_", text).strip("._")[:max_len]
    return out or "x"


def study_dir(patient: str, study_uid: str) -> str:
    return f"{pseudonym(patient)}/{uid(study_uid)}"


def dicom_path(patient: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"dicom/{study_dir(patient, study_uid)}/{uid(series_uid)}/{uid(sop_uid)}.dcm"


def nifti_path(patient: str, study_uid: str, series_uid: str, suffix: str = "",
               ext: str = ".nii.gz") -> str:
    """Path of one NIfTI volume (or its ``.json`` sidecar with ext='.json'). `suffix` tells apart
    several volumes dcm2niix makes from one series (echoes, ...)."""
    if ext not in (".nii.gz", ".nii", ".json"):
        raise ValueError(f"unexpected NIfTI extension {ext!r}")
    tail = f"_{safe_component(suffix)}" if suffix else ""
    return f"nifti/{study_dir(patient, study_uid)}/{uid(series_uid)}{tail}{ext}"


def check_entry_path(path: str) -> str:
    """An archive member name that is safe to extract anywhere (no zip slip) or ValueError."""
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or "\x00" in path or ":" in path
            or any(p in ("", ".", "..") for p in parts) or len(path) > 1024):
        raise ValueError(f"unsafe archive path: {path[:120]!r}")
    return path
