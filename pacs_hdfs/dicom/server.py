"""`pacs scp`: the pynetdicom AE with Verification, Storage and Query/Retrieve SCP roles.

Handlers are thin: storage goes to `ingest.Ingestor`, queries and retrieves to `query`.
Every failure becomes a DICOM status here, with a log line naming what failed (no PHI: only
de-identified UIDs, AE titles and exception types are logged).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts, build_context, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pacs_hdfs.dicom import query
from pacs_hdfs.dicom.config import ScpConfig
from pacs_hdfs.dicom.ingest import STATUS, Ingestor
from pacs_hdfs.hdfs_store import StorageError

log = logging.getLogger("pacs.scp")

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
TRANSFER_SYNTAXES = UNCOMPRESSED + [
    DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit,
    JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless,
    JPEG2000, RLELossless]
QR_MODELS = (PatientRootQueryRetrieveInformationModelFind,
             StudyRootQueryRetrieveInformationModelFind,
             PatientRootQueryRetrieveInformationModelMove,
             StudyRootQueryRetrieveInformationModelMove,
             PatientRootQueryRetrieveInformationModelGet,
             StudyRootQueryRetrieveInformationModelGet)

#: Q/R failure statuses, as data.
QR_STATUS = {"bad_identifier": 0xA900, "storage_unavailable": 0xA700,
             "unknown_destination": 0xA801, "cannot_process": 0xC000}


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


@dataclass
class Handlers:
    ingestor: Ingestor
    hbase: object
    hdfs: object
    destinations: dict[str, tuple[str, int]]

    def echo(self, event) -> int:
        return 0x0000

    def store(self, event):
        try:
            outcome = self.ingestor.store(event.encoded_dataset(include_meta=True))
        except Exception as e:  # noqa: BLE001 - a bug must not kill the association or log PHI
            log.error("store failed unexpectedly: %s", type(e).__name__)
            return _failure(STATUS["deid_failed"][0], STATUS["deid_failed"][1])
        if outcome.status:
            return _failure(outcome.status, outcome.comment)
        if outcome.quarantine:
            log.info("stored %s in quarantine: %s", outcome.sop_uid, outcome.quarantine)
        return 0x0000

    def _matches(self, event, what: str):
        """The query's results, or a failure status (logged)."""
        answer = query.find if what == "find" else query.instance_locations
        try:
            return list(answer(self.hbase, event.identifier)), None
        except query.QueryError as e:
            log.warning("C-%s refused: %s", what.upper(), e)
            return None, QR_STATUS["bad_identifier"]
        except StorageError as e:
            log.error("C-%s failed: %s", what.upper(), e)
            return None, QR_STATUS["storage_unavailable"]
        except Exception as e:  # noqa: BLE001 - e.g. an undecodable identifier
            log.error("C-%s failed: %s", what.upper(), type(e).__name__)
            return None, QR_STATUS["cannot_process"]

    def find(self, event):
        results, status = self._matches(event, "find")
        if status is not None:
            yield status, None
            return
        for ds in results:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    def _send(self, event, stored: list[query.Stored]):
        for item in stored:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            try:
                ds = query.load(self.hbase, self.hdfs, item)
            except StorageError as e:
                log.error("retrieve failed reading an instance: %s", e)
                yield QR_STATUS["storage_unavailable"], None
                return
            yield 0xFF00, ds

    def move(self, event):
        stored, status = self._matches(event, "move")
        destination = self.destinations.get(event.move_destination.strip())
        if destination is None:
            log.warning("C-MOVE refused: unknown destination AE %r", event.move_destination)
            yield None, None
            return
        if status is not None:
            yield destination
            yield 1
            yield status, None
            return
        contexts = move_contexts(stored)
        yield destination[0], destination[1], {"contexts": contexts}
        yield len(stored)
        yield from self._send(event, stored)

    def get(self, event):
        stored, status = self._matches(event, "get")
        if status is not None:
            yield 1
            yield status, None
            return
        yield len(stored)
        yield from self._send(event, stored)


def move_contexts(stored: list[query.Stored]) -> list:
    """Presentation contexts for a C-MOVE sub-association: each SOP class in its stored
    transfer syntax (plus the uncompressed ones), at most 128."""
    wanted: dict[str, list[str]] = {}
    for s in stored:
        ts = wanted.setdefault(s.sop_class, list(UNCOMPRESSED))
        if s.transfer_syntax and s.transfer_syntax not in ts:
            ts.insert(0, s.transfer_syntax)
    return [build_context(cls, ts) for cls, ts in list(wanted.items())[:128]]


def build_ae(ae_title: str, cfg: ScpConfig) -> AE:
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = 0  # unlimited: fewer, larger PDUs on the store path
    ae.require_calling_aet = sorted(cfg.allowed())
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    for cx in AllStoragePresentationContexts:  # Storage SCP, and the C-GET SCP's sub-ops
        ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES,
                                 scp_role=True, scu_role=False)
    for model in QR_MODELS:
        ae.add_supported_context(model)
    ae.network_timeout = 60
    ae.dimse_timeout = 120
    ae.maximum_associations = 32
    return ae


def event_handlers(h: Handlers) -> list:
    return [(evt.EVT_C_ECHO, h.echo), (evt.EVT_C_STORE, h.store), (evt.EVT_C_FIND, h.find),
            (evt.EVT_C_MOVE, h.move), (evt.EVT_C_GET, h.get)]
