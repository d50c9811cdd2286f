"""Write a zip incrementally to any binary sink that has ``write()`` (an HDFS output stream, a
socket, a file), hashing every entry with sha256 while it streams.

Memory is bounded by one chunk plus one small `ZipInfo` per entry, whatever the sizes: the
standard library writes each member through ``ZipFile.open(name, "w", force_zip64=True)``, and
the sink is wrapped so zipfile never seeks (sizes and CRC go in data descriptors after the
data; ZIP64 records are always used, so members and archives past 4 GiB are fine).

Text-like members are deflated; DICOM, Parquet and gzip members are stored (deflating pixel data
costs CPU for little gain and the others are already compressed). The table is `DEFLATED_SUFFIXES`;
deflate uses zlib's default level (6).

If `add` raises (the chunk iterator failed), the member is left truncated in the archive: the
caller should fail the export and discard the output.
"""
from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Union

from analytics_jobs.export.layout import check_entry_path

Data = Union[bytes, bytearray, memoryview, Iterable[bytes]]

DEFLATED_SUFFIXES = (".csv", ".json", ".md", ".txt", ".tsv", ".nii")
SLICE = 1 << 20    # bytes-like data is written in slices of this size


@dataclass(frozen=True)
class Entry:
    path: str
    size: int        # uncompressed bytes
    sha256: str      # hex digest of the uncompressed bytes


class _Sink:
    """Forward-only view of the caller's sink: counts bytes for ``tell()``, cannot seek, so
    zipfile takes its streaming path for every sink, seekable or not."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._pos = 0

    def write(self, b) -> int:
        n = self._raw.write(b)
        n = len(b) if n is None else n
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        flush = getattr(self._raw, "flush", None)
        if flush:
            flush()


def compression_for(path: str) -> int:
    return zipfile.ZIP_DEFLATED if path.lower().endswith(DEFLATED_SUFFIXES) else zipfile.ZIP_STORED


def _chunks(data: Data) -> Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for i in range(0, len(view), SLICE):
            yield view[i:i + SLICE]
    else:
        yield from data


class ZipStreamWriter:
    """``with ZipStreamWriter(sink) as z: z.add(path, data) ...`` -> ``z.entries``.

    `data` is bytes or an iterable of byte chunks (a generator reading HDFS, for example).
    Member names are checked (`layout.check_entry_path`) and must be unique.
    """

    def __init__(self, sink: BinaryIO, *, date_time: tuple[int, ...] | None = None):
        self._zip = zipfile.ZipFile(_Sink(sink), "w", allowZip64=True)
        self._date_time = date_time or time.gmtime()[:6]
        self._names: set[str] = set()
        self.entries: list[Entry] = []

    @property
    def bytes_written(self) -> int:
        return self._zip.fp.tell()

    def add(self, path: str, data: Data) -> Entry:
        check_entry_path(path)
        if path in self._names:
            raise ValueError(f"duplicate archive path: {path!r}")
        self._names.add(path)
        info = zipfile.ZipInfo(path, date_time=self._date_time)
        info.compress_type = compression_for(path)
        info.external_attr = 0o644 << 16
        digest, size = hashlib.sha256(), 0
        with self._zip.open(info, "w", force_zip64=True) as member:
            for chunk in _chunks(data):
                if chunk:
                    digest.update(chunk)
                    member.write(chunk)
                    size += len(chunk)
        entry = Entry(path, size, digest.hexdigest())
        self.entries.append(entry)
        return entry

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "ZipStreamWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_zip(sink: BinaryIO, items: Iterable[tuple[str, Data]], **kw) -> list[Entry]:
    """Stream every (path, data) of `items` into one zip on `sink`; the entries written."""
    with ZipStreamWriter(sink, **kw) as z:
        for path, data in items:
            z.add(path, data)
    return z.entries


def sha256_of_member(zf: zipfile.ZipFile, name: str, chunk: int = SLICE) -> tuple[int, str]:
    """(size, sha256 hex) of one member, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with zf.open(name) as f:
        while block := f.read(chunk):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
