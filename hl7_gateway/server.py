"""Serve the gateway with uvicorn over HTTPS only, TLS >= 1.2, client certificates required."""
from __future__ import annotations

import logging
import ssl
from pathlib import Path

import uvicorn

from hl7_gateway.app import create_app
from hl7_gateway.certs import CertPaths
from hl7_gateway.parser import ParserLimits
from hl7_gateway.store import VisitStore
from pacs_hdfs.settings import Settings


def configure_logging(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in ("hl7_gateway", "pacs_hdfs"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)


def uvicorn_config(app, certs: CertPaths, host: str, port: int) -> uvicorn.Config:
    """uvicorn with mutual TLS; the SSL context is then pinned to TLS 1.2 or newer."""
    config = uvicorn.Config(app, host=host, port=port, ssl_certfile=str(certs.server_cert),
                            ssl_keyfile=str(certs.server_key), ssl_ca_certs=str(certs.ca_cert),
                            ssl_cert_reqs=ssl.CERT_REQUIRED, log_level="warning",
                            access_log=False, timeout_keep_alive=30)
    config.load()
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    return config


def serve(settings: Settings, certs: CertPaths, host: str = "127.0.0.1", port: int | None = None,
          limits: ParserLimits = ParserLimits(), log_file: Path | None = None) -> None:
    """Run the gateway in the foreground until interrupted."""
    configure_logging(log_file or settings.path("logs", "gateway.log"))
    app = create_app(VisitStore(settings), limits)
    config = uvicorn_config(app, certs, host, port or settings.gateway_port)
    logging.getLogger("hl7_gateway").info("gateway listening on https://%s:%d (mTLS)",
                                          host, config.port)
    uvicorn.Server(config).run()
