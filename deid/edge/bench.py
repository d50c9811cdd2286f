"""The benchmark hook: the receive path's per-stage cost, alone (no network, no pynetdicom).

`measure(count, size)` runs `Receiver.store` over synthetic CT objects (`size`² 16-bit, invented
PHI) into a throw-away spool and vault in a temp dir, one thread, and returns the per-stage CPU
and wall milliseconds per object. `benchmarks/` and `pacs edge bench` call it; the running edge
reports the same numbers for real traffic in `pacs edge status`.
"""
from __future__ import annotations

import tempfile
import time
from io import BytesIO
from pathlib import Path

from deid.vault import Vault, generate_master_key
from deid.edge.layout import EdgePaths
from deid.edge.receive import Receiver
from deid.edge.spool import Spool


def encoded_ct(count: int, size: int = 512) -> list[bytes]:
    """`count` synthetic CT slices of one series as DICOM file bytes."""
    from pacs_hdfs.dicom.synthetic import ct_series
    out = []
    for ds in ct_series(count, patient_id="BENCH-1", patient_name="Bench^Patient", size=size):
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def measure(count: int = 200, size: int = 512, directory: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        root = Path(tmp)
        vault = Vault.open(root / "vault.bin", master_key=generate_master_key())
        receiver = Receiver(vault.deid_keys(), vault, Spool(EdgePaths(root / "edge")))
        objects = encoded_ct(count, size)
        started = time.perf_counter()
        kinds: dict[str, int] = {}
        for raw in objects:
            kind = receiver.store(raw).kind
            kinds[kind] = kinds.get(kind, 0) + 1
        seconds = time.perf_counter() - started
    return {"objects": count, "object_bytes": len(objects[0]) if objects else 0,
            "outcomes": kinds, "seconds": round(seconds, 3),
            "objects_per_second": round(count / seconds, 1) if seconds else None,
            "stages": receiver.stats.per_object_ms()}
