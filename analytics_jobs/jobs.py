"""Job records in HBase: the single source of truth for the job service, CLI and portal.

Row keys in the `jobs` table (layout: `pacs_hdfs.rows.jobs`):
- `job/<id>`   one row per job (family `j`), ids are time-ordered (`YYYYmmdd-HHMMSS-xxxxxx`);
- `queue/<id>` a marker while the job waits; the runner deletes it when it takes the job;
- `runner/<host>` a live runner's heartbeat (epoch seconds, pid, master), every few seconds, so
  a submit on any host can tell whether a runner will take its job (`embedded = false`).

States: queued -> running -> succeeded | failed (with `error`) | cancelled.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field

from pacs_hdfs.hbase_store import HBaseStore
from pacs_hdfs.rows import jobs as job_rows

TABLE = job_rows.TABLE
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


def _encode(rec: JobRecord, fields: list[str] | None = None) -> dict[bytes, bytes]:
    d = rec.to_dict()
    return job_rows.encode({k: d[k] for k in fields or list(d)})


def _decode(row: dict[bytes, bytes]) -> JobRecord:
    d = job_rows.decode(row)
    known = JobRecord.__dataclass_fields__   # a column a newer release added is skipped
    return JobRecord(**{k: v for k, v in d.items() if k in known})


class JobStore:
    def __init__(self, hbase: HBaseStore):
        self.hb = hbase

    def create(self, rec: JobRecord) -> None:
        self.hb.put(TABLE, job_rows.job_key(rec.id), _encode(rec))
        self.hb.put(TABLE, job_rows.queue_key(rec.id), job_rows.encode_queued(rec.kind))

    def get(self, job_id: str) -> JobRecord | None:
        row = self.hb.get(TABLE, job_rows.job_key(job_id))
        return _decode(row) if row else None

    def update(self, rec: JobRecord, *fields: str) -> None:
        self.hb.put(TABLE, job_rows.job_key(rec.id), _encode(rec, list(fields) or None))

    def queued_ids(self) -> list[str]:
        return [job_rows.id_of(k)
                for k, _ in self.hb.scan(TABLE, row_prefix=job_rows.QUEUE.encode())]

    def dequeue(self, job_id: str) -> None:
        self.hb.delete(TABLE, job_rows.queue_key(job_id))

    def list(self, limit: int = 50) -> list[JobRecord]:
        rows = self.hb.scan(TABLE, row_prefix=job_rows.JOB.encode())
        return [_decode(r) for _, r in reversed(rows)][:limit]

    def state_counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> number of jobs, from the kind and state columns only (`/metrics`)."""
        counts: dict[tuple[str, str], int] = {}
        for _, row in self.hb.scan(TABLE, row_prefix=job_rows.JOB.encode(),
                                   columns=[job_rows.KIND, job_rows.STATE]):
            key = (row.get(job_rows.KIND, b"?").decode(), row.get(job_rows.STATE, b"?").decode())
            counts[key] = counts.get(key, 0) + 1
        return counts

    def request_cancel(self, job_id: str) -> None:
        self.hb.put(TABLE, job_rows.job_key(job_id), job_rows.encode_cancel())

    def beat(self, host: str, info: dict[str, str]) -> None:
        """A runner's heartbeat (`runner/<host>`)."""
        self.hb.put(TABLE, job_rows.runner_key(host), job_rows.encode_beat(info))

    def runners(self) -> list[dict[str, str]]:
        """Every runner heartbeat ever written (check `beat` for freshness)."""
        return [{"host": job_rows.id_of(key), **job_rows.decode_beat(row)}
                for key, row in self.hb.scan(TABLE, row_prefix=job_rows.RUNNER.encode())]

    def cancel_requested(self, job_id: str) -> bool:
        row = self.hb.get(TABLE, job_rows.job_key(job_id), columns=[job_rows.CANCEL_REQUESTED])
        return job_rows.cancel_requested(row)
