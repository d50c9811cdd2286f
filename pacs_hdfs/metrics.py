"""Prometheus metrics of every service, and the `/metrics` listener each one starts.

Each long-running service (`pacs edge`, `pacs scp`, `pacs gateway`, `pacs portal`, the job
runner) calls `serve(service, settings)`: a plain-HTTP listener on `metrics_bind` (loopback by
default, like every listener) and the service's port in `metrics_ports` (0 = none), answering
`GET /metrics` in the Prometheus text format. A separate listener, rather than a route on the
service's own port, because the gateway's port demands a hospital's client certificate and the
edge's is DICOM; scrapers get one uniform endpoint per service.

What is measured (names follow Prometheus conventions: `_total` counters, `_seconds`):

| metric | labels | where |
|---|---|---|
| pacs_dicom_store_total | service, status | C-STORE answers (edge: from modalities; scp: de-identified stores) |
| pacs_dicom_store_seconds | service | C-STORE handling time |
| pacs_stow_instances_total | status | STOW-RS per-object outcome (0x0000, warnings 0xB0nn, failures) |
| pacs_stow_requests_total | code | STOW-RS HTTP answers |
| pacs_stow_seconds | | STOW-RS request time, commit included |
| pacs_edge_spool_objects / _oldest_seconds | | the edge's forward backlog and its age, read at scrape |
| pacs_hl7_acks_total | code | HL7 v3 acknowledgements per visit (AA, AE, AR) |
| pacs_jobs | kind, state | jobs per state, read from the job table at scrape |
| pacs_job_seconds | kind, state | run time of finished jobs |
| pacs_search_seconds | | portal case-search time |
| pacs_search_index_lag_seconds | | age of the newest visit the portal's index has applied |
| pacs_storage_errors_total | backend, cause | HDFS/HBase calls that failed after their retries |

Labels never carry identifiers (no UIDs, users or hospitals): bounded cardinality, no PHI.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

#: latency buckets (seconds) for request-like operations: 1 ms .. 60 s
LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: job durations: 1 s .. 2 h
JOB_DURATION = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)

DICOM_STORE = Counter("pacs_dicom_store", "C-STORE answers by status", ["service", "status"])
DICOM_STORE_SECONDS = Histogram("pacs_dicom_store_seconds", "C-STORE handling time",
                                ["service"], buckets=LATENCY)
STOW_INSTANCES = Counter("pacs_stow_instances", "STOW-RS objects by outcome status", ["status"])
STOW_REQUESTS = Counter("pacs_stow_requests", "STOW-RS requests by HTTP status", ["code"])
STOW_SECONDS = Histogram("pacs_stow_seconds", "STOW-RS request time", buckets=LATENCY)
HL7_ACKS = Counter("pacs_hl7_acks", "HL7 v3 acknowledgements by code", ["code"])
JOB_SECONDS = Histogram("pacs_job_seconds", "run time of finished jobs", ["kind", "state"],
                        buckets=JOB_DURATION)
SEARCH_SECONDS = Histogram("pacs_search_seconds", "portal case-search time", buckets=LATENCY)
STORAGE_ERRORS = Counter("pacs_storage_errors", "HDFS/HBase calls failed after retries",
                         ["backend", "cause"])

#: storage error causes, first match wins: (cause, words in the error's text)
STORAGE_CAUSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timeout", ("timed out", "Timeout", "timeout")),
    ("unreachable", ("Connection refused", "ConnectException", "ConnectionError",
                     "TTransportException", "Max retries exceeded")),
    ("safemode", ("SafeModeException",)),
    ("replication", ("could only be", "NotReplicatedYet", "All datanodes",
                     "Failed to replace a bad datanode", "DataStreamer")),
    ("lease", ("Lease", "lease", "AlreadyBeingCreated", "RecoveryInProgress")),
    ("not_found", ("FileNotFoundException", "File does not exist", "TableNotFound")),
    ("exists", ("FileAlreadyExistsException", "already exists")),
    ("permission", ("AccessControlException", "Permission denied")),
)


def status_label(status: int) -> str:
    """A DICOM status as its label: 0x0000, 0xB000, 0xA900, ..."""
    return f"0x{status:04X}"


def storage_cause(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    for cause, words in STORAGE_CAUSES:
        if any(w in text for w in words):
            return cause
    return "other"


def storage_failed(backend: str, error: BaseException) -> None:
    """Count a storage call that failed for good (after its retries)."""
    STORAGE_ERRORS.labels(backend, storage_cause(error)).inc()


@contextmanager
def dicom_store(service: str):
    """Time one C-STORE; the caller sets the answered status on the yielded dict."""
    answer = {"status": 0xC000}
    started = time.perf_counter()
    try:
        yield answer
    finally:
        DICOM_STORE_SECONDS.labels(service).observe(time.perf_counter() - started)
        DICOM_STORE.labels(service, status_label(answer["status"])).inc()


class ReadAtScrape:
    """A collector whose gauges are computed when Prometheus scrapes (the spool backlog, job
    states, index lag): `read()` returns {metric name: (help, labels, {label values: value})}.
    A read that fails yields nothing rather than a stale value; it is logged once per scrape."""

    def __init__(self, read: Callable[[], dict]):
        self.read = read

    def collect(self):
        try:
            families = self.read()
        except Exception as e:  # noqa: BLE001 - a scrape must not fail the service
            log.warning("metrics read failed: %s", type(e).__name__)
            return
        for name, (help_text, labels, values) in families.items():
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            for label_values, value in values.items():
                family.add_metric(list(label_values), value)
            yield family


def register_scrape(read: Callable[[], dict]) -> ReadAtScrape:
    collector = ReadAtScrape(read)
    REGISTRY.register(collector)
    return collector


def serve(service: str, settings) -> int | None:
    """Start the service's `/metrics` listener (a daemon thread); return its port, or None when
    it is turned off (port 0) or the port is taken (logged: a service never fails for it)."""
    port = settings.metrics_ports.get(service, 0)
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, addr=settings.metrics_bind)
    except OSError as e:
        log.warning("metrics for %s not served: %s:%d: %s", service, settings.metrics_bind,
                    port, e.strerror or type(e).__name__)
        return None
    log.info("metrics of %s on http://%s:%d/metrics", service, settings.metrics_bind,
             server.server_port)
    return server.server_port
