"""A job's result document as a table (for the result page and the CSV download)."""
from __future__ import annotations

import csv
import io


def _flatten(prefix: str, value, rows: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, rows)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, rows)
    elif isinstance(value, list):
        rows.append([prefix, ", ".join(map(str, value))])
    else:
        rows.append([prefix, value])


def result_table(doc: dict) -> tuple[list[str], list[list]]:
    """(columns, rows) of the numbers in a result document.

    Uses `numbers` when the job wrote one (else the whole document without `provenance`). A list
    of flat records becomes one row per record; anything else becomes (name, value) rows."""
    data = doc.get("numbers", {k: v for k, v in doc.items() if k != "provenance"})
    if (isinstance(data, list) and data and all(isinstance(r, dict) for r in data)
            and all(not isinstance(v, (dict, list)) for r in data for v in r.values())):
        columns = list(dict.fromkeys(k for r in data for k in r))
        return columns, [[r.get(c, "") for c in columns] for r in data]
    rows: list = []
    _flatten("", data, rows)
    return ["name", "value"], rows


def to_csv(columns: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()
