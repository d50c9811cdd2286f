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


def scratch_settings(name: str, unique: bool = True):
    """Settings for a benchmark's own HDFS root and HBase table prefix, so it never mixes its
    data with the cluster's and can delete everything it stored (`drop_scratch`). Not unique:
    the same namespace every run (for benchmarks that may reuse loaded data)."""
    from pacs_hdfs.settings import Settings
    tag = f"{name}{os.getpid()}{int(time.time()) % 100000}" if unique else name
    return Settings(hdfs_root=f"/bench-{tag}", hbase_table_prefix=f"bench{tag}")


def scratch_env(settings) -> dict:
    """Environment for a `pacs` subprocess working in the same scratch namespace."""
    return {**os.environ, "PACS_HDFS_ROOT": settings.hdfs_root,
            "PACS_HBASE_TABLE_PREFIX": settings.hbase_table_prefix}


def drop_scratch(settings) -> None:
    """Delete a scratch namespace: its HDFS root and the HBase tables of its prefix."""
    from pacs_hdfs.storage import drop_storage
    drop_storage(settings)
