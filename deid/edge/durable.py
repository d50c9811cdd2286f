"""The file protocol that makes "acknowledged" mean "survives a crash or power loss".

Writing an object: the bytes go to a new file in `tmp/` (same file system), the file is
fsync'd, then it is published under its final name and the destination directory is fsync'd.
Only after that directory fsync may the sender hear success: the file's data and the directory
entry naming it are both on disk. A crash before the publish leaves a file in `tmp/` (deleted
at the next start); after it, the object is complete under its final name.

Publishing uses `os.link(tmp, final)` and then removes the temp name, instead of
`os.rename(tmp, final)`: link never replaces an existing file, so "is this SOP Instance UID
already here?" and "put it here" are one atomic step, even between processes (the receive
workers). An existing file is then compared byte for byte (duplicate or conflict).

Directory fsyncs are shared (`DirSync`, a group commit): every thread that published a name
takes a ticket and waits for an fsync of the directory that started after its ticket; one
fsync covers every ticket taken before it started. Four associations storing at once then cost
about one directory fsync per round rather than four.
"""
from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirSync:
    """Group commit of directory fsyncs for one directory (thread-safe)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._cv = threading.Condition()
        self._tickets = 0    # tickets handed out
        self._synced = 0     # every ticket <= this is covered by a completed fsync
        self._busy = False
        self.fsyncs = 0      # how many fsyncs were really made (tests, stats)

    def sync(self) -> None:
        """Return once an fsync of the directory that started after this call has completed.
        An fsync error is raised in the thread that ran it; the others then try themselves."""
        with self._cv:
            self._tickets += 1
            ticket = self._tickets
            while self._synced < ticket:
                if self._busy:
                    self._cv.wait()
                    continue
                self._busy = True
                upto = self._tickets
                self._cv.release()
                try:
                    fsync_dir(self.path)
                finally:
                    self._cv.acquire()
                    self._busy = False
                    self._cv.notify_all()
                # only after a successful fsync (an error left the loop above)
                self.fsyncs += 1
                self._synced = max(self._synced, upto)


def write_temp(tmp_dir: Path, data: bytes, stem: str = "obj") -> Path:
    """`data` in a new, fsync'd file in `tmp_dir` (mode 0600); returns its path."""
    path = tmp_dir / f"{stem}.{uuid.uuid4().hex}.part"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return path


def link_new(tmp: Path, final: Path) -> bool:
    """Publish `tmp` as `final` if no file has that name yet (atomic); True if published.
    The temp name is removed either way. The caller fsyncs `final`'s directory."""
    try:
        os.link(tmp, final)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def same_content(path: Path, data: bytes) -> bool:
    """Does the file at `path` hold exactly `data`? (size first, then the bytes)"""
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except FileNotFoundError:
        return False


def move(src: Path, dst: Path, replace: bool = False) -> None:
    """Move a file to another folder durably: rename, then fsync both directories.
    Without `replace` an existing `dst` raises FileExistsError (link + unlink)."""
    if replace:
        os.replace(src, dst)
    else:
        os.link(src, dst)
        os.unlink(src)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


def write_json(path: Path, doc: object, durable: bool = True) -> None:
    """Replace `path` with `doc` as JSON atomically (temp file + rename); with `durable`
    the file and its directory are fsync'd too."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    data = json.dumps(doc, indent=1, sort_keys=True, default=str).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def append_line(path: Path, line: str) -> None:
    """Append one line to a log file (0600) and fsync it (the audit log)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
