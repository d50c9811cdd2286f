"""Fast acknowledgement: stage a de-identified object in HBase, move it to its container later.

A WebHDFS append costs one open-write-close (~50-250 ms here); an HBase put of the same bytes
returns once its write-ahead log is flushed to every DataNode of the WAL's HDFS pipeline
(~15 ms). So with staging on (`PACS_SCP_STAGING`, default true) the SCP answers success after
the staging put and the index rows; a flusher thread then appends staged objects to their
per-series containers (group commit gathers them into few large appends), writes the
location into the instance row and deletes the staged cell. Staged rows left by a crash are
drained on the next start. Readers use `read_bytes`, which knows both places.

Disk: when the flusher falls behind, memstore flushes write staged objects to `staging` store
files; deleting their rows later writes only delete markers. A compaction that reads a marker and
the data it covers drops the data, but minor compactions skip big files and HBase's periodic
major compaction comes every 7 days by default, so moved objects could stay on HDFS (x3) for
days. deploy/configs.py therefore flushes old memstores (the markers) within minutes and
major-compacts stores whose files are older than an hour. (HBase 2.6 Thrift 1 `majorCompact`
runs a minor compaction, so the mover cannot ask for one.) Never a TTL on staging: only rows the
flusher deleted after their move are dropped.
"""
from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from pacs_hdfs.containers import ContainerWriter, Location, read_object
from pacs_hdfs.hdfs_store import StorageError

log = logging.getLogger("pacs.scp.staging")
STAGED = b"l:staged"


def read_bytes(hbase, hdfs, key: bytes, row: dict[bytes, bytes]) -> bytes:
    """An instance's bytes from its container, or from staging if not yet moved there."""
    if b"l:path" in row:
        return read_object(hdfs, Location.from_columns(row))
    staged = hbase.get("staging", key, columns=[b"d:data"])
    if not staged:  # moved meanwhile: re-read the row
        return read_object(hdfs, Location.from_columns(hbase.get("instance", key)))
    return staged[b"d:data"]


class Flusher:
    """Moves staged objects into containers, `workers` at a time (they group-commit)."""

    def __init__(self, hbase, writer: ContainerWriter, workers: int = 8):
        self.hbase = hbase
        self.writer = writer
        self.queue: queue.Queue[tuple[bytes, str, bytes]] = queue.Queue()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="flush")
        self._pending = threading.Semaphore(workers * 4)
        threading.Thread(target=self._run, name="flusher", daemon=True).start()

    def add(self, key: bytes, directory: str, data: bytes) -> None:
        self.queue.put((key, directory, data))

    def recover(self) -> int:
        """Queue staged rows left by an earlier process; return how many.

        Keys first, then one object at a time: a scan batch of large cells would have to fit
        the Thrift server's heap at once."""
        keys = self.hbase.scan("staging", columns=[b"d:dir"], batch_size=100)
        if keys:
            log.info("recovering %d staged object(s)", len(keys))
        for key, row in keys:
            data = self.hbase.get("staging", key, columns=[b"d:data"]).get(b"d:data")
            if data is not None:
                while self.queue.qsize() > 32:  # bound the memory held for recovery
                    time.sleep(0.05)
                self.add(key, row[b"d:dir"].decode(), data)
        return len(keys)

    def start_recovery(self, retry_s: float = 10.0) -> None:
        """`recover` in the background, retried while HBase is unreachable (never fatal)."""
        def go():
            try:
                self.recover()
            except StorageError as e:
                log.warning("staged-object recovery postponed: %s", e)
                threading.Timer(retry_s, go).start()
        threading.Thread(target=go, name="staging-recovery", daemon=True).start()

    def _run(self) -> None:
        """Take what is queued, group it by container directory, move each group at once."""
        while True:
            items = [self.queue.get()]
            while len(items) < 256:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            for directory, group in group_by_directory(items, MAX_GROUP_BYTES).items():
                for chunk in group:
                    self._pending.acquire()
                    self.pool.submit(self._move, directory, chunk)

    def _move(self, directory: str, items: list[tuple[bytes, bytes]]) -> None:
        """One container append for the whole group, then each instance row gets its slice."""
        try:
            whole = self.writer.put(directory, b"".join(data for _k, data in items))
            self.hbase.put_many("instance", [(key, loc.to_columns()) for key, loc in
                                             zip((k for k, _d in items), slices(whole, items))])
            for key, _data in items:
                self.hbase.delete("instance", key, columns=[STAGED])
                self.hbase.delete("staging", key)
        except StorageError as e:  # stays staged (and readable); retried later / on next start
            log.error("moving %d staged object(s) to their container failed: %s", len(items), e)
            threading.Timer(10.0, lambda: [self.add(k, directory, d) for k, d in items]).start()
        finally:
            self._pending.release()


MAX_GROUP_BYTES = 32 << 20


def group_by_directory(items: list[tuple[bytes, str, bytes]],
                       max_bytes: int) -> dict[str, list[list[tuple[bytes, bytes]]]]:
    """directory -> chunks of (key, data), each chunk at most `max_bytes` (or one object)."""
    out: dict[str, list[list[tuple[bytes, bytes]]]] = {}
    for key, directory, data in items:
        chunks = out.setdefault(directory, [[]])
        if chunks[-1] and sum(len(d) for _k, d in chunks[-1]) + len(data) > max_bytes:
            chunks.append([])
        chunks[-1].append((key, data))
    return out


def slices(whole: Location, items: list[tuple[bytes, bytes]]) -> list[Location]:
    """Per-object Locations inside one appended blob (sha256 of each object's own bytes)."""
    out, offset = [], whole.offset
    for _key, data in items:
        out.append(Location(whole.path, offset, len(data), hashlib.sha256(data).hexdigest()))
        offset += len(data)
    return out
