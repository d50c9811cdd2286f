"""The forwarder: a thread that ships the spool to the MDC (run in a process of its own by the
edge, see `forwarding`; tests drive the thread directly).

Loop: take the oldest spooled objects (at most `edge_batch_objects` and `edge_batch_bytes`, at
least one), POST them as one STOW-RS request over HTTPS with the edge's client certificate
(mutual TLS), and act on the answer per instance (`stow.read_response`):

* acknowledged (in ReferencedSOPSequence; an identical re-send counts as stored) -> deleted;
* refused for good (FailureReason 0xC001, 0xC000, 0xA900, ...) -> moved to `rejected/` with the
  reason, and logged;
* anything else (transport error, HTTP 5xx, 401/403, FailureReason 0xA700, an instance the answer
  does not mention) -> kept, and retried after an exponential backoff capped at
  `edge_retry_max_seconds`;
* HTTP 400 / 413 for a whole batch -> the batch is halved until the object at fault is alone;
  a single object refused that way is moved to `rejected/`.

An object leaves the spool only after the MDC's answer names it, so a crash of either side at
any point (kill -9 mid-request included) at worst re-sends objects the MDC already holds, which
it answers as stored: nothing lost, nothing duplicated. The queue lives in memory, fed by the
receiver (`notify`) and by a rescan of `spool/` every few seconds (objects released from the
quarantine by another process, and everything left from a previous run).
"""
from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from deid.edge import stow
from deid.edge.spool import Entry, Spool
from deid.edge.state import EdgeState

log = logging.getLogger(__name__)

RESCAN_SECONDS = 2.0
FIRST_DELAY = 0.5
STATE_EVERY = 1.0


@dataclass(frozen=True)
class Target:
    """Where and as whom the forwarder sends."""
    url: str
    client_cert: Path
    client_key: Path
    ca: Path
    batch_objects: int = 64
    batch_bytes: int = 32 * 1024 * 1024
    retry_max: float = 30.0
    timeout: tuple[float, float] = (10.0, 300.0)

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/dicomweb/studies"


