"""What the running edge reports, and `pacs edge status`.

The SCP process keeps its counters (receive outcomes, stage timings) in an `EdgeState` and
writes them to `state.json` about once a second; the forwarder process keeps its own
(forwarded, rate, state, last error) and writes `forwarder.json` (atomically; not fsync'd, they
are only reports). `status()` is what `pacs edge status [--json]` prints: it reads both and
counts the folders itself, so it works from any process, while the edge runs or not.

`status()` JSON keys (stable; scripts and tests parse them):

| key | meaning |
|---|---|
| `edge` | `edge_name` |
| `running` | an edge process holds this home's lock |
| `pid` | the running edge's pid, else null |
| `mdc_url` | where the forwarder sends |
| `spool.objects`, `spool.bytes`, `spool.oldest_age_seconds` | waiting to be forwarded (age null when empty) |
| `quarantine.objects`, `quarantine.bytes` | held for review |
| `rejected.objects` | refused for good by the MDC (see `rejected/*.json`) |
| `received` | counts since the edge started, by outcome (`stored`, `held`, `duplicate`, `refused`, `malformed`, `conflict`, `deid_failed`, `vault_unavailable`, `spool_unavailable`) |
| `forwarded.objects`, `forwarded.bytes` | acknowledged by the MDC since the edge started |
| `forwarded.last_minute_objects`, `forwarded.rate_per_second` | forward rate over the last minute |
| `forwarder.state` | `idle`, `sending`, `backoff` or `stopped` |
| `forwarder.retry_in_seconds` | seconds until the next attempt while backing off, else 0 |
| `last_error` | `{"time", "message"}` of the forwarder's last failure, or null |
| `last_success` | time (epoch seconds) of the last acknowledged batch, or null |
| `stages` | per receive stage (`parse`, `validate`, `deidentify`, `encode`, `vault`, `fsync`): `cpu_ms`, `wall_ms` per object and `objects` |
| `state_age_seconds` | how old `state.json` is (null if never written) |
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections import deque

from deid.edge import durable
from deid.edge.layout import SUFFIX, EdgePaths
from deid.edge.stages import STAGES, StageStats

RATE_WINDOW = 60.0


class EdgeState:
    """The running edge's counters (thread-safe)."""

    def __init__(self, name: str, mdc_url: str, stats: StageStats):
        self._lock = threading.Lock()
        self.name, self.mdc_url, self.stats = name, mdc_url, stats
        self.started = time.time()
        self.received: dict[str, int] = {}
        self.forwarded_objects = self.forwarded_bytes = 0
        self._recent: deque[tuple[float, int, int]] = deque()
        self.forwarder_state = "idle"
        self.retry_at = 0.0
        self.last_error: dict | None = None
        self.last_success: float | None = None

    def count_received(self, kind: str) -> None:
        with self._lock:
            self.received[kind] = self.received.get(kind, 0) + 1

    def forwarded(self, objects: int, nbytes: int) -> None:
        now = time.time()
        with self._lock:
            self.forwarded_objects += objects
            self.forwarded_bytes += nbytes
            self._recent.append((now, objects, nbytes))
            self.last_success = now

    def failed(self, message: str) -> None:
        with self._lock:
            self.last_error = {"time": time.time(), "message": message}

    def forwarder(self, state: str, retry_at: float = 0.0) -> None:
        with self._lock:
            self.forwarder_state, self.retry_at = state, retry_at

    def snapshot(self) -> dict:
        now = time.time()
        with self._lock:
            while self._recent and self._recent[0][0] < now - RATE_WINDOW:
                self._recent.popleft()
            minute = sum(n for _, n, _ in self._recent)
            window = min(RATE_WINDOW, max(now - self.started, 1.0))
            return {
                "edge": self.name, "pid": os.getpid(), "mdc_url": self.mdc_url,
                "started": self.started, "written": now,
                "received": dict(self.received),
                "forwarded": {"objects": self.forwarded_objects, "bytes": self.forwarded_bytes,
                              "last_minute_objects": minute,
                              "rate_per_second": round(minute / window, 2)},
                "forwarder": {"state": self.forwarder_state,
                              "retry_in_seconds": round(max(0.0, self.retry_at - now), 1)},
                "last_error": self.last_error, "last_success": self.last_success,
                "stages": self.stats.per_object_ms(),
            }

    def write(self, path) -> None:
        """The snapshot to `path` (`EdgePaths.state` from the SCP process, `.forwarder_state`
        from the forwarder), atomically, not fsync'd: it is only a report."""
        durable.write_json(path, self.snapshot(), durable=False)


def _folder(path, with_age: bool = False) -> dict:
    objects = size = 0
    oldest = None
    try:
        with os.scandir(path) as it:
            for e in it:
                if not e.name.endswith(SUFFIX):
                    continue
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue
                objects += 1
                size += st.st_size
                oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
    except FileNotFoundError:
        pass
    out = {"objects": objects, "bytes": size}
    if with_age:
        out["oldest_age_seconds"] = round(time.time() - oldest, 1) if oldest else None
    return out


def lock_held(paths: EdgePaths) -> bool:
    """Does a running edge hold this home's lock?"""
    try:
        fd = os.open(paths.lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _read(path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def status(paths: EdgePaths, name: str, mdc_url: str) -> dict:
    """`pacs edge status --json` (keys in the module docstring)."""
    saved, sent = _read(paths.state), _read(paths.forwarder_state)
    running = lock_held(paths)
    fwd = sent.get("forwarded") or {}
    forwarder = sent.get("forwarder") or {}
    age = round(time.time() - saved["written"], 1) if "written" in saved else None
    if not running:  # a report of a stopped edge: no current rate
        fwd = {**fwd, "last_minute_objects": 0, "rate_per_second": 0.0}
        forwarder = {"state": "stopped", "retry_in_seconds": 0}
    saved_stages = saved.get("stages") or {}
    empty = {"cpu_ms": None, "wall_ms": None, "objects": 0}
    stages = {s: saved_stages.get(s, empty) for s in STAGES}  # in pipeline order
    return {
        "edge": name,
        "running": running,
        "pid": saved.get("pid") if running else None,
        "mdc_url": saved.get("mdc_url", mdc_url) if running else mdc_url,
        "spool": _folder(paths.spool, with_age=True),
        "quarantine": _folder(paths.quarantine),
        "rejected": {"objects": _folder(paths.rejected)["objects"]},
        "received": saved.get("received", {}),
        "forwarded": {"objects": fwd.get("objects", 0), "bytes": fwd.get("bytes", 0),
                      "last_minute_objects": fwd.get("last_minute_objects", 0),
                      "rate_per_second": fwd.get("rate_per_second", 0.0)},
        "forwarder": {"state": forwarder.get("state", "stopped"),
                      "retry_in_seconds": forwarder.get("retry_in_seconds", 0)},
        "last_error": sent.get("last_error"),
        "last_success": sent.get("last_success"),
        "stages": stages,
        "state_age_seconds": age,
    }
