"""Per-object cost of each receive stage: CPU time of the receiving thread and wall time.

`Clock` times one object (`with clock.stage("parse"): ...`); `StageStats` adds up many clocks
(thread-safe) and reports milliseconds per object. CPU is `time.thread_time()` (this thread
only, so four associations running at once do not count each other), wall is
`time.perf_counter()`; for `fsync` the wall time is the interesting one (waiting for the disk
costs no CPU).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

#: the receive stages, in order (the keys of `pacs edge status --json` "stages")
STAGES = ("parse", "validate", "deidentify", "encode", "vault", "fsync")


class Clock:
    """Stage timings of one object: {stage: [cpu_seconds, wall_seconds]}."""

    __slots__ = ("times",)

    def __init__(self):
        self.times: dict[str, list[float]] = {}

    @contextmanager
    def stage(self, name: str):
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            yield
        finally:
            t = self.times.setdefault(name, [0.0, 0.0])
            t[0] += time.thread_time() - cpu
            t[1] += time.perf_counter() - wall


class StageStats:
    """Totals over every object received since start (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.objects = 0
        self._cpu = dict.fromkeys(STAGES, 0.0)
        self._wall = dict.fromkeys(STAGES, 0.0)
        self._counts = dict.fromkeys(STAGES, 0)

    def add(self, times: dict[str, list[float]]) -> None:
        with self._lock:
            self.objects += 1
            for name, (cpu, wall) in times.items():
                self._cpu[name] = self._cpu.get(name, 0.0) + cpu
                self._wall[name] = self._wall.get(name, 0.0) + wall
                self._counts[name] = self._counts.get(name, 0) + 1

    def per_object_ms(self) -> dict[str, dict[str, float]]:
        """{stage: {"cpu_ms": .., "wall_ms": .., "objects": n}}, averaged over the objects that
        reached the stage (a refused object stops after validate)."""
        with self._lock:
            out = {}
            for name in self._cpu:
                n = self._counts.get(name, 0)
                out[name] = {"cpu_ms": round(self._cpu[name] / n * 1000, 3) if n else None,
                             "wall_ms": round(self._wall[name] / n * 1000, 3) if n else None,
                             "objects": n}
            return out
