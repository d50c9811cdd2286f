"""Wire the MDC's DIMSE service together from the settings and run it in the foreground.

Listeners: plain DICOM on `mdc_dimse_bind:mdc_dimse_port` (127.0.0.1:11114 by default), and,
when `mdc_dimse_tls_cert`/`_key` are set, DICOM TLS on `mdc_dimse_tls_bind:mdc_dimse_tls_port`
(127.0.0.1:2762 by default). Both serve the same AE with the same handlers; the policy
(`config.DimsePolicy`) admits a peer off loopback only over TLS with a verified client
certificate. The service's start and stop are audited (`dimse_audit`), as are its associations.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

from pacs_hdfs import audit, clients, metrics, schema_version
from pacs_hdfs.containers import ContainerWriter
from pacs_hdfs.dicom import config, scp_logging
from pacs_hdfs.dicom.commit import Committer
from pacs_hdfs.dicom.dimse_audit import DimseAudit
from pacs_hdfs.dicom.ingest import Ingestor
from pacs_hdfs.dicom.server import Handlers, build_ae, event_handlers
from pacs_hdfs.hbase_store import HBaseStore
from pacs_hdfs.settings import Settings

log = logging.getLogger(__name__)


def build_handlers(settings: Settings, ae_title: str) -> Handlers:
    hdfs = clients.hdfs(settings)
    # own pool: associations and the commits' concurrent index writes share it
    hbase = HBaseStore(settings, pool_size=32)
    committer = Committer(hbase, ContainerWriter(hdfs, writer=f"scp-{os.getpid()}"))

    def sink(user: str, action: str, target: str, details: dict) -> None:
        audit.record(settings, user, action, target, store=hbase, **details)
    trail = DimseAudit(ae_title, sink, settings.mdc_dimse_audit_syslog)
    return Handlers(Ingestor(committer), hbase, hdfs, config.DimsePolicy.from_settings(settings),
                    trail)


def run(settings: Settings, ae_title: str | None = None, port: int | None = None) -> None:
    """Log lines once each, tagged with their association (`scp_logging`); pynetdicom's own
    lines from WARNING up only (its debug dumps would print data set values)."""
    scp_logging.setup(config.log_path(settings))
    schema_version.check_at_start(settings, "MDC DIMSE")
    metrics.serve("scp", settings)
    ae_title = ae_title or settings.mdc_dimse_ae_title
    port = port or settings.mdc_dimse_port
    handlers = build_handlers(settings, ae_title)
    ae = build_ae(ae_title, handlers.policy)
    tls = config.ssl_context(settings)
    listeners = [(settings.mdc_dimse_bind, port, None)]
    if tls is not None:
        listeners.append((settings.mdc_dimse_tls_bind, settings.mdc_dimse_tls_port, tls))
    servers = [ae.start_server((host, p), block=False, evt_handlers=event_handlers(handlers),
                               ssl_context=ctx) for host, p, ctx in listeners]
    log.info("MDC DIMSE %s listening on %s (Q/R AEs=%s, store AEs=%s, destinations=%s, "
             "client certificates %s, audit syslog=%s)", ae_title,
             ", ".join(f"{h}:{p}{' (TLS)' if c else ''}" for h, p, c in listeners),
             [str(g) for g in handlers.policy.qr_aes] or "none",
             [str(g) for g in handlers.policy.store_aes] or "none",
             sorted(handlers.destinations),
             "required" if settings.mdc_dimse_tls_ca else "not checked",
             settings.mdc_dimse_audit_syslog or "off")
    handlers.audit.application(True, settings.mdc_dimse_bind)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("MDC DIMSE %s stopping", ae_title)
        for server in servers:
            server.shutdown()
        handlers.audit.application(False, settings.mdc_dimse_bind)
