"""Serve the gateway with uvicorn over HTTPS only, TLS >= 1.2, client certificates required.

The app gets each connection's verified client certificate (`tls_scope.PeerCertProtocol`); the
identity gate (`identity.IdentityGate`) admits only unrevoked certificates that act for a
hospital; the HL7 routes then serve HAS clients, STOW-RS and the edge WADO-RS edge identities.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import ssl
from pathlib import Path

import uvicorn

from hl7_gateway.app import create_app
from hl7_gateway.certs import CertPaths
from hl7_gateway.identity import Identities
from hl7_gateway.parser import ParserLimits
from hl7_gateway.store import VisitStore
from hl7_gateway.tls_scope import PeerCertProtocol
from pacs_hdfs import audit, logs, metrics, schema_version
from pacs_hdfs.hardening import harden
from pacs_hdfs.settings import Settings


def uvicorn_config(app, certs: CertPaths, host: str, port: int) -> uvicorn.Config:
    """uvicorn with mutual TLS; the SSL context is then hardened: TLS 1.2 or newer, AEAD
    suites only (`pacs_hdfs.hardening`)."""
    config = uvicorn.Config(app, host=host, port=port, ssl_certfile=str(certs.server_cert),
                            ssl_keyfile=str(certs.server_key), ssl_ca_certs=str(certs.ca_cert),
                            ssl_cert_reqs=ssl.CERT_REQUIRED, log_level="warning",
                            access_log=False, timeout_keep_alive=30, http=PeerCertProtocol)
    config.load()
    harden(config.ssl)
    return config


def stow_routes(settings: Settings):
    """The DICOMweb routes for hospital edges: STOW-RS ingest over this process's own group
    committer, and WADO-RS of an edge's own studies (for `pacs has personalise`)."""
    from fastapi import APIRouter

    from pacs_hdfs import clients
    from pacs_hdfs.containers import ContainerWriter
    from pacs_hdfs.dicom.commit import Committer
    from pacs_hdfs.dicom.edge_retrieve import retrieve_router
    from pacs_hdfs.dicom.stow import stow_router
    hbase, hdfs = clients.hbase(settings), clients.hdfs(settings)
    committer = Committer(hbase, ContainerWriter(hdfs, writer=f"stow-{os.getpid()}"))
    routes = APIRouter()
    routes.include_router(stow_router(committer, settings.mdc_stow_max_bytes))
    routes.include_router(retrieve_router(hbase, hdfs))
    return routes


def serve(settings: Settings, certs: CertPaths, host: str = "127.0.0.1", port: int | None = None,
          limits: ParserLimits = ParserLimits(), log_file: Path | None = None) -> None:
    """Run the gateway in the foreground until interrupted."""
    logs.setup("gateway", log_file or settings.path("logs", "gateway.log"))
    schema_version.check_at_start(settings, "gateway")
    metrics.serve("gateway", settings)
    limits = dataclasses.replace(limits, screen_text=settings.hl7_gateway_text_screen)
    identities = Identities.from_settings(settings, certs)
    app = create_app(VisitStore(settings), identities, limits, stow_routes(settings),
                     audit=functools.partial(audit.record, settings))
    config = uvicorn_config(app, certs, host, port or settings.gateway_port)
    logging.getLogger(__name__).info(
        "gateway listening on https://%s:%d (mTLS; HL7 v3, STOW-RS); %d certificate CN(s) "
        "mapped to hospitals, certificate hospitals %s, revocation: %d deny-list entries, "
        "CRL %s", host, config.port, len(identities.hospitals),
        "accepted" if identities.from_certificate else "ignored",
        len(settings.gateway_revoked), identities.revocations.crl_path)
    uvicorn.Server(config).run()
