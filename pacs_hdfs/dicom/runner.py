"""Wire the MDC's DIMSE service together from the settings and run it in the foreground."""
from __future__ import annotations

import logging
import os

from pacs_hdfs import clients
from pacs_hdfs.containers import ContainerWriter
from pacs_hdfs.dicom import config, scp_logging
from pacs_hdfs.dicom.commit import Committer
from pacs_hdfs.dicom.ingest import Ingestor
from pacs_hdfs.dicom.server import Handlers, build_ae, event_handlers
from pacs_hdfs.hbase_store import HBaseStore
from pacs_hdfs.settings import Settings

log = logging.getLogger("pacs.scp")


def build_handlers(settings: Settings) -> Handlers:
    hdfs = clients.hdfs(settings)
    # own pool: associations and the commits' concurrent index writes share it
    hbase = HBaseStore(settings, pool_size=32)
    committer = Committer(hbase, ContainerWriter(hdfs, writer=f"scp-{os.getpid()}"))
    return Handlers(Ingestor(committer), hbase, hdfs, config.DimsePolicy.from_settings(settings))


def run(settings: Settings, ae_title: str | None = None, port: int | None = None) -> None:
    """Log lines once each, tagged with their association (`scp_logging`); pynetdicom's own
    lines from WARNING up only (its debug dumps would print data set values)."""
    scp_logging.setup(config.log_path(settings))
    handlers = build_handlers(settings)
    ae_title = ae_title or settings.mdc_dimse_ae_title
    port = port or settings.mdc_dimse_port
    ae = build_ae(ae_title, handlers.policy)
    tls = config.ssl_context(settings)
    log.info("MDC DIMSE %s listening on %s:%d (tls=%s, Q/R AEs=%s, store AEs=%s, "
             "destinations=%s)", ae_title, settings.mdc_dimse_bind, port, bool(tls),
             sorted(handlers.policy.qr_aes) or "none", sorted(handlers.policy.store_aes) or "none",
             sorted(handlers.destinations))
    ae.start_server((settings.mdc_dimse_bind, port), block=True,
                    evt_handlers=event_handlers(handlers), ssl_context=tls)
