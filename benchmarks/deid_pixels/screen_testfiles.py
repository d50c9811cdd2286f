"""The burned-in pixel screen over every DICOM file pydicom ships: held / cleaned / passed.

For each file in pydicom's bundled test data (``pydicom/data/test_files``, recursively; also
pydicom-data's files when that package is installed; never the network), the file is read,
de-identified (``deid.deidentify``) and screened (``deid.burned_in.screen``). Counted: held for
review, cleaned (regions blanked), passed, overall and by modality, and the rules that decided.
Timed per object: the screen alone, right after parsing and de-identifying a fresh copy (as
on the edge; neither is timed), the median of ``--repeat`` runs per file. Decoder calls are
counted to show that pixels are decoded only to clean. Also timed: the edge's common case, a 512x512 synthetic CT (no rule
applies). Media directories (DICOMDIR) are not objects a modality sends and are skipped.

Waits (up to ``--patience`` s) for a 1-minute load of at most ``--max-load`` first; the clock's
own cost is subtracted, and ``python_loop_ns`` (an empty loop's iteration) says how fast and busy
the host was. Writes results.json (every file's verdict and time) and a RESULTS.md row.

    .venv/bin/python benchmarks/deid_pixels/screen_testfiles.py [--repeat 200]
"""
from __future__ import annotations

import argparse
import os
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
           "by_modality", "decodes", "ct_image_pass_us", "ct_image_pass_max_us",
           "synthetic_ct_us", "hold_median_us",
           "clean_median_ms", "timer_us", "python_loop_ns", "load_at_start"]


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


def timer_overhead() -> float:
    """Median seconds between two back-to-back clock reads (subtracted from each timing: on a
    virtual machine it can be a microsecond or more)."""
    reads = []
    for _ in range(2000):
        start = time.perf_counter()
        reads.append(time.perf_counter() - start)
    return statistics.median(reads)


def timed_screen(raw: bytes, repeat: int, overhead: float = 0.0) -> tuple[float, object]:
    """Median seconds of ``screen`` over ``repeat`` runs, each on a fresh parse of ``raw`` that
    was just de-identified, as on the edge (the object's data are warm in the CPU caches)."""
    from deid import DeidKeys, deidentify
    from deid.burned_in import screen
    keys = DeidKeys.generate()
    times, verdict = [], None
    for _ in range(repeat):
        ds = read(raw)
        out = deidentify(ds, keys).dataset
        start = time.perf_counter()
        verdict = screen(ds, out)
        times.append(time.perf_counter() - start - overhead)
    return statistics.median(times), verdict


def wait_for_quiet(max_load: float, patience_s: float) -> float:
    """Wait (at most ``patience_s``) until the 1-minute load is at most ``max_load``."""
    deadline = time.time() + patience_s
    while os.getloadavg()[0] > max_load and time.time() < deadline:
        time.sleep(10)
    return os.getloadavg()[0]


def python_loop_ns() -> float:
    """Nanoseconds per iteration of an empty Python loop: how fast (and how busy) this host is,
    to read the microsecond figures against (about 15 ns on an idle modern core)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(1_000_000):
            pass
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def synthetic_ct() -> bytes:
    from pacs_hdfs.dicom.synthetic import ct_slice
    buf = BytesIO()
    ct_slice(0, patient_id="BENCH", patient_name="Bench^Ct", study_uid="2.25.1",
             series_uid="2.25.2").save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=200, help="timed runs per file (pass, hold)")
    ap.add_argument("--clean-repeat", type=int, default=5, help="timed runs per cleaned file")
    ap.add_argument("--max-load", type=float, default=1.5, help="wait for this 1-minute load")
    ap.add_argument("--patience", type=float, default=600, help="seconds to wait for it")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    load_at_start = wait_for_quiet(args.max_load, args.patience)
    overhead = timer_overhead()

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
        seconds, verdict = timed_screen(raw, args.repeat if quick else args.clean_repeat,
                                        overhead)
        modality = str(ds.get("Modality", "") or "none")
        by_modality[modality][verdict.action] += 1
        rows.append({"file": str(path.relative_to(path.parents[1])), "modality": modality,
                     "action": verdict.action, "reason": verdict.reason,
                     "rules": list(verdict.rules), "screen_us": round(seconds * 1e6, 1),
                     "decoded": decodes["calls"] > before})

    screened = [r for r in rows if "action" in r]
    counts = Counter(r["action"] for r in screened)
    n = len(screened)
    ct_pass = [r["screen_us"] for r in screened if r["modality"] == "CT" and r["action"] == "pass"
               and r["reason"] != "no pixel data"]  # CT images no rule applies to
    holds = [r["screen_us"] for r in screened if r["action"] == "hold"]
    cleans = [r["screen_us"] / 1000 for r in screened if r["action"] == "clean"]
    synthetic_s, synthetic_verdict = timed_screen(synthetic_ct(), args.repeat * 5, overhead)
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
        "ct_image_pass_us": round(statistics.median(ct_pass), 1) if ct_pass else None,
        "ct_image_pass_max_us": max(ct_pass) if ct_pass else None,
        "synthetic_ct_us": round(synthetic_s * 1e6, 1),
        "hold_median_us": round(statistics.median(holds), 1) if holds else None,
        "clean_median_ms": round(statistics.median(cleans), 2) if cleans else None,
        "timer_us": round(overhead * 1e6, 2),
        "python_loop_ns": python_loop_ns(),
        "load_at_start": round(load_at_start, 2),
        "rules_deciding": Counter(rule for r in screened for rule in r["rules"]).most_common(),
        "per_file": rows,
    }
    record(BENCH_DIR, result, COLUMNS)
    print({k: result[k] for k in COLUMNS})


if __name__ == "__main__":
    main()
