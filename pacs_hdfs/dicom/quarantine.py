"""Admin review of quarantined objects (possible burned-in PHI): list, show, release, reject.

A held object is stored but invisible to Q/R. Release clears the instance's `l:quarantine`
flag and writes its series/study/subject rows and counters (as ingest does for clean objects);
reject keeps it invisible for good (its bytes stay as unreferenced container space).
"""
from __future__ import annotations

import time

from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.dicom.commit import add_counters
from pacs_hdfs.schema import row_key


class QuarantineError(LookupError):
    pass


def _entry(sop: str, row: dict[bytes, bytes]) -> dict:
    return {"sop_uid": sop, "state": row.get(b"q:state", b"").decode(),
            "reason": row.get(b"q:reason", b"").decode(),
            "time": int(row.get(b"q:time", b"0")),
            "study_uid": row.get(b"q:key", b"").split(b"\x00")[0].decode()}


def list_entries(hbase, state: str | None = "held") -> list[dict]:
    out = [_entry(k.decode(), r) for k, r in hbase.scan("quarantine")]
    return [e for e in out if state is None or e["state"] == state]


def show(hbase, sop: str) -> dict:
    row = hbase.get("quarantine", row_key(sop))
    if not row:
        raise QuarantineError(f"{sop} is not in quarantine")
    inst = hbase.get("instance", row[b"q:key"])
    return {**_entry(sop, row), "attributes": ix.decode_attributes(inst),
            "location": {k[2:].decode(): v.decode() for k, v in inst.items()
                         if k.startswith(b"l:")}}


def _set_state(hbase, sop: str, state: str) -> dict[bytes, bytes]:
    row = hbase.get("quarantine", row_key(sop))
    if not row:
        raise QuarantineError(f"{sop} is not in quarantine")
    if row[b"q:state"] != b"held":
        raise QuarantineError(f"{sop} is already {row[b'q:state'].decode()}")
    hbase.put("quarantine", row_key(sop), {b"q:state": state.encode(),
                                            b"q:decided": str(int(time.time())).encode()})
    return row


def release(hbase, sop: str) -> dict:
    """Make a held object visible to Q/R."""
    row = _set_state(hbase, sop, "released")
    inst = hbase.get("instance", row[b"q:key"])
    attrs = ix.decode_attributes(inst)
    for table, (key, cols) in ix.parent_rows(attrs).items():
        hbase.put(table, key, cols)
    add_counters(hbase, [(attrs, int(inst[b"l:length"]))])
    hbase.delete("instance", row[b"q:key"], columns=[b"l:quarantine"])
    return {"sop_uid": sop, "state": "released"}


def reject(hbase, sop: str) -> dict:
    """Keep a held object invisible for good."""
    _set_state(hbase, sop, "rejected")
    return {"sop_uid": sop, "state": "rejected"}
