"""Shared by the benchmarks: host facts, JSON results and a markdown table row per run."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def host_facts() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                          if l.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        mem_kb = 0
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "load_avg": os.getloadavg()[0]}


def record(bench_dir: Path, result: dict, columns: list[str]) -> None:
    """Write results.json (latest run) and append one row to RESULTS.md."""
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "host": host_facts(), **result}
    (bench_dir / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = bench_dir / "RESULTS.md"
    if not md.exists():
        md.write_text("| date | " + " | ".join(columns) + " | load avg |\n"
                      + "|---" * (len(columns) + 2) + "|\n")
    row = [result["date"], *(str(result.get(c, "")) for c in columns),
           f"{result['host']['load_avg']:.1f}"]
    with md.open("a") as f:
        f.write("| " + " | ".join(row) + " |\n")
