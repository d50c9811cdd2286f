"""Immutable batch files on HDFS: many small objects per file, written so that no byte is misplaced.

A CT study can be 20,000 objects of ~0.5 MB; one HDFS file each would cost the NameNode memory
per object. Objects are therefore written in batches: one commit = one new file
`<dir>/<writer>-<seq>.pack` holding the objects back to back, then a footer (the manifest). HBase
indexes each object by (path, offset, length, sha256).

Why never append (the archive once lost acknowledged objects this way): a WebHDFS APPEND cut off
by a dying DataNode leaves the file open under lease recovery, its NameNode length is not final,
and bytes of the failed attempt may still appear later. So:

- every commit CREATEs a fresh file (never overwrite, never append) and closes it;
- after the close, the file's length and its sha256 (read back) are checked;
- a failed or doubtful attempt is abandoned (deleted best-effort, else left as an orphan for
  `pacs fsck --repair`) and the batch is written again under a **new name**;
- offsets come from the blob we built, never from the length HDFS reports.

Footer (lets `fsck` find objects in files no index row points to, and rebuild an index):
`<objects><manifest JSON><8-byte big-endian manifest length><MAGIC>`; the manifest lists
`[key, offset, length, sha256]` per object (key as given by the caller, e.g. the instance row key).

Group commit: `submit`/`put` gather objects for the same directory that arrive while a write is
in flight and write them with the next one; each caller's future resolves to its `Location`
only after the verified close.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass

from pacs_hdfs.hdfs_store import HdfsStore, StorageError

log = logging.getLogger(__name__)

MAGIC = b"PACSPK01"
FOOTER_TAIL = 16  # manifest length (8) + magic (8)


@dataclass(frozen=True)
class Location:
    """Where one object's bytes are (a byte range of a container file, and its sha256); its
    instance-row cells are encoded by `pacs_hdfs.rows.instance`."""
    path: str
    offset: int
    length: int
    sha256: str


@dataclass(frozen=True)
class ManifestEntry:
    key: str
    offset: int
    length: int
    sha256: str


def build_batch(items: list[tuple[str, bytes]]) -> tuple[bytes, list[ManifestEntry]]:
    """The file bytes for (key, data) items: data back to back, then the footer (pure)."""
    entries, parts, offset = [], [], 0
    for key, data in items:
        entries.append(ManifestEntry(key, offset, len(data), hashlib.sha256(data).hexdigest()))
        parts.append(data)
        offset += len(data)
    manifest = json.dumps([[e.key, e.offset, e.length, e.sha256] for e in entries],
                          separators=(",", ":")).encode()
    parts += [manifest, len(manifest).to_bytes(8, "big"), MAGIC]
    return b"".join(parts), entries


def parse_footer(tail: bytes, file_length: int) -> tuple[int, int] | None:
    """(manifest offset, manifest length) from a file's last 16 bytes, or None if no footer."""
    if len(tail) != FOOTER_TAIL or tail[8:] != MAGIC:
        return None
    n = int.from_bytes(tail[:8], "big")
    start = file_length - FOOTER_TAIL - n
    return (start, n) if start >= 0 else None


def read_manifest(store: HdfsStore, path: str, length: int | None = None) -> list[ManifestEntry]:
    """The objects a batch file says it holds ([] for a file without a valid footer)."""
    length = store.info(path).length if length is None else length
    if length < FOOTER_TAIL:
        return []
    where = parse_footer(store.read(path, length - FOOTER_TAIL, FOOTER_TAIL), length)
    if where is None:
        return []
    try:
        rows = json.loads(store.read(path, where[0], where[1]))
        return [ManifestEntry(str(k), int(o), int(n), str(s)) for k, o, n, s in rows]
    except (ValueError, TypeError):
        return []


@dataclass
class _Pending:
    key: str
    data: bytes
    future: Future


