"""The burned-in pixel screen over every DICOM file pydicom ships: held / cleaned / passed.

For each file in pydicom's bundled test data (``pydicom/data/test_files``, recursively; also
pydicom-data's files when that package is installed; never the network), the file is read,
de-identified (``deid.deidentify``) and screened (``deid.burned_in.screen``). Counted: held for
review, cleaned (regions blanked), passed, overall and by modality, and the rules that decided.
Timed per object, on freshly parsed copies (parsing not timed): the screen alone, for every
file, as the median of ``--repeat`` runs. Decoder calls are counted to show that pixels are
decoded only to clean. Also timed: the edge's common case, a 512x512 synthetic CT (no rule
applies). Media directories (DICOMDIR) are not objects a modality sends and are skipped.

Writes results.json (every file's verdict and time) and a RESULTS.md row.

    .venv/bin/python benchmarks/deid_pixels/screen_testfiles.py [--repeat 200]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import record  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
SKIP_SUFFIXES = {".json", ".gz", ".icc", ".txt", ".dump", ".py", ".pyc"}
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
COLUMNS = ["files", "held", "cleaned", "passed", "held_share", "cleaned_share", "passed_share",
           "by_modality", "decodes", "ct_pass_us", "synthetic_ct_us", "hold_median_us",
           "clean_median_ms"]


def test_files() -> list[Path]:
    """pydicom's bundled test files and, if installed, pydicom-data's (local files only)."""
    import pydicom
    roots = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import pydicom_data  # noqa: F401 - optional package of larger test files
        roots.append(Path(pydicom_data.__file__).parent / "data")
    except ImportError:
        pass
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() not in SKIP_SUFFIXES)


def read(raw: bytes):
    from pydicom import dcmread
    return dcmread(BytesIO(raw), force=True)


def timed_screen(raw: bytes, repeat: int) -> tuple[float, object]:
    """Median seconds of ``screen`` on ``repeat`` fresh parses of ``raw`` (and its verdict)."""
    from deid import DeidKeys, deidentify
    from deid.burned_in import screen
    keys = DeidKeys.generate()
    pairs = []
    for _ in range(repeat):
        ds = read(raw)
        pairs.append((ds, deidentify(ds, keys).dataset))
    times, verdict = [], None
    for ds, out in pairs:
        start = time.perf_counter()
        verdict = screen(ds, out)
        times.append(time.perf_counter() - start)
    return statistics.median(times), verdict


def synthetic_ct() -> bytes:
    from pacs_hdfs.dicom.synthetic import ct_slice
    buf = BytesIO()
    ct_slice(0, patient_id="BENCH", patient_name="Bench^Ct", study_uid="2.25.1",
             series_uid="2.25.2").save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=200, help="timed runs per file (pass/hold)")
    ap.add_argument("--clean-repeat", type=int, default=5, help="timed runs per cleaned file")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from deid import DeidKeys, burned_in, deidentify
    keys = DeidKeys.generate()
    decodes = Counter()
    real_decoder = burned_in.get_decoder

    def counting_decoder(syntax):
        decodes["calls"] += 1
        return real_decoder(syntax)

    burned_in.get_decoder = counting_decoder
    burned_in.default_rules()  # rule files read once, before timing

    rows, by_modality = [], defaultdict(Counter)
    for path in test_files():
        raw = path.read_bytes()
        try:
            ds = read(raw)
            if str(ds.get("SOPClassUID", "")) == MEDIA_DIRECTORY or len(ds) == 0:
                continue
            deidentify(ds, keys)
        except Exception as e:  # noqa: BLE001 - a file the edge would refuse: not screened
            rows.append({"file": path.name, "skipped": type(e).__name__})
            continue
        before = decodes["calls"]
        quick = burned_in.assess(ds).action != burned_in.CLEAN
        seconds, verdict = timed_screen(raw, args.repeat if quick else args.clean_repeat)
        modality = str(ds.get("Modality", "") or "none")
        by_modality[modality][verdict.action] += 1
        rows.append({"file": str(path.relative_to(path.parents[1])), "modality": modality,
                     "action": verdict.action, "reason": verdict.reason,
                     "rules": list(verdict.rules), "screen_us": round(seconds * 1e6, 1),
                     "decoded": decodes["calls"] > before})

    screened = [r for r in rows if "action" in r]
    counts = Counter(r["action"] for r in screened)
    n = len(screened)
    ct_pass = [r["screen_us"] for r in screened if r["modality"] == "CT" and r["action"] == "pass"]
    holds = [r["screen_us"] for r in screened if r["action"] == "hold"]
    cleans = [r["screen_us"] / 1000 for r in screened if r["action"] == "clean"]
    synthetic_s, synthetic_verdict = timed_screen(synthetic_ct(), args.repeat * 5)
    assert synthetic_verdict.action == "pass", synthetic_verdict
    result = {
        "files": n,
        "skipped": len(rows) - n,
        "held": counts["hold"], "cleaned": counts["clean"], "passed": counts["pass"],
        "held_share": f"{counts['hold'] / n:.0%}", "cleaned_share": f"{counts['clean'] / n:.0%}",
        "passed_share": f"{counts['pass'] / n:.0%}",
        "by_modality": "; ".join(
            f"{m} {sum(c.values())}: " + "/".join(f"{c[a]}{a[0]}" for a in ("hold", "clean", "pass")
                                                   if c[a])
            for m, c in sorted(by_modality.items())),
        "decodes": f"{sum(r['decoded'] for r in screened)} files (cleaned only)"
                   if all(r["decoded"] == (r["action"] == "clean") for r in screened)
                   else "decoded outside cleaning!",
        "ct_pass_us": round(statistics.median(ct_pass), 1) if ct_pass else None,
        "synthetic_ct_us": round(synthetic_s * 1e6, 1),
        "hold_median_us": round(statistics.median(holds), 1) if holds else None,
        "clean_median_ms": round(statistics.median(cleans), 2) if cleans else None,
        "rules_deciding": Counter(rule for r in screened for rule in r["rules"]).most_common(),
        "per_file": rows,
    }
    record(BENCH_DIR, result, COLUMNS)
    print({k: result[k] for k in COLUMNS})


if __name__ == "__main__":
    main()
