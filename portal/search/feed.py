"""Keeping a ``CaseIndex`` in step with HBase: snapshot from HDFS, then tail the feed rows.

Feed rows are keyed by the millisecond they were written, so a reader that re-reads the last
``OVERLAP_MS`` on every poll cannot miss a row a slower writer put a little earlier; ``apply``
ignores what it already has. A snapshot of the merged index is written to HDFS after a long
replay and then every ``SNAPSHOT_EVERY`` new visits, so a restart replays only the tail.
"""
from __future__ import annotations

import json
import logging
import threading
import time

from hl7_gateway.store_rows import FEED, feed_key
from pacs_hdfs import clients
from pacs_hdfs.schema import SEP
from portal.search.index import CaseIndex

OVERLAP_MS = 10_000
CHUNK = 20_000
POLL_S = 2.0
SNAPSHOT_EVERY = 100_000
LONG_REPLAY = 10_000      # a first catch-up this long is worth a snapshot at once
SNAPSHOT = "search/case-index.npz"
FEED_END = (FEED + chr(ord(SEP) + 1)).encode()
log = logging.getLogger(__name__)


def read_feed(hbase, start: bytes, limit: int = CHUNK) -> tuple[list[tuple[int, dict]], bytes]:
    """Feed documents from row key ``start`` on (oldest first, at most ``limit``), and the key
    to continue from."""
    rows = hbase.scan("search", row_start=start, row_stop=FEED_END, columns=[b"i:doc"],
                      limit=limit, batch_size=5000)
    out = []
    for key, cols in rows:
        written = int(key.split(SEP.encode())[1])
        try:
            out.append((written, json.loads(cols[b"i:doc"])))
        except (KeyError, ValueError):
            log.error("feed row %r has no readable document; skipped", key[:40])
    return out, (rows[-1][0] + b"\0" if rows else start)


def catch_up(index: CaseIndex, hbase, overlap_ms: int = OVERLAP_MS) -> int:
    """Apply every feed row since the index's position; returns how many visits changed."""
    changed = 0
    start = feed_key(max(index.position - overlap_ms, 0) if index.position else 0, "")
    while True:
        docs, start = read_feed(hbase, start)
        changed += index.apply(docs)
        if len(docs) < CHUNK:
            return changed


def backfill(hbase, batch: int = 2000) -> int:
    """Feed rows for every visit row (from its ``v:json``); returns how many were written."""
    from hl7_gateway.models import Visit
    from hl7_gateway.store_rows import feed_row
    written, start = 0, b""
    while True:
        rows = hbase.scan("visit", row_start=start, columns=[b"v:json"], limit=batch)
        now = int(time.time() * 1000)
        feed = [feed_row(Visit.model_validate_json(cols[b"v:json"]), now)
                for _, cols in rows if b"v:json" in cols]
        if feed:
            hbase.put_many("search", feed)
        written += len(feed)
        if len(rows) < batch:
            return written
        start = rows[-1][0] + b"\0"


class LiveIndex:
    """The portal's index: loaded in the background, then kept fresh by polling the feed."""

    def __init__(self, settings, hbase=None, hdfs=None, poll_s: float = POLL_S,
                 snapshots: bool = True):
        self.settings, self.poll_s, self.snapshots = settings, poll_s, snapshots
        self._hbase, self._hdfs = hbase, hdfs
        self.index = CaseIndex()
        self.ready = threading.Event()   # caught up with the feed at least once
        self.caught_up_at = 0.0          # when it last had applied everything in the feed
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since_snapshot = 0

    @property
    def hbase(self):
        return self._hbase if self._hbase is not None else clients.hbase(self.settings)

    @property
    def hdfs(self):
        return self._hdfs if self._hdfs is not None else clients.hdfs(self.settings)

    def start(self) -> "LiveIndex":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="case-index", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def lag_metrics(self) -> dict:
        """For `/metrics` (read at scrape): seconds since the index last caught up with the
        feed; a visit acknowledged by the gateway is searchable at most this much later."""
        lag = time.time() - self.caught_up_at if self.caught_up_at else float("inf")
        return {"pacs_search_index_lag_seconds": ("seconds since the case index last caught "
                                                  "up with the visit feed", (), {(): lag}),
                "pacs_search_index_visits": ("visits in the case index", (),
                                             {(): self.index.size})}

    def status(self) -> dict:
        return {"ready": self.ready.is_set(), "visits": self.index.size,
                "patients": len(self.index.patients.vocab), "position": self.index.position,
                "error": self.error}

    def _run(self) -> None:
        self._load_snapshot()
        while not self._stop.is_set():
            try:
                self.refresh()
                self.error = ""
            except Exception as exc:  # noqa: BLE001 - keep serving what we have; retry
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("case index refresh failed: %s", self.error)
            self._stop.wait(self.poll_s)

    def refresh(self) -> int:
        t0 = time.perf_counter()
        first = not self.ready.is_set()
        changed = catch_up(self.index, self.hbase)
        self.caught_up_at = time.time()
        self.ready.set()
        if changed:
            log.info("case index: %d visits applied in %.0f ms (%d indexed)", changed,
                     (time.perf_counter() - t0) * 1000, self.index.size)
        self._since_snapshot += changed
        if self.snapshots and (self._since_snapshot >= SNAPSHOT_EVERY
                               or (first and changed >= LONG_REPLAY)):
            self._since_snapshot = 0        # a failed snapshot is retried after the next batch
            try:
                self.save_snapshot()
            except Exception as exc:  # noqa: BLE001 - the index serves on; HDFS may be full
                log.warning("case index snapshot not written: %s", exc)
        return changed

    def _load_snapshot(self) -> None:
        if not self.snapshots:
            return
        try:
            if self.hdfs.exists(SNAPSHOT):
                t0 = time.perf_counter()
                self.index = CaseIndex.from_bytes(self.hdfs.read(SNAPSHOT))
                log.info("case index snapshot: %d visits in %.1f s", self.index.size,
                         time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - a bad snapshot only costs a full replay
            log.warning("case index snapshot unreadable (%s); replaying the feed", exc)
            self.index = CaseIndex()

    def save_snapshot(self) -> None:
        """Write the index to HDFS (to a temporary name, then renamed over the old one)."""
        blob = self.index.to_bytes()
        tmp = f"{SNAPSHOT}.tmp-{time.time_ns()}"
        self.hdfs.write(tmp, blob, overwrite=True)
        self.hdfs.delete(SNAPSHOT)
        self.hdfs.rename(tmp, SNAPSHOT)
        log.info("case index snapshot written: %d visits, %.1f MB", self.index.size,
                 len(blob) / 1e6)
