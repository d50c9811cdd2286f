"""The forwarder in its own process, so shipping the spool does not take GIL time from the SCP.

Forwarding costs about 1.5 ms of CPU per 512 KB object in the process that does it (reading
files, building the multipart body, TLS, bookkeeping). In the SCP's process that is time the
association threads wait for the GIL. `ForwarderProcess` runs the same `Forwarder` thread in a
spawned child: the SCP process only sends it "new object in the spool" notes over a queue (the
child also rescans `spool/` itself, so a lost note only delays an object by a rescan). The child
writes `forwarder.json` for `pacs edge status`, logs to the edge log, exits when the edge dies
(kill -9 included: it watches its parent), and is restarted by the edge if it dies alone.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue as queue_mod
from pathlib import Path

from deid.edge.forwarder import Forwarder, Target

log = logging.getLogger(__name__)


def _main(root: str, target: Target, name: str, log_path: str | None, notes, stop,
          parent: int) -> None:
    from deid.edge.layout import EdgePaths
    from deid.edge.spool import Spool
    from deid.edge.stages import StageStats
    from deid.edge.state import EdgeState
    from deid.edge.workers import exit_with_parent
    exit_with_parent(parent)
    if log_path:
        from pacs_hdfs.dicom import scp_logging
        scp_logging.setup(Path(log_path), service="edge-forwarder")
    forwarder = Forwarder(Spool(EdgePaths(Path(root))), target,
                          EdgeState(name, target.url, StageStats()))
    forwarder.start()
    try:
        while not stop.is_set():
            try:
                note = notes.get(timeout=0.5)
            except queue_mod.Empty:
                continue
            if note is None:
                break
            forwarder.notify(*note)
    finally:
        forwarder.stop()


class ForwarderProcess:
    """`notify` and `stop` like `Forwarder`, the work done in a child process."""

    def __init__(self, root: Path, target: Target, name: str, log_path: Path | None):
        self._ctx = multiprocessing.get_context("spawn")
        self._args = (str(root), target, name, str(log_path) if log_path else None)
        self._stopping = False
        self._start()

    def _start(self) -> None:
        # a Queue (not SimpleQueue): put() never blocks the C-STORE handler, even if the child
        # is gone; its feeder thread buffers until the pipe drains
        self._notes = self._ctx.Queue()
        self._stop = self._ctx.Event()
        self._proc = self._ctx.Process(
            target=_main, name="edge-forwarder",
            args=(*self._args, self._notes, self._stop, os.getpid()))
        self._proc.start()

    def notify(self, sop_uid: str, size: int) -> None:
        self._notes.put((sop_uid, size))

    def check(self) -> None:
        """Restart the child if it died on its own (called about once a second)."""
        if not self._stopping and not self._proc.is_alive():
            log.error("the forwarder process exited (code %s); restarting it",
                      self._proc.exitcode)
            self._notes.close()
            self._start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping = True
        self._stop.set()
        try:
            self._notes.put(None)
        except (ValueError, OSError):
            pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._notes.close()
        self._notes.join_thread()
