"""A write() sink whose bytes another thread pulls as an iterator: the bridge between the zip
writer (which pushes, `ZipStreamWriter(sink)`) and a streamed HTTP upload (which pulls, e.g.
`HdfsStore.write_stream(path, chunks)`).

Memory is bounded: bytes are cut into `chunk`-sized pieces and at most `depth` pieces wait in
the queue; a writer faster than the upload blocks. The sink counts and hashes (sha256) every
byte, so the archive's size and digest are known when it closes without reading it back.

`close()` ends the upload and raises what the consumer raised; `abort()` makes the iterator
raise so the upload fails (the caller then deletes the half-written file).
"""
from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator

_END = object()
_ABORT = object()
POLL_S = 0.5


class SinkAborted(Exception):
    """Raised inside the consumer's iterator when the producer gave up."""


class SinkError(Exception):
    """The consumer failed; the archive is incomplete."""


class PullSink:
    def __init__(self, consume: Callable[[Iterator[bytes]], None], *, chunk: int = 1 << 20,
                 depth: int = 8):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._chunk = chunk
        self._buf = bytearray()
        self._digest = hashlib.sha256()
        self._error: BaseException | None = None
        self._closed = False
        self.size = 0
        self._thread = threading.Thread(target=self._run, args=(consume,), name="pull-sink",
                                        daemon=True)
        self._thread.start()

    # --- consumer side ----------------------------------------------------------------------
    def _pieces(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise SinkAborted("the producer aborted the stream")
            yield item

    def _run(self, consume) -> None:
        try:
            consume(self._pieces())
        except BaseException as e:  # noqa: BLE001 - handed to the producer in close()/write()
            self._error = e
        finally:   # unblock a producer waiting on a full queue
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def _put(self, item) -> None:
        while True:
            if self._error is not None or not self._thread.is_alive():
                raise SinkError(f"the upload stopped: {self._error or 'consumer ended early'}")
            try:
                self._queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    # --- producer side (file-like) -----------------------------------------------------------
    def write(self, b) -> int:
        n = len(b)
        self._digest.update(b)
        self.size += n
        self._buf += b
        while len(self._buf) >= self._chunk:
            self._put(bytes(self._buf[:self._chunk]))
            del self._buf[:self._chunk]
        return n

    def flush(self) -> None:
        """Nothing to do: pieces leave when full (a flush per zip header would send tiny ones)."""

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        """Send what is buffered, end the stream and wait for the consumer; raises SinkError."""
        if self._closed:
            return
        self._closed = True
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()
        self._put(_END)
        self._thread.join()
        if self._error is not None:
            raise SinkError(f"the upload failed: {self._error}") from self._error

    def abort(self) -> None:
        """Fail the stream (the consumer's iterator raises SinkAborted); never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            self._put(_ABORT)
        except SinkError:
            pass
        self._thread.join(timeout=60)
