"""Job records in HBase: the single source of truth for the job service, CLI and portal.

Row keys in the `jobs` table:
- `job/<id>`   one row per job (family `j`), ids are time-ordered (`YYYYmmdd-HHMMSS-xxxxxx`);
- `queue/<id>` a marker while the job waits; the runner deletes it when it takes the job;
- `runner/<host>` a live runner's heartbeat (epoch seconds, pid, master), every few seconds, so
  a submit on any host can tell whether a runner will take its job (`embedded = false`).

States: queued -> running -> succeeded | failed (with `error`) | cancelled.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field

from pacs_hdfs.hbase_store import HBaseStore

TABLE = "jobs"
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class JobRecord:
    id: str
    kind: str
    params: dict
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    user: str = ""
    submitted: str = field(default_factory=now_iso)
    started: str = ""
    finished: str = ""
    error: str = ""
    result_path: str = ""
    artifacts: dict = field(default_factory=dict)   # name -> HDFS path
    cancel_requested: bool = False
    runtime_s: float | None = None
    app_id: str = ""    # the Spark application that ran it (YARN: application_..., for kill)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


_JSON_FIELDS = {"params", "artifacts", "cancel_requested", "runtime_s", "progress"}


def _encode(rec: JobRecord, fields: list[str] | None = None) -> dict[bytes, bytes]:
    d = rec.to_dict()
    out = {}
    for k in fields or list(d):
        v = d[k]
        out[f"j:{k}".encode()] = (json.dumps(v) if k in _JSON_FIELDS else str(v)).encode()
    return out


def _decode(row: dict[bytes, bytes]) -> JobRecord:
    d = {}
    for col, raw in row.items():
        k = col.decode().split(":", 1)[1]
        d[k] = json.loads(raw) if k in _JSON_FIELDS else raw.decode()
    known = JobRecord.__dataclass_fields__   # a column a newer release added is skipped
    return JobRecord(**{k: v for k, v in d.items() if k in known})


class JobStore:
    def __init__(self, hbase: HBaseStore):
        self.hb = hbase

    def create(self, rec: JobRecord) -> None:
        self.hb.put(TABLE, f"job/{rec.id}".encode(), _encode(rec))
        self.hb.put(TABLE, f"queue/{rec.id}".encode(), {b"j:kind": rec.kind.encode()})

    def get(self, job_id: str) -> JobRecord | None:
        row = self.hb.get(TABLE, f"job/{job_id}".encode())
        return _decode(row) if row else None

    def update(self, rec: JobRecord, *fields: str) -> None:
        self.hb.put(TABLE, f"job/{rec.id}".encode(), _encode(rec, list(fields) or None))

    def queued_ids(self) -> list[str]:
        return [k.decode().split("/", 1)[1] for k, _ in self.hb.scan(TABLE, row_prefix=b"queue/")]

    def dequeue(self, job_id: str) -> None:
        self.hb.delete(TABLE, f"queue/{job_id}".encode())

    def list(self, limit: int = 50) -> list[JobRecord]:
        rows = self.hb.scan(TABLE, row_prefix=b"job/")
        return [_decode(r) for _, r in reversed(rows)][:limit]

    def state_counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> number of jobs, from the kind and state columns only (`/metrics`)."""
        counts: dict[tuple[str, str], int] = {}
        for _, row in self.hb.scan(TABLE, row_prefix=b"job/", columns=[b"j:kind", b"j:state"]):
            key = (row.get(b"j:kind", b"?").decode(), row.get(b"j:state", b"?").decode())
            counts[key] = counts.get(key, 0) + 1
        return counts

    def request_cancel(self, job_id: str) -> None:
        self.hb.put(TABLE, f"job/{job_id}".encode(), {b"j:cancel_requested": b"true"})

    def beat(self, host: str, info: dict[str, str]) -> None:
        """A runner's heartbeat (`runner/<host>`)."""
        self.hb.put(TABLE, f"runner/{host}".encode(),
                    {f"j:{k}".encode(): str(v).encode() for k, v in info.items()})

    def runners(self) -> list[dict[str, str]]:
        """Every runner heartbeat ever written (check `beat` for freshness)."""
        return [{"host": key.decode().split("/", 1)[1],
                 **{c.decode().split(":", 1)[1]: v.decode() for c, v in row.items()}}
                for key, row in self.hb.scan(TABLE, row_prefix=b"runner/")]

    def cancel_requested(self, job_id: str) -> bool:
        row = self.hb.get(TABLE, f"job/{job_id}".encode(), columns=[b"j:cancel_requested"])
        return row.get(b"j:cancel_requested") == b"true"
