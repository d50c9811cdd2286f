"""Wire the SCP together from the settings and run it in the foreground."""
from __future__ import annotations

import logging
import os

from pacs_hdfs import clients
from pacs_hdfs.containers import ContainerWriter
from pacs_hdfs.dicom import scp_logging
from pacs_hdfs.dicom.config import ScpConfig
from pacs_hdfs.dicom.commit import Committer
from pacs_hdfs.dicom.ingest import Ingestor
from pacs_hdfs.dicom.server import Handlers, build_ae, event_handlers
from pacs_hdfs.dicom.vault_access import open_vault
from pacs_hdfs.hbase_store import HBaseStore
from pacs_hdfs.settings import Settings

log = logging.getLogger("pacs.scp")


def setup_logging(path) -> None:
    """Our log lines to the SCP log file and stderr, each once and tagged with the association
    it belongs to (see `scp_logging`); pynetdicom's own lines from WARNING up only (its debug
    dumps would print dataset values, i.e. PHI)."""
    scp_logging.setup(path)


def build_handlers(settings: Settings, cfg: ScpConfig) -> Handlers:
    vault = open_vault(cfg.vault_path(settings), cfg.key_path(settings))
    hdfs = clients.hdfs(settings)
    # own pool: associations and the commits' concurrent index writes share it
    hbase = HBaseStore(settings, pool_size=32)
    committer = Committer(hbase, ContainerWriter(hdfs, writer=f"scp-{os.getpid()}"))
    ingestor = Ingestor(committer, vault.deid_keys(), vault)
    return Handlers(ingestor, hbase, hdfs, cfg.move_destinations())


def run(settings: Settings, cfg: ScpConfig, ae_title: str, port: int) -> None:
    setup_logging(cfg.log_path(settings))
    handlers = build_handlers(settings, cfg)
    ae = build_ae(ae_title, cfg)
    tls = cfg.ssl_context()
    log.info("SCP %s listening on %s:%d (tls=%s, allowed=%s, destinations=%s)", ae_title,
             cfg.bind, port, bool(tls), sorted(cfg.allowed()) or "all",
             sorted(handlers.destinations))
    ae.start_server((cfg.bind, port), block=True, evt_handlers=event_handlers(handlers),
                    ssl_context=tls)
