"""A thin typed wrapper over WebHDFS (HdfsCLI): write, append, ranged read, with retries.

Transient failures (a DataNode that just died, the NameNode in safe mode, a replication pipeline
being rebuilt) are retried with backoff; anything else raises `StorageError` naming the path.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass

import requests
from hdfs import HdfsError, InsecureClient
from hdfs.client import _Request

from pacs_hdfs import metrics
from pacs_hdfs.retry import retry
from pacs_hdfs.settings import Settings


class StorageError(RuntimeError):
    """HDFS or HBase could not do what was asked; the message says what and where."""


TRANSIENT_MARKERS = (
    "SafeModeException", "RetriableException", "could only be written to",
    "could only be replicated", "NotReplicatedYetException", "AlreadyBeingCreatedException",
    "RecoveryInProgressException", "LeaseExpiredException", "Failed to APPEND_FILE",
    "lease recovery is in progress", "ConnectException", "Connection refused",
    "DataStreamer", "Bad response", "All datanodes", "Failed to replace a bad datanode",
)


def is_transient(e: Exception) -> bool:
    if isinstance(e, (requests.ConnectionError, requests.Timeout)):
        return True
    return isinstance(e, HdfsError) and any(m in str(e) for m in TRANSIENT_MARKERS)


@dataclass(frozen=True)
class FileInfo:
    path: str
    length: int
    replication: int
    is_dir: bool
    modified_ms: int = 0  # modification time (ms since epoch): a file's close for our files


def _file_info(path: str, st: dict) -> FileInfo:
    return FileInfo(path, int(st["length"]), int(st.get("replication", 0)),
                    st["type"] == "DIRECTORY", int(st.get("modificationTime", 0)))


class _Client(InsecureClient):
    """HdfsCLI's client plus the one WebHDFS operation it lacks (same HA failover path)."""


# after the class: the metaclass would name the operation GETBLOCKLOCATIONS
_Client._get_block_locations = _Request("GET").to_method("GET_BLOCK_LOCATIONS")