class _Directory:
    """One directory's queue of objects waiting for the next commit."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queue: list[_Pending] = []
        self.flushing = False


class ContainerWriter:
    """Writes batches of objects as new, verified, immutable files (thread-safe)."""

    def __init__(self, store: HdfsStore, writer: str | None = None,
                 max_batch_bytes: int = 64 << 20, attempts: int = 6,
                 verify_readback: bool = True):
        self.store = store
        # host-pid-random: two processes (or a restarted one) never pick the same file name
        self.writer = writer or f"{socket.gethostname()}-{os.getpid()}"
        self.writer = f"{self.writer}-{uuid.uuid4().hex[:6]}"
        self.max_batch_bytes = max_batch_bytes
        self.attempts = attempts
        self.verify_readback = verify_readback
        self._seq = itertools.count(1)
        self._dirs: dict[str, _Directory] = {}
        self._lock = threading.Lock()
        self.abandoned = 0  # attempts given up (their file deleted or left as orphan)

    # --- direct batches --------------------------------------------------------------------
    def write(self, directory: str, items: list[tuple[str, bytes]]) -> list[Location]:
        """Write (key, data) items as one new file in `directory`; one Location per item, in
        order, returned only after the file is closed and verified. Raises StorageError."""
        blob, entries = build_batch(items)
        digest = hashlib.sha256(blob).hexdigest()
        delay, last = 0.2, None
        for attempt in range(1, self.attempts + 1):
            path = f"{directory.rstrip('/')}/{self.writer}-{next(self._seq):06d}.pack"
            try:
                self._create_verified(path, blob, digest)
                return [Location(self.store.abs(path), e.offset, e.length, e.sha256)
                        for e in entries]
            except StorageError as e:
                last = e
                self._abandon(path, e, attempt)
            if attempt < self.attempts:
                time.sleep(delay)
                delay = min(delay * 2, 3.0)
        raise StorageError(f"batch of {len(items)} object(s) in {directory} not stored after "
                           f"{self.attempts} attempts: {last}")

    def _create_verified(self, path: str, blob: bytes, digest: str) -> None:
        self.store.create(path, blob)
        info = self.store.info(path)
        if info is None or info.length != len(blob):
            raise StorageError(f"{path}: length after close is "
                               f"{None if info is None else info.length}, expected {len(blob)}")
        if self.verify_readback and hashlib.sha256(self.store.read(path)).hexdigest() != digest:
            raise StorageError(f"{path}: sha256 after close does not match what was written")

    def _abandon(self, path: str, error: Exception, attempt: int) -> None:
        """Give up one attempt's file: nothing points at it; delete it if HDFS lets us now."""
        self.abandoned += 1
        log.warning("batch file %s abandoned (attempt %d/%d): %s", path, attempt,
                    self.attempts, str(error)[:200])
        try:
            self.store.delete(path, attempts=1)
        except StorageError as e:  # left for `pacs fsck --repair` (an orphan, never indexed)
            log.warning("abandoned batch file %s not deleted: %s", path, str(e)[:200])

    # --- group commit ----------------------------------------------------------------------
    def put(self, directory: str, data: bytes, key: str = "") -> Location:
        """Store `data` in a batch file of `directory`; return once it is durable."""
        return self.submit(directory, data, key).result()

    def submit(self, directory: str, data: bytes, key: str = "") -> Future:
        """Queue `data`; the future resolves to its Location after the carrying batch closes.

        The first caller to find no write in progress becomes the flusher and drains the queue
        (including what others queue meanwhile) in batches, so there is no background thread.
        """
        d = self._directory(directory)
        item = _Pending(key, data, Future())
        with d.lock:
            d.queue.append(item)
            if d.flushing:
                return item.future
            d.flushing = True
        self._drain(directory, d)
        return item.future

    def _directory(self, directory: str) -> _Directory:
        with self._lock:
            return self._dirs.setdefault(directory, _Directory())

    def _drain(self, directory: str, d: _Directory) -> None:
        while True:
            with d.lock:
                if not d.queue:
                    d.flushing = False
                    return
                batch, size = [], 0
                while d.queue and (not batch or size + len(d.queue[0].data) <= self.max_batch_bytes):
                    batch.append(d.queue.pop(0))
                    size += len(batch[-1].data)
            try:
                locations = self.write(directory, [(p.key, p.data) for p in batch])
            except Exception as e:  # noqa: BLE001 - every waiter must learn about the failure
                err = e if isinstance(e, StorageError) else StorageError(str(e))
                for p in batch:
                    p.future.set_exception(err)
                continue
            for p, loc in zip(batch, locations):
                p.future.set_result(loc)


def read_object(store: HdfsStore, loc: Location, verify: bool = True) -> bytes:
    """Fetch exactly one object's bytes; check its sha256 against the index."""
    data = store.read(loc.path, loc.offset, loc.length)
    if verify and hashlib.sha256(data).hexdigest() != loc.sha256:
        raise StorageError(f"checksum mismatch for {loc.path}@{loc.offset}+{loc.length}")
    return data
