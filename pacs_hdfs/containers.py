"""Per-series container files on HDFS with group commit: the answer to HDFS's small-files problem.

A CT study can be 20,000 objects of ~0.5 MB; one HDFS file each would cost the NameNode memory
per object. Instead objects of one series are appended back to back into a container file
(`<dir>/<writer>-<n>.pack`, rolled over at `max_container_bytes`) and HBase indexes each object
by (path, offset, length, sha256).

WebHDFS has no hflush and a file has one writer at a time, so every append is a separate
open-write-close. Group commit makes that cheap: objects for the same container that arrive while
an append is in flight are gathered and written by the next single append; every caller gets its
`Location` only after the append that carried its bytes has closed (durable and replicated).
`writer` (default host-pid) keeps two processes from ever appending to the same file.
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from pacs_hdfs.hdfs_store import HdfsStore, StorageError


@dataclass(frozen=True)
class Location:
    path: str
    offset: int
    length: int
    sha256: str

    def to_columns(self, family: bytes = b"l") -> dict[bytes, bytes]:
        return {family + b":path": self.path.encode(), family + b":offset": str(self.offset).encode(),
                family + b":length": str(self.length).encode(),
                family + b":sha256": self.sha256.encode()}

    @classmethod
    def from_columns(cls, row: dict[bytes, bytes], family: bytes = b"l") -> Location:
        return cls(row[family + b":path"].decode(), int(row[family + b":offset"]),
                   int(row[family + b":length"]), row[family + b":sha256"].decode())


@dataclass
class _Pending:
    data: bytes
    sha256: str
    future: Future


class _Container:
    """One container directory's current file, its known length and its queue."""

    def __init__(self, directory: str):
        self.directory = directory
        self.lock = threading.Lock()          # guards queue / flushing flag
        self.queue: list[_Pending] = []
        self.flushing = False
        self.path: str | None = None
        self.length = 0
        self.seq = 0


class ContainerWriter:
    def __init__(self, store: HdfsStore, writer: str | None = None,
                 max_container_bytes: int = 1 << 30, max_batch_bytes: int = 64 << 20):
        self.store = store
        self.writer = writer or f"{socket.gethostname()}-{os.getpid()}"
        self.max_container_bytes = max_container_bytes
        self.max_batch_bytes = max_batch_bytes
        self._containers: dict[str, _Container] = {}
        self._lock = threading.Lock()

    def put(self, directory: str, data: bytes) -> Location:
        """Store `data` in the container for `directory`; return once it is durable."""
        return self.submit(directory, data).result()

    def submit(self, directory: str, data: bytes) -> Future:
        """Queue `data`; the future resolves to its Location after the carrying append closes.

        The first caller to find no flush in progress becomes the flusher and drains the queue
        (including what others queue meanwhile) in batches, so there is no background thread.
        """
        c = self._container(directory)
        item = _Pending(data, hashlib.sha256(data).hexdigest(), Future())
        with c.lock:
            c.queue.append(item)
            if c.flushing:
                return item.future
            c.flushing = True
        self._drain(c)
        return item.future

    def _container(self, directory: str) -> _Container:
        with self._lock:
            if directory not in self._containers:
                self._containers[directory] = _Container(directory)
            return self._containers[directory]

    def _drain(self, c: _Container) -> None:
        while True:
            with c.lock:
                if not c.queue:
                    c.flushing = False
                    return
                batch, size = [], 0
                while c.queue and (not batch or size + len(c.queue[0].data) <= self.max_batch_bytes):
                    batch.append(c.queue.pop(0))
                    size += len(batch[-1].data)
            try:
                self._write_batch(c, batch)
            except Exception as e:  # noqa: BLE001 - every waiter must learn about the failure
                err = e if isinstance(e, StorageError) else StorageError(str(e))
                for p in batch:
                    p.future.set_exception(err)

    def _write_batch(self, c: _Container, batch: list[_Pending]) -> None:
        blob = b"".join(p.data for p in batch)
        if c.path is None or c.length + len(blob) > self.max_container_bytes:
            self._roll(c)
        start = c.length
        try:
            if start == 0 and not self.store.exists(c.path):
                self.store.write(c.path, blob)
            else:
                self.store.append(c.path, blob)
        except StorageError:
            # The append may have landed partly or wholly before the error: trust the NameNode.
            info = self.store.info(c.path)
            actual = info.length if info else 0
            if actual != start + len(blob):
                c.length = actual  # any partial tail stays unreferenced garbage
                raise
        c.length = start + len(blob)
        offset = start
        for p in batch:
            p.future.set_result(Location(c.path, offset, len(p.data), p.sha256))
            offset += len(p.data)

    def _roll(self, c: _Container) -> None:
        """Move to this writer's next container file in the directory."""
        while True:
            c.seq += 1
            path = f"{c.directory.rstrip('/')}/{self.writer}-{c.seq:04d}.pack"
            info = self.store.info(path)
            if info is None:
                c.path, c.length = path, 0
                return
            if info.length < self.max_container_bytes:
                c.path, c.length = path, info.length  # resume our own earlier file
                return


def read_object(store: HdfsStore, loc: Location, verify: bool = True) -> bytes:
    """Fetch exactly one object's bytes; check its sha256 against the index."""
    data = store.read(loc.path, loc.offset, loc.length)
    if verify and hashlib.sha256(data).hexdigest() != loc.sha256:
        raise StorageError(f"checksum mismatch for {loc.path}@{loc.offset}+{loc.length}")
    return data
