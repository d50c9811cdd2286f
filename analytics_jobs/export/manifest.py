"""The export's manifest (what selected the cohort, counts, sha256 of every file, code version,
time) and the README for the recipient. Building them is pure; `code_version` asks git or the
installed package metadata once. `verify_zip` re-hashes an archive against its manifest.

The manifest lists every member written before it (the README included); it cannot hold its own
hash, so it is written last and says so in `excludes`.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

from analytics_jobs.export import layout
from analytics_jobs.export.zipstream import Entry, sha256_of_member

FORMAT = "pacs-mdc-cohort-export/1"
PACKAGE = "pacs-mdc"
REPO_ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """{'package': version, 'git': commit[+dirty]} as far as known (keys absent otherwise)."""
    out: dict[str, str] = {}
    try:
        out["package"] = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        out["git"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def build_manifest(entries: Iterable[Entry], *, selection: Mapping[str, Any],
                   counts: Mapping[str, int], created: str | None = None,
                   code: Mapping[str, str] | None = None,
                   skipped: Iterable[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The manifest document. `selection` is Params.selection(); `counts` e.g. cases, studies,
    series, instances, visits, nifti_volumes; `skipped` lists what was left out and why
    (e.g. series dcm2niix did not convert)."""
    files = [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries]
    paths = [f["path"] for f in files]
    if len(set(paths)) != len(paths):
        raise ValueError("duplicate paths in manifest entries")
    if layout.MANIFEST in paths:
        raise ValueError("the manifest cannot list itself")
    return {
        "format": FORMAT,
        "created": created or utc_now(),
        "code_version": dict(code if code is not None else code_version()),
        "selection": dict(selection),
        "counts": {k: int(v) for k, v in sorted(counts.items())},
        "totals": {"files": len(files), "bytes": sum(f["size"] for f in files)},
        "files": files,
        "skipped": [dict(s) for s in skipped],
        "excludes": [layout.MANIFEST],
        "hash": "sha256 of each file's uncompressed bytes",
    }


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=False, ensure_ascii=False) + "\n").encode()


def _selection_text(selection: Mapping[str, Any]) -> str:
    if "criteria" in selection:
        crit = selection["criteria"]
        return "search criteria: " + (", ".join(f"{k}={v}" for k, v in crit.items()) or "(none)")
    return f"a list of {len(selection.get('pseudonyms', []))} case pseudonym(s)"


def readme_text(*, selection: Mapping[str, Any], counts: Mapping[str, int],
                created: str, code: Mapping[str, str] | None = None) -> str:
    """The README.md placed in the zip for the recipient (plain Markdown, no PHI)."""
    code = code if code is not None else code_version()
    count_lines = "\n".join(f"- {k.replace('_', ' ')}: {v}" for k, v in sorted(counts.items()))
    version = ", ".join(f"{k} {v}" for k, v in code.items()) or "unknown"
    return f"""# Cohort export

Made {created} by the Medical Data Center (code: {version}).
Cases were selected by {_selection_text(selection)}.

{count_lines}

## Contents

- `dicom/<pseudonym>/<study UID>/<series UID>/<instance UID>.dcm`: de-identified DICOM.
- `nifti/<pseudonym>/<study UID>/<series UID>.nii.gz` (+ `.json` sidecar): CT/MR volumes
  converted with dcm2niix; series that did not convert are listed under `skipped` in the
  manifest with the reason.
- `visits/visits.csv` and `visits/visits.parquet`: the visits of these cases, one row per visit.
- `manifest.json`: how the cohort was selected, counts, and the size and sha256 of every file.

Patients appear only as pseudonyms; UIDs are replaced and dates are shifted per patient, so
intervals within one patient are kept but calendar dates are not real.

## Check the files

    python3 -c "import json,hashlib;m=json.load(open('manifest.json'));\\
    print(all(hashlib.sha256(open(f['path'],'rb').read()).hexdigest()==f['sha256'] for f in m['files']))"

## Use

The data are de-identified, not anonymous. Use them only for the purpose they were released
for, keep them on protected storage, do not try to re-identify anyone, do not link them with
other data about the same people, and do not pass them on. Report any suspected personal data
left in the files to the data center.
"""


def verify_zip(fileobj: BinaryIO | str | Path) -> list[str]:
    """Problems found when re-hashing an export against its manifest ([] when it checks out)."""
    import zipfile
    problems: list[str] = []
    with zipfile.ZipFile(fileobj) as zf:
        manifest = json.loads(zf.read(layout.MANIFEST))
        listed = {f["path"]: f for f in manifest["files"]}
        present = set(zf.namelist()) - {layout.MANIFEST}
        problems += [f"missing: {p}" for p in sorted(set(listed) - present)]
        problems += [f"not in manifest: {p}" for p in sorted(present - set(listed))]
        for path in sorted(set(listed) & present):
            size, digest = sha256_of_member(zf, path)
            if (size, digest) != (listed[path]["size"], listed[path]["sha256"]):
                problems.append(f"mismatch: {path}")
    return problems