class Forwarder(threading.Thread):
    def __init__(self, spool: Spool, target: Target, state: EdgeState):
        super().__init__(name="edge-forwarder", daemon=True)
        self.spool, self.target, self.state = spool, target, state
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._heap: list[tuple[int, str, int]] = []
        self._queued: set[str] = set()
        self._last_scan = 0.0
        self._last_state = 0.0
        self._failures = 0
        self._limit = target.batch_objects   # lowered while a 400/413 batch is being split
        self._session: requests.Session | None = None

    # --- feeding --------------------------------------------------------------------------------

    def notify(self, sop_uid: str, size: int) -> None:
        """A new object is in the spool (called by the receiver after it is durable)."""
        self._push(Entry(sop_uid, time.time_ns(), size))
        self._wake.set()

    def _push(self, e: Entry) -> None:
        with self._lock:
            if e.sop_uid not in self._queued:
                self._queued.add(e.sop_uid)
                heapq.heappush(self._heap, (e.mtime_ns, e.sop_uid, e.size))

    def _rescan(self) -> None:
        self._last_scan = time.monotonic()
        for e in self.spool.scan():
            self._push(e)

    def _take(self) -> list[tuple[int, str, int]]:
        """The oldest queued objects within the batch limits (at least one)."""
        batch, size = [], 0
        with self._lock:
            while self._heap and len(batch) < self._limit:
                item = self._heap[0]
                if batch and size + item[2] > self.target.batch_bytes:
                    break
                heapq.heappop(self._heap)
                batch.append(item)
                size += item[2]
        return batch

    def _requeue(self, items) -> None:
        with self._lock:
            for item in items:
                heapq.heappush(self._heap, item)

    def _done(self, uids) -> None:
        with self._lock:
            self._queued.difference_update(uids)

    def pending(self) -> int:
        with self._lock:
            return len(self._queued)

    # --- the loop -----------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        self.state.forwarder("stopped")
        self._write_state(force=True)

    def run(self) -> None:
        log.info("forwarder started: %s (batches of <= %d objects / %d bytes)",
                 self.target.endpoint, self.target.batch_objects, self.target.batch_bytes)
        self._rescan()
        while not self._halt.is_set():
            try:
                self._cycle()
            except Exception as e:  # noqa: BLE001 - the thread must survive anything
                log.error("forwarder cycle failed: %s", type(e).__name__)
                self.state.failed(f"internal error: {type(e).__name__}")
                self._halt.wait(1.0)
        self._close_session()

    def _cycle(self) -> None:
        if time.monotonic() - self._last_scan > RESCAN_SECONDS:
            self._rescan()
        batch = self._take()
        if not batch:
            self.state.forwarder("idle")
            self._write_state()
            self._wake.wait(1.0)
            self._wake.clear()
            if not self._heap:
                self._rescan()
            return
        self.state.forwarder("sending")
        retry = self._send(batch)
        self._write_state()
        if retry:
            self._failures += 1
            delay = min(self.target.retry_max, FIRST_DELAY * 2 ** (self._failures - 1))
            self.state.forwarder("backoff", time.time() + delay)
            self._write_state(force=True)
            self._halt.wait(delay)
        else:
            self._failures = 0

    def _write_state(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_state >= STATE_EVERY:
            self._last_state = now
            try:
                self.state.write(self.spool.paths.forwarder_state)
            except OSError as e:
                log.warning("cannot write state.json (%s)", type(e).__name__)

    # --- one request --------------------------------------------------------------------------

    def _send(self, batch: list[tuple[int, str, int]]) -> bool:
        """Send one batch; True when the caller should back off before the next attempt."""
        parts, sent, items = [], [], []
        for item in batch:
            data = self.spool.read(item[1])
            if data is None:  # gone meanwhile (rejected by an admin, or a stale queue entry)
                self._done([item[1]])
                continue
            parts.append(data)
            sent.append(item[1])
            items.append(item)
        if not parts:
            return False
        body = stow.multipart(parts)
        started = time.monotonic()
        try:
            response = self._post(body)
        except _NotReady as e:
            return self._retry(items, str(e))
        except requests.exceptions.SSLError as e:
            self._close_session()
            return self._retry(items, f"TLS error talking to the MDC ({_short(e)})")
        except (requests.ConnectionError, requests.Timeout) as e:
            self._close_session()
            return self._retry(items, f"MDC unreachable ({type(e).__name__})")
        verdicts = stow.read_response(response.status_code, response.content, sent)
        if verdicts.batch is not None:
            action, reason = verdicts.batch
            if action == stow.SPLIT:
                return self._split(items, reason)
            return self._retry(items, reason)
        return self._apply(items, verdicts, time.monotonic() - started)

    def _post(self, body: stow.Body) -> requests.Response:
        return self._client().post(
            self.target.endpoint, data=body.data, timeout=self.target.timeout,
            headers={"Content-Type": body.content_type, "Accept": "application/dicom+json"})

    def _client(self) -> requests.Session:
        if self._session is None:
            t = self.target
            for what, path in (("client certificate", t.client_cert),
                               ("client key", t.client_key), ("MDC CA", t.ca)):
                if not Path(path).is_file():
                    raise _NotReady(f"no {what} at {path} (see `pacs certs edge NAME`)")
            s = requests.Session()
            s.trust_env = False  # else REQUESTS_CA_BUNDLE / proxies silently change the peer
            s.cert = (str(t.client_cert), str(t.client_key))
            s.verify = str(t.ca)
            self._session = s
        return self._session

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _apply(self, items, verdicts: stow.Verdicts, seconds: float) -> bool:
        acked, acked_bytes, retry = [], 0, []
        for item in items:
            action, reason = verdicts.by_uid[item[1]]
            if action == stow.ACK:
                acked.append(item[1])
                acked_bytes += item[2]
                if reason:
                    log.info("MDC stored %s with %s", item[1], reason)
            elif action == stow.REJECT:
                self._reject(item[1], reason)
            else:
                retry.append((item, reason))
        if acked:
            self.spool.remove(acked)
            self._done(acked)
            self.state.forwarded(len(acked), acked_bytes)
            log.info("forwarded %d object(s), %.1f MB in %.2f s", len(acked),
                     acked_bytes / 1e6, seconds)
            self._limit = min(self.target.batch_objects, self._limit * 2)
        if retry:
            return self._retry([i for i, _ in retry], retry[0][1])
        return False

    def _retry(self, items, reason: str) -> bool:
        self._requeue(items)
        self.state.failed(reason)
        delay = min(self.target.retry_max, FIRST_DELAY * 2 ** self._failures)
        log.warning("forward of %d object(s) failed, retry in %.1f s: %s", len(items), delay,
                    reason)
        return True

    def _split(self, items, reason: str) -> bool:
        if len(items) == 1:
            self._reject(items[0][1], reason)
            return False
        self._limit = max(1, len(items) // 2)
        self._requeue(items)
        log.warning("MDC refused a batch of %d (%s): retrying in batches of %d", len(items),
                    reason, self._limit)
        return False

    def _reject(self, sop_uid: str, reason: str) -> None:
        try:
            self.spool.reject(sop_uid, reason)
        except OSError as e:
            log.error("cannot move %s to rejected/ (%s); kept in the spool", sop_uid,
                      type(e).__name__)
            return
        self._done([sop_uid])
        log.warning("MDC refused %s for good: %s (moved to rejected/)", sop_uid, reason)


class _NotReady(Exception):
    """The forwarder cannot send yet (a certificate file is missing)."""


def _short(e: Exception) -> str:
    text = str(e)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "TLSV1_ALERT", "SSLV3_ALERT", "WRONG_VERSION"):
        if marker in text:
            i = text.index(marker)
            return text[i:i + 60].split("'")[0].split(")")[0]
    return type(e).__name__
