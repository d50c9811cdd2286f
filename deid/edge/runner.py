"""`pacs edge`: wire the edge together from the settings and run it in the foreground.

One edge per `$PACS_HOME` (an flock on `edge.lock`): the DICOM SCP (pynetdicom's threads) with
its receive worker processes (`workers`), the forwarder in its own process (`forwarding`) and,
unless `edge_review_port` is 0, the review page (uvicorn in a thread).
Start-up order: lock, recover the spool (crash leftovers), open the vault, then listen. SIGTERM
or SIGINT stops listening first, then the forwarder (an interrupted request is simply re-sent
at the next start), then writes the final state.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from dataclasses import dataclass, field

from deid import burned_in
from deid import profiles as deid_profiles
from deid.edge.forwarder import Target
from deid.edge.forwarding import ForwarderProcess
from deid.edge.layout import EdgePaths
from deid.edge.receive import Receipt, Receiver
from deid.edge.scp import Handlers, allowed_aes, build_ae, event_handlers, tls_context
from deid.edge.spool import Spool
from deid.edge.stages import StageStats
from deid.edge.state import EdgeState
from pacs_hdfs import metrics
from pacs_hdfs.dicom import scp_logging
from pacs_hdfs.settings import Settings

from deid.vault_access import open_vault

log = logging.getLogger(__name__)


class EdgeBusy(RuntimeError):
    """Another `pacs edge` already runs on this `$PACS_HOME`."""


def target(settings: Settings) -> Target:
    """Where the forwarder sends, and the certificates it uses (defaults under certs/)."""
    certs = settings.certs_path
    edges = certs / "edges"
    return Target(
        url=settings.edge_mdc_url,
        client_cert=settings.edge_client_cert or edges / f"{settings.edge_name}.pem",
        client_key=settings.edge_client_key or edges / f"{settings.edge_name}.key",
        ca=settings.edge_mdc_ca or certs / "ca.pem",
        batch_objects=settings.edge_batch_objects, batch_bytes=settings.edge_batch_bytes,
        retry_max=settings.edge_retry_max_seconds)


#: default receive processes on a machine with more than one CPU: one per association of a
#: modality sending with 4 at once, so one object's fsync wait never holds up another's work
DEFAULT_WORKERS = 4


def worker_count(settings: Settings) -> int:
    """`edge_workers`, or by default DEFAULT_WORKERS, and 0 (receive in the SCP's threads) on
    a single CPU, where extra processes only add the hand-over cost."""
    if settings.edge_workers is not None:
        return settings.edge_workers
    return DEFAULT_WORKERS if (os.cpu_count() or 1) > 1 else 0


def take_lock(paths: EdgePaths) -> int:
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EdgeBusy(f"another pacs edge runs on {paths.root}") from None
    return fd


@dataclass
class Edge:
    """A started edge (tests drive this directly; `run` wraps it for the CLI)."""
    paths: EdgePaths
    receiver: Receiver
    state: EdgeState
    forwarder: ForwarderProcess
    server: object
    review: object | None
    lock_fd: int
    workers: object | None = None
    _reporting: threading.Event = field(default_factory=threading.Event)

    def _report(self) -> None:
        """About once a second: state.json for `pacs edge status`, and a forwarder process
        that died on its own is restarted."""
        while not self._reporting.wait(1.0):
            try:
                self.state.write(self.paths.state)
                self.forwarder.check()
            except Exception as e:  # noqa: BLE001 - reporting must not stop the edge
                log.warning("edge report failed (%s)", type(e).__name__)

    def receive(self, raw: bytes, calling_ae: str = "") -> Receipt:
        if self.workers is not None:
            receipt = self.workers.store(raw, calling_ae)
            self.receiver.stats.add(receipt.times)
        else:
            receipt = self.receiver.store(raw, calling_ae)
        self.state.count_received(receipt.kind)
        if receipt.kind == "stored" and receipt.hold_reason is None:
            self.forwarder.notify(receipt.sop_uid, receipt.size)
        return receipt

    def stop(self) -> None:
        log.info("edge stopping")
        self.server.shutdown()
        if self.review is not None:
            self.review.should_exit = True
        self._reporting.set()
        self.forwarder.stop()
        if self.workers is not None:
            self.workers.close()
        self.state.write(self.paths.state)
        os.close(self.lock_fd)
        log.info("edge stopped")


def start(settings: Settings) -> Edge:
    """Lock, recover, open the vault, start the forwarder, the review page and the SCP."""
    paths = EdgePaths.from_settings(settings).create()
    lock_fd = take_lock(paths)
    edge = None
    try:
        profiles = deid_profiles.from_settings(settings)  # a bad profile stops the start here
        burned_in.default_rules()  # missing pixel rule files stop the start, not each object
        spool = Spool(paths)
        spool.recover()
        vault_path, key_path = (settings.path("hospital", "vault.bin"),
                                settings.path("hospital", "master.key"))
        vault = open_vault(vault_path, key_path)
        stats = StageStats()
        state = EdgeState(settings.edge_name, settings.edge_mdc_url, stats)
        receiver = Receiver(vault.deid_keys(), vault, spool, stats, profiles)
        forwarder = ForwarderProcess(paths.root, target(settings), settings.edge_name,
                                     settings.edge_log or settings.path("logs", "edge.log"))
        edge = Edge(paths, receiver, state, forwarder, None, None, lock_fd)
        n_workers = worker_count(settings)
        if n_workers:
            from deid.edge.workers import WorkerPool
            edge.workers = WorkerPool(n_workers, vault_path, key_path, paths.root, profiles)
        threading.Thread(target=edge._report, name="edge-report", daemon=True).start()
        edge.review = _start_review(settings, paths)
        ae = build_ae(settings)
        tls = tls_context(settings.edge_tls_cert, settings.edge_tls_key, settings.edge_tls_ca)
        edge.server = ae.start_server((settings.edge_bind, settings.edge_port), block=False,
                                      evt_handlers=event_handlers(Handlers(edge.receive)),
                                      ssl_context=tls)
    except BaseException:
        if edge is not None:
            edge._reporting.set()
            edge.forwarder.stop(timeout=1.0)
            if edge.workers is not None:
                edge.workers.close()
        os.close(lock_fd)
        raise
    log.info("edge %s: SCP %s on %s:%d (tls=%s, allowed=%s, receive workers=%d), forwarding "
             "to %s, spool %s", settings.edge_name, settings.edge_ae_title, settings.edge_bind,
             settings.edge_port, bool(tls), allowed_aes(settings.edge_allowed_aes) or "any",
             worker_count(settings), settings.edge_mdc_url, paths.spool)
    log.info("de-identification options (method codes) per calling AE: %s",
             edge.receiver.profiles.describe())
    return edge


def _start_review(settings: Settings, paths: EdgePaths):
    if not settings.edge_review_port:
        return None
    import uvicorn

    from deid.edge.review import create_app
    from deid.edge.users import EdgeUsers
    app = create_app(paths, EdgeUsers(paths.users), settings.edge_name)
    config = uvicorn.Config(app, host=settings.edge_review_bind, port=settings.edge_review_port,
                            log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="edge-review", daemon=True).start()
    log.info("review page on http://%s:%d/", settings.edge_review_bind, settings.edge_review_port)
    return server


def run(settings: Settings) -> None:
    """`pacs edge` in the foreground until SIGTERM / SIGINT."""
    scp_logging.setup(settings.edge_log or settings.path("logs", "edge.log"), service="edge")
    edge = start(settings)
    metrics.register_scrape(Spool(edge.paths).backlog)
    metrics.serve("edge", settings)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    edge.stop()
