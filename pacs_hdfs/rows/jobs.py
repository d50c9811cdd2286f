"""The `jobs` table: the job service's records (see analytics_jobs/jobs.py).

Row keys: `job/<id>` (one job; ids are time-ordered), `queue/<id>` (a marker while the job
waits), `runner/<host>` (a runner's heartbeat). Family `j`: one column per field, `j:<field>`;
the fields in `JSON_FIELDS` hold JSON, the others text. A queue marker holds `j:kind`.
"""
from __future__ import annotations

import json

from pacs_hdfs.rows.cells import Row, column

TABLE = "jobs"
FAMILY = b"j"
JOB, QUEUE, RUNNER = "job/", "queue/", "runner/"
KIND, STATE, CANCEL_REQUESTED = b"j:kind", b"j:state", b"j:cancel_requested"
JSON_FIELDS = frozenset({"params", "artifacts", "cancel_requested", "runtime_s", "progress"})


def job_key(job_id: str) -> bytes:
    return f"{JOB}{job_id}".encode()


def queue_key(job_id: str) -> bytes:
    return f"{QUEUE}{job_id}".encode()


def runner_key(host: str) -> bytes:
    return f"{RUNNER}{host}".encode()


def id_of(k: bytes) -> str:
    """The job id (or host) of a `job/`, `queue/` or `runner/` key."""
    return k.decode().split("/", 1)[1]


def field_column(name: str) -> bytes:
    return column(FAMILY, name)


def encode(fields: dict) -> Row:
    """Cells of a job record's fields (name -> value)."""
    return {field_column(k): (json.dumps(v) if k in JSON_FIELDS else str(v)).encode()
            for k, v in fields.items()}


def decode(row: Row) -> dict:
    """name -> value of every field cell of a job row (JSON fields parsed)."""
    out = {}
    for col, raw in row.items():
        k = col.decode().split(":", 1)[1]
        out[k] = json.loads(raw) if k in JSON_FIELDS else raw.decode()
    return out


def encode_queued(kind: str) -> Row:
    return {KIND: kind.encode()}


def encode_cancel() -> Row:
    return {CANCEL_REQUESTED: b"true"}


def cancel_requested(row: Row) -> bool:
    return row.get(CANCEL_REQUESTED) == b"true"


def encode_beat(info: dict[str, str]) -> Row:
    """A runner heartbeat's cells (all text)."""
    return {field_column(k): str(v).encode() for k, v in info.items()}


def decode_beat(row: Row) -> dict[str, str]:
    return {c.decode().split(":", 1)[1]: v.decode() for c, v in row.items()}
