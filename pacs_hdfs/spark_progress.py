"""Progress of a long Spark action, for a job's progress bar: run the action in the calling
thread (so its Spark job keeps that thread's job group, and a cancel reaches it) while a poller
thread reports the finished tasks of the active stages once a second."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def tracked(sc, report: Callable[[float, str], None], lo: float, hi: float, message: str,
            action: Callable[[], T], unit: str = "tasks") -> T:
    """`action()`, while `report(fraction in [lo, hi], "message: done/total unit")` follows it."""
    stop = threading.Event()

    def poll() -> None:
        tracker = sc.statusTracker()
        while not stop.wait(1.0):
            try:
                stages = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
                done = sum(s.numCompletedTasks for s in stages if s)
                total = sum(s.numTasks for s in stages if s) or 1
                report(lo + (hi - lo) * done / total, f"{message}: {done}/{total} {unit}")
            except Exception:  # noqa: BLE001 - progress is best effort; cancel comes anyway
                pass

    report(lo, message)
    threading.Thread(target=poll, daemon=True).start()
    try:
        return action()
    finally:
        stop.set()
