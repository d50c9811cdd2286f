"""Build ``exam_lines.jsonl`` (the PHI screen's labelled test set) from the marked-up sources.

The sources ``lines_pl.txt``, ``lines_en.txt`` (the development set) and ``lines_heldout.txt``
(written after the screen was tuned, id prefix ``ho-``) hold one exam-text line per entry as
``KIND| text`` with every PHI span marked ``[[CATEGORY:text]]``; writing spans inline keeps the
offsets right by construction. Run ``python tests/data/phi_screen/build.py`` after editing a
source; ``tests/unit/test_phi_screen.py`` checks that the JSONL is up to date.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {"pl": HERE / "lines_pl.txt", "en": HERE / "lines_en.txt",
           "ho": HERE / "lines_heldout.txt"}
OUTPUT = HERE / "exam_lines.jsonl"
KINDS = {"R": "radiology", "L": "lab", "D": "clinical note", "N": "nursing/other"}
CATEGORIES = ("NAME", "NATIONAL_ID", "ID", "PHONE", "EMAIL", "POSTAL_CODE", "DATE", "ADDRESS",
              "AGE")
_MARK = re.compile(r"\[\[([A-Z_]+):(.+?)\]\]")


def parse_line(marked: str) -> tuple[str, list[dict]]:
    """'Pani [[NAME:Nowak]] ...' -> ('Pani Nowak ...', [{start, end, category, text}])."""
    text, spans, pos = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        plain = marked[pos:m.start()]
        text.append(plain)
        length += len(plain)
        category, value = m.group(1), m.group(2)
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r} in {marked!r}")
        spans.append({"start": length, "end": length + len(value), "category": category,
                      "text": value})
        text.append(value)
        length += len(value)
        pos = m.end()
    text.append(marked[pos:])
    return "".join(text), spans


def records() -> list[dict]:
    out = []
    for lang, path in SOURCES.items():
        number = 0
        for raw in path.read_text(encoding="utf-8").splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            kind, _, marked = raw.partition("| ")
            number += 1
            text, spans = parse_line(marked)
            out.append({"id": f"{lang}-{number:03d}", "lang": lang, "kind": KINDS[kind],
                        "set": "heldout" if lang == "ho" else "dev",
                        "text": text, "spans": spans})
    return out


def render() -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records())


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    rows = records()
    print(f"{len(rows)} lines, {sum(bool(r['spans']) for r in rows)} with PHI, "
          f"{sum(len(r['spans']) for r in rows)} spans -> {OUTPUT}")