class HdfsStore:
    def __init__(self, settings: Settings, attempts: int = 6):
        self.s = settings
        self.root = settings.hdfs_root
        self.attempts = attempts
        # NameNode HA: every NameNode's URL, ';'-separated; the client moves on to the next one
        # on a StandbyException or a connection error and remembers which answered.
        self.client = _Client(";".join(settings.webhdfs_urls), user=settings.hdfs_user,
                             timeout=60)

    @property
    def active_url(self) -> str:
        """The NameNode URL that answered last (the active one under HA)."""
        return self.client._urls[0]  # the hdfs package rotates this deque on failover

    def abs(self, path: str) -> str:
        """Paths not starting with '/' are relative to the configured root."""
        return path if path.startswith("/") else posixpath.join(self.root, path)

    def _do(self, what: str, fn, attempts: int | None = None):
        try:
            return retry(fn, what=what, transient=is_transient,
                         attempts=attempts or self.attempts)
        except (HdfsError, requests.RequestException) as e:
            metrics.storage_failed("hdfs", e)
            raise StorageError(f"HDFS {what} failed: {str(e).splitlines()[0][:300]}") from e

    # --- files -----------------------------------------------------------------------------
    def write(self, path: str, data: bytes, overwrite: bool = False,
              replication: int | None = None) -> None:
        """Create a file with these bytes; it is durable (closed, replicated) on return."""
        p = self.abs(path)
        self._do(f"write {p}", lambda: self.client.write(
            p, data=data, overwrite=overwrite,
            replication=replication or self.s.effective_replication))

    def create(self, path: str, data: bytes) -> None:
        """Create a new file with these bytes, in one attempt, never over an existing one.

        No retry here: an attempt that failed may still have left (part of) a file behind, open
        under lease recovery; the caller abandons that name and writes again under a new one
        (see containers.py). Durable (closed, replicated) on return."""
        p = self.abs(path)
        self._do(f"create {p}", lambda: self.client.write(
            p, data=data, overwrite=False, replication=self.s.effective_replication),
            attempts=1)

    def write_stream(self, path: str, chunks, overwrite: bool = False) -> None:
        """Create a file from an iterable of byte chunks, streamed in one request (chunked
        transfer), so a file of any size passes through bounded memory (the cohort export's
        zip). No retry: a half-consumed iterable cannot be replayed; on failure the caller
        deletes the file and starts again. Durable (closed, replicated) on return."""
        p = self.abs(path)
        self._do(f"stream {p}", lambda: self.client.write(
            p, data=chunks, overwrite=overwrite, replication=self.s.effective_replication),
            attempts=1)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read a whole file or exactly `length` bytes from `offset`."""
        p = self.abs(path)

        def go() -> bytes:
            with self.client.read(p, offset=offset, length=length) as r:
                data = r.read()
            if length is not None and len(data) != length:
                raise HdfsError(f"short read: {len(data)} of {length} bytes (Bad response)")
            return data
        return self._do(f"read {p}@{offset}+{length}", go)

    def read_chunks(self, path: str, offset: int = 0, length: int | None = None,
                    chunk_size: int = 1 << 20):
        """Stream a file (or `length` bytes from `offset`) in chunks, in one HTTP request.

        No retry (a failure mid-stream cannot be resumed transparently): the caller restarts
        the whole read. Raises StorageError, also when fewer than `length` bytes came."""
        p = self.abs(path)
        got = 0
        try:
            with self.client.read(p, offset=offset, length=length,
                                  chunk_size=chunk_size) as chunks:
                for chunk in chunks:
                    got += len(chunk)
                    yield chunk
        except (HdfsError, requests.RequestException) as e:
            raise StorageError(f"HDFS stream {p} failed: {str(e).splitlines()[0][:300]}") from e
        if length is not None and got != length:
            raise StorageError(f"HDFS stream {p}: short read, {got} of {length} bytes")

    def info(self, path: str) -> FileInfo | None:
        p = self.abs(path)
        st = self._do(f"status {p}", lambda: self.client.status(p, strict=False))
        if st is None:
            return None
        return _file_info(p, st)

    def exists(self, path: str) -> bool:
        return self.info(path) is not None

    def mkdirs(self, path: str) -> None:
        p = self.abs(path)
        self._do(f"mkdirs {p}", lambda: self.client.makedirs(p))

    def list(self, path: str) -> list[str]:
        p = self.abs(path)
        return self._do(f"list {p}", lambda: self.client.list(p))

    def list_status(self, path: str) -> list[FileInfo]:
        """The entries of a directory with their status ([] if it does not exist)."""
        p = self.abs(path)
        if self.info(p) is None:
            return []
        return [_file_info(posixpath.join(p, name), st)
                for name, st in self._do(f"list {p}", lambda: self.client.list(p, status=True))]

    def walk_files(self, path: str):
        """Every file under `path` (absolute paths)."""
        p = self.abs(path)
        for root, _dirs, files in self._do(f"walk {p}", lambda: list(self.client.walk(p))):
            for f in files:
                yield posixpath.join(root, f)

    def delete(self, path: str, recursive: bool = False, attempts: int | None = None) -> bool:
        p = self.abs(path)
        return self._do(f"delete {p}", lambda: self.client.delete(p, recursive=recursive),
                        attempts=attempts)

    def rename(self, src: str, dst: str) -> None:
        a, b = self.abs(src), self.abs(dst)
        self._do(f"rename {a}", lambda: self.client.rename(a, b))

    def block_locations(self, path: str) -> list[list[str]]:
        """For each block of the file, the DataNodes (host:port) that hold a replica."""
        p = self.abs(path)

        def go():
            r = self.client._get_block_locations(p)   # through the HA failover of the client
            blocks = r.json()["LocatedBlocks"]["locatedBlocks"]
            return [[f"{loc['ipAddr']}:{loc['xferPort']}" for loc in b["locations"]]
                    for b in blocks]
        return self._do(f"block locations {p}", go)

    def upload(self, path: str, local) -> None:
        """Stream a local file to HDFS (replacing what is there), durable on return."""
        p = self.abs(path)
        self._do(f"upload {p}", lambda: self.client.upload(
            p, str(local), overwrite=True, replication=self.s.effective_replication,
            chunk_size=1 << 20), attempts=2)

    def url(self, path: str) -> str:
        """The `hdfs://` URL Spark uses for a store path."""
        return f"{self.s.namenode_rpc}{self.abs(path)}"
