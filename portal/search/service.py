"""``SharedSearch``: what a portal process holds for case search when the index is shared.

Every portal process opens the shared index (``portal.search.mapped``: memory-mapped numpy
segments) read-only. One
process at a time is also the indexer: it holds Tantivy's writer lock and tails the HBase feed
into the index every ``POLL_S`` (``feed.catch_up``, the same overlap rules as the in-memory
index). The others try to take the lock every ``RETRY_S``, so when the indexing process stops
another one takes over. `pacs search index` runs the indexer alone, without a web server.

Same face as ``feed.LiveIndex`` (``start``, ``ready``, ``error``, ``index``, ``status``,
``lag_metrics``), so the route and the CLI do not change.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from pacs_hdfs import clients
from portal.search import feed
from portal.search.index import CaseIndex
from portal.search.mapped import IndexBusy, MappedIndex, MappedIndexer

POLL_S = 1.0          # feed poll: a stored visit is searchable within about this + one commit
RETRY_S = 10.0        # a reader tries this often to become the indexer
HEARTBEAT = "indexer.json"
RELEASE = "release"       # written by `pacs search rebuild` (portal.search.rebuild)
log = logging.getLogger(__name__)


def index_dir(settings) -> Path:
    """The shared index of this deployment (one per HBase table prefix, so scratch
    namespaces of benchmarks and tests never mix with the real one)."""
    return settings.path("search", f"index-{settings.hbase_table_prefix}")


class SharedSearch:
    def __init__(self, settings, hbase=None, directory: Path | None = None,
                 poll_s: float = POLL_S, indexing: bool = True):
        self.settings, self.poll_s, self.indexing = settings, poll_s, indexing
        self.dir = Path(directory) if directory else index_dir(settings)
        self._hbase = hbase
        self.reader = None
        self.indexer = None
        self.ready = threading.Event()
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._empty = CaseIndex()

    @property
    def hbase(self):
        return self._hbase if self._hbase is not None else clients.hbase(self.settings)

    def start(self) -> "SharedSearch":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shared-search", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.indexer is not None:
            self.indexer.close()
            self.indexer = None

    @property
    def index(self):
        """The reader, at the latest commit (what ``query.resolve`` and the route search)."""
        if self.reader is None:
            self._open_reader()
        if self.reader is None:
            return self._empty
        self.reader.refresh()
        if self.reader.stale:                        # rebuilt and swapped: reopen
            self.reader = None
            self._open_reader()
            return self.reader if self.reader is not None else self._empty
        return self.reader

    # --- background: become the indexer if nobody is, keep the index fresh ----------------
    def _run(self) -> None:
        tried = 0.0
        while not self._stop.is_set():
            try:
                if self.indexer is not None and (self.dir / RELEASE).exists():
                    log.info("case index: a rebuild asks for the index; indexing stops")
                    self.indexer.close()           # `pacs search rebuild` swaps it
                    self.indexer, tried = None, 0.0  # and takes the new one at once after
                if (self.indexer is None and self.indexing and not (self.dir / RELEASE).exists()
                        and time.monotonic() - tried > RETRY_S):
                    tried = time.monotonic()
                    self._become_indexer()
                if self.indexer is not None:
                    self.refresh()
                elif self._open_reader():
                    self.ready.set()
                self.error = ""
            except Exception as exc:  # noqa: BLE001 - keep serving what is indexed; retry
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("shared case index: %s", self.error)
            self._stop.wait(self.poll_s)

    def _become_indexer(self) -> None:
        try:
            self.indexer = MappedIndexer(self.dir)
            log.info("case index: this process indexes the feed into %s (position %d)",
                     self.dir, self.indexer.position)
        except IndexBusy:
            self.indexer = None

    def _open_reader(self) -> bool:
        if self.reader is None and MappedIndex.exists(self.dir):
            self.reader = MappedIndex(self.dir)
        return self.reader is not None

    def refresh(self) -> int:
        """(The indexer) apply the feed since the index's position; write the heartbeat."""
        t0 = time.perf_counter()
        changed = feed.catch_up(self.indexer, self.hbase)
        beat = self.dir / f"{HEARTBEAT}.tmp"
        beat.write_text(json.dumps({"caught_up_at": time.time(), "pid": os.getpid(),
                                    "position": self.indexer.position}))
        os.replace(beat, self.dir / HEARTBEAT)
        if changed:
            log.info("case index: %d visits indexed in %.0f ms", changed,
                     (time.perf_counter() - t0) * 1000)
        self._open_reader()
        self.ready.set()
        return changed

    # --- status -----------------------------------------------------------------------------
    def heartbeat(self) -> dict:
        try:
            return json.loads((self.dir / HEARTBEAT).read_text())
        except (OSError, ValueError):
            return {}

    def status(self) -> dict:
        reader = self.reader
        return {"ready": self.ready.is_set(), "visits": reader.size if reader else 0,
                "patients": reader.patient_count if reader else 0,
                "position": self.heartbeat().get("position", 0), "error": self.error,
                "role": "indexer" if self.indexer is not None else "reader"}

    def lag_metrics(self) -> dict:
        """For `/metrics`: seconds since the indexer (whichever process it is) last caught up
        with the feed; a visit acknowledged by the gateway is searchable at most this later."""
        at = self.heartbeat().get("caught_up_at")
        lag = time.time() - at if at else float("inf")
        return {"pacs_search_index_lag_seconds": ("seconds since the case index last caught "
                                                  "up with the visit feed", (), {(): lag}),
                "pacs_search_index_visits": ("visits in the case index", (),
                                             {(): self.reader.size if self.reader else 0})}
