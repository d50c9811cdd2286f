"""Receive in worker processes, so de-identification does not share one core with pynetdicom.

pynetdicom serves associations in threads of one process, and the receive path (parse,
validate, de-identify, encode) is pure Python: under the GIL, four associations then use one
core. With `edge_workers = N` the SCP threads only take the bytes off the wire and hand them to
one of N processes (`ProcessPoolExecutor`, spawned: no fork of a threaded process), each with
its own `Receiver` on the same vault and spool and the same de-identification profiles (built
once by the edge and handed over; the calling AE travels with each object). That is safe across processes: the spool
publishes with `os.link` (one atomic "create if absent"), the vault locks with `flock` and
re-reads a file another process changed.

A worker's log lines are captured while it works and handed back with the receipt; the SCP
thread logs them, so they get the association's tag and go through the one logging setup.
A worker that dies (a crash in a codec) breaks the pool: that object is answered 0xA700 (the
modality retries it), the pool is rebuilt, the next objects go on.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from deid.edge.receive import Receipt, Receiver
from deid.profiles import DeidProfiles
from pacs_hdfs.logs import OUR_PACKAGES

log = logging.getLogger(__name__)

_receiver: Receiver | None = None
_captured: list[tuple[str, int, str]] = []


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _captured.append((record.name, record.levelno, record.getMessage()))


def exit_with_parent(parent: int) -> None:
    """A child whose edge died (kill -9) exits too. A worker cannot learn it from its task
    queue: every worker holds both ends of that pipe, so the queue never reports end-of-file."""
    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watch, name="edge-parent-watch", daemon=True).start()


def _init(vault_path: str, key_path: str, edge_root: str, parent: int,
          profiles: DeidProfiles | None = None) -> None:
    global _receiver
    exit_with_parent(parent)
    from deid.edge.layout import EdgePaths
    from deid.edge.spool import Spool
    from deid.vault_access import open_vault
    vault = open_vault(Path(vault_path), Path(key_path))
    _receiver = Receiver(vault.deid_keys(), vault, Spool(EdgePaths(Path(edge_root))),
                         profiles=profiles)
    # our lines are replayed in the edge process (`WorkerPool.store`), which writes its log
    root = logging.getLogger()
    root.handlers[:] = [_Capture()]
    root.setLevel(logging.WARNING)
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(logging.INFO)


def _store(raw: bytes, calling_ae: str = "") -> tuple[Receipt, list[tuple[str, int, str]]]:
    _captured.clear()
    receipt = _receiver.store(raw, calling_ae)
    return receipt, list(_captured)


def _ready() -> bool:
    return _receiver is not None


class WorkerPool:
    """`store(raw, calling_ae)` like `Receiver.store`, run in one of `n` processes."""

    def __init__(self, n: int, vault_path: Path, key_path: Path, edge_root: Path,
                 profiles: DeidProfiles | None = None):
        self.n = n
        self._args = (str(vault_path), str(key_path), str(edge_root), os.getpid(), profiles)
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.n, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init, initargs=self._args)
        # start every worker now (imports, vault) rather than on the first C-STOREs
        for f in [pool.submit(_ready) for _ in range(self.n * 2)]:
            f.result(timeout=120)
        return pool

    def store(self, raw: bytes, calling_ae: str = "") -> Receipt:
        pool = self._pool
        try:
            receipt, lines = pool.submit(_store, raw, calling_ae).result()
        except BrokenProcessPool:
            log.error("a receive worker died; answering 0xA700 and restarting the workers")
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
            return Receipt("spool_unavailable")
        for name, level, message in lines:
            logging.getLogger(name).log(level, message)
        return receipt

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
