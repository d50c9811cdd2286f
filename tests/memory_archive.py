"""Unit-test helpers: an in-memory stand-in for `HdfsStore` (the calls `ContainerWriter` and the
readers make) and `commit_objects`, which stores datasets through the archive's real commit path
(`pacs_hdfs.dicom.commit.Committer`) into a `MemoryStore`, so unit tests see rows and bytes
exactly as the data center writes them. Integration tests use the real cluster instead."""
from __future__ import annotations

import posixpath
import threading
from types import SimpleNamespace

from pacs_hdfs.hdfs_store import StorageError


class MemoryFiles:
    def __init__(self, root: str = "/pacs"):
        self.root = root
        self.files: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def abs(self, path: str) -> str:
        return path if path.startswith("/") else posixpath.join(self.root, path)

    def create(self, path: str, data: bytes) -> None:
        with self.lock:
            if self.abs(path) in self.files:
                raise StorageError(f"create {path}: exists")
            self.files[self.abs(path)] = bytes(data)

    def info(self, path: str):
        data = self.files.get(self.abs(path))
        return None if data is None else SimpleNamespace(length=len(data), is_dir=False)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.files.get(self.abs(path))
        if data is None:
            raise StorageError(f"read {path}: no such file")
        end = len(data) if length is None else offset + length
        if end > len(data):
            raise StorageError(f"read {path}: short read")
        return data[offset:end]

    def delete(self, path: str, recursive: bool = False, attempts: int | None = None) -> bool:
        with self.lock:
            return self.files.pop(self.abs(path), None) is not None


def commit_objects(store, files: MemoryFiles, datasets, quarantine: str | None = None) -> list:
    """Store already de-identified datasets via the real Committer; their file bytes, in order."""
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom import index_rows as ix
    from pacs_hdfs.dicom.commit import Committer, Prepared
    from pacs_hdfs.dicom.part10 import serialize

    prepared = []
    for ds in datasets:
        attrs = ix.attributes(ds, ix.ALL_KEYS)
        attrs["TransferSyntaxUID"] = str(ds.file_meta.TransferSyntaxUID)
        prepared.append(Prepared(serialize(ds), attrs, quarantine))
    committer = Committer(store, ContainerWriter(files, writer="unit"))
    outcomes = committer.store_many(prepared)
    assert all(o.acknowledged for o in outcomes), outcomes
    return [p.data for p in prepared]


def install_files(app, files: MemoryFiles) -> None:
    """Make the portal app read object bytes from `files` instead of HDFS."""
    from portal.dicom_access import Archive
    state = app.state.portal
    state._dicom_archive = Archive(state.store, lambda: files)
