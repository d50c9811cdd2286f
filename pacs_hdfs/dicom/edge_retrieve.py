"""WADO-RS for hospital edges: `GET /dicomweb/studies/{study}` on the gateway's mutual-TLS port.

What a hospital needs to re-attach identity to its own studies (`pacs has personalise`, on the
edge): the study's objects exactly as stored, as ``multipart/related; type="application/dicom"``.
Only an edge identity may call it (the client certificate of `pacs certs edge NAME`), and it
gets only the objects that edge sent (`l:edge` on the instance row): one hospital never reads
another's studies through this route. On the gateway the identity gate
(`hl7_gateway.identity`) has already refused revoked certificates and those of no hospital.
An edge name belongs to one hospital: `pacs certs edge` will not issue a name again for another
hospital without ``--force`` (see hl7_gateway/README.md, "Who may call"), so the edge name on
the instance row also names the hospital. Every call logs one line (edge, hospital, study,
counts); a study that exists but is another edge's answers 404 exactly like an unknown one.

Honest like the portal's WADO-RS: every object is read and verified (sha256) before its part is
written; an object that cannot be read ends the body with a final ``application/json`` part
naming the unreadable instances (never a silently shorter 200 body).
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydicom import Dataset

from pacs_hdfs.dicom import query
from pacs_hdfs.dicom.edge_identity import Peer, peer_from_scope
from pacs_hdfs.dicom.multipart import close_bytes, part_bytes
from pacs_hdfs.dicom.stored import read_bytes
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance

log = logging.getLogger(__name__)
DICOM = "application/dicom"


def edge_objects(hbase, study: str, edge: str) -> list[query.Stored]:
    """The study's stored objects that `edge` sent."""
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study
    return [s for s in query.instance_locations(hbase, ident)
            if instance.edge(s.row) == edge]


def retrieve_router(hbase, hdfs, identify: Callable[[dict], Peer] = peer_from_scope
                    ) -> APIRouter:
    router = APIRouter()

    @router.get("/dicomweb/studies/{study}")
    def retrieve_study(study: str, request: Request) -> Response:
        peer = identify(request.scope)
        if peer.edge is None:
            log.warning("edge retrieve refused: %s is not an edge identity (403)",
                        peer.described)
            return JSONResponse({"detail": "needs an edge client certificate"}, 403)
        try:
            items = edge_objects(hbase, study, peer.edge)
        except StorageError as e:
            log.error("edge retrieve by %s of %s: index unavailable: %s", peer.edge, study, e)
            return JSONResponse({"detail": "storage unavailable, retry later"}, 503)
        if not items:
            log.info("edge retrieve by %s (hospital %s) of %s: nothing from this edge (404)",
                     peer.edge, peer.hospital or "-", study)
            return JSONResponse({"detail": "no such study from this edge"}, 404)
        boundary = uuid.uuid4().hex

        def body():
            failed = []
            for item in items:
                try:
                    data = read_bytes(hbase, hdfs, item.key, item.row)
                except StorageError as e:
                    failed.append(item.sop_uid)
                    log.error("edge retrieve by %s of %s: %s unreadable: %s", peer.edge,
                              study, item.sop_uid, str(e)[:200])
                    continue
                yield part_bytes(boundary, DICOM, data)
            if failed:
                yield part_bytes(boundary, "application/json", json.dumps(
                    {"error": "instances could not be read", "failed": failed}).encode())
            log.info("edge retrieve by %s (hospital %s) of %s: %d object(s), %d unreadable",
                     peer.edge, peer.hospital or "-", study, len(items) - len(failed),
                     len(failed))
            yield close_bytes(boundary)

        return StreamingResponse(body(), media_type=(
            f'multipart/related; type="{DICOM}"; boundary={boundary}'))

    return router
