"""The edge's DICOM SCP: Verification and Storage for the hospital's modalities.

Every storage SOP class pynetdicom knows, in the transfer syntaxes the MDC's SCP accepts, stored
as received (nothing is decompressed). A calling-AE allow-list (`edge_allowed_aes`) and optional
DICOM TLS (`edge_tls_*`). Each association is served in its own thread (pynetdicom's model);
the C-STORE handler hands the received bytes and the calling AE title (which picks the
de-identification profile) to `receive.Receiver` and turns its receipt into the C-STORE status.
Log lines carry the association (`pacs_hdfs.dicom.scp_logging`) and name only de-identified
UIDs, AE titles and exception types.
"""
from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Callable

from pydicom import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from deid.edge.receive import Receipt
from pacs_hdfs import metrics
from pacs_hdfs.dicom.part10 import TRANSFER_SYNTAXES
from pacs_hdfs.hardening import harden
from pacs_hdfs.dicom.scp_logging import notification_handlers, operation
from pacs_hdfs.settings import Settings

log = logging.getLogger(__name__)

#: C-STORE status when the handler itself fails (a bug must not kill the association)
UNEXPECTED = (0xC002, "Cannot process: unexpected edge failure")


def allowed_aes(text: str) -> list[str]:
    return sorted({a.strip() for a in text.split(",") if a.strip()})


def tls_context(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext | None:
    """Server TLS for DICOM, or None without a certificate; with `ca`, modalities must present
    a certificate it signed. The project's TLS policy applies (TLS 1.2+, AEAD suites only)."""
    if not cert:
        return None
    ctx = harden(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def build_ae(settings: Settings) -> AE:
    ae = AE(ae_title=settings.edge_ae_title)
    ae.maximum_pdu_size = 0  # unlimited: fewer, larger PDUs on the store path
    ae.require_calling_aet = allowed_aes(settings.edge_allowed_aes)
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES)
    ae.network_timeout = 60
    ae.dimse_timeout = 120
    ae.acse_timeout = 30
    ae.maximum_associations = 32
    return ae


def _response(status: int, comment: str) -> Dataset | int:
    if not status:
        return 0x0000
    ds = Dataset()
    ds.Status = status
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


class Handlers:
    """C-ECHO and C-STORE. `receive(raw, calling_ae)` is `Receiver.store` (or a worker pool's
    equivalent)."""

    def __init__(self, receive: Callable[[bytes, str], Receipt]):
        self.receive = receive

    def echo(self, event) -> int:
        return 0x0000

    def store(self, event):
        with metrics.dicom_store("edge") as answer:
            try:
                receipt = self.receive(event.encoded_dataset(include_meta=True),
                                       event.assoc.requestor.ae_title)
            except Exception as e:  # noqa: BLE001 - answered, logged without values
                log.error("C-STORE failed unexpectedly, answered 0x%04X: %s", UNEXPECTED[0],
                          type(e).__name__)
                answer["status"] = UNEXPECTED[0]
                return _response(*UNEXPECTED)
            if receipt.status and not receipt.accepted:
                log.warning("C-STORE of %s answered 0x%04X: %s", receipt.sop_uid or "(no UID)",
                            receipt.status, receipt.comment)
            answer["status"] = receipt.status or 0
            return _response(receipt.status, receipt.comment)


def event_handlers(h: Handlers) -> list:
    return [(evt.EVT_C_ECHO, operation("C-ECHO", h.echo)),
            (evt.EVT_C_STORE, operation("C-STORE", h.store))] + notification_handlers()
