"""MDC ingest over DICOMweb STOW-RS: hospital edges POST de-identified objects here.

``POST /dicomweb/studies`` and ``POST /dicomweb/studies/{study}`` (PS3.18 10.5), an `APIRouter`
mounted on the gateway app (`hl7_gateway.app.create_app`, served over mutual TLS).

A request, in order:

1. **Who**: the TLS client certificate must be an edge identity (`edge_identity`); anything
   else - the HAS client certificate, a request without the TLS extension - is answered 403.
   On the gateway, the identity gate (`hl7_gateway.identity`) has already refused revoked
   certificates and those that act for no hospital; the summary line names the edge's hospital.
2. **What**: ``Content-Type: multipart/related; type="application/dicom"; boundary=...``, else
   415 (another media type or part type) or 400 (no boundary). Each part is one DICOM Part 10
   file; a part declaring another Content-Type -> 415.
3. **How much**: the body is parsed while it streams (`multipart.MultipartReader`); past
   ``max_bytes`` the request is answered 413 and nothing is stored. A malformed body -> 400.
4. **Each object** is read, validated and verified as de-identified (`received.receive`);
   a refused object is never stored.
5. **One group commit** for every accepted object of the request: a single
   `Committer.store_many` call, i.e. one new verified batch file per series and one HBase batch
   per table (the commit path every ingest shares, `commit.py`; duplicates and conflicts are
   decided there: same SOP Instance UID with the same sha256 -> stored again as success, no
   second copy; other bytes -> 0xC001). Each stored instance row records ``l:edge``.
6. **Answer** only after that commit returned, so success means durable:
   ``application/dicom+json`` with ReferencedSOPSequence / FailedSOPSequence and the HTTP status
   of `stow_response.http_status` (200, 202, 409, 503). A ``Warning: 299`` header per kind of
   refusal says what the FailureReason codes alone cannot (e.g. "not de-identified").

Every refused object logs one line naming the edge, the SOP Instance UID if it has the
de-identified 2.25 form (else "(unverified)"), the status and the reason - rule and attribute
names only, never a value. One summary line per request.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from pacs_hdfs import metrics
from pacs_hdfs.dicom.commit import Committer
from pacs_hdfs.dicom.edge_identity import Peer, peer_from_scope
from pacs_hdfs.dicom.multipart import MultipartError, MultipartReader, Part, parse_content_type
from pacs_hdfs.dicom.received import Received, receive
from pacs_hdfs.dicom.stow_response import InstanceResult, http_status, response_json

log = logging.getLogger(__name__)

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
MULTIPART_RELATED = "multipart/related"
#: Past max_bytes * this, stop draining the body and let the connection drop.
DRAIN_FACTOR = 4
#: Commit outcome kind -> FailureReason (stored/duplicate have none).
OUTCOME_FAILURE = {"conflict": 0xC001, "storage_unavailable": 0xA700}
OUTCOME_WHY = {"conflict": "SOP Instance UID already stored with different content",
               "storage_unavailable": "storage unavailable"}


class Refused(Exception):
    """The whole request is refused before any object is looked at: HTTP status + detail."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def check_content_type(header: str | None) -> str:
    """The boundary of an acceptable STOW-RS Content-Type; Refused(415 / 400) otherwise."""
    try:
        media, params = parse_content_type(header)
    except MultipartError:
        raise Refused(400, "malformed Content-Type") from None
    if media != MULTIPART_RELATED or params.get("type", "").lower() != DICOM:
        raise Refused(415, f'expected {MULTIPART_RELATED}; type="{DICOM}"')
    if not params.get("boundary"):
        raise Refused(400, "multipart boundary missing")
    return params["boundary"]


def check_part(part: Part) -> None:
    """A part may omit its Content-Type (the root type applies); any other type -> 415."""
    if part.media_type not in ("", DICOM):
        raise Refused(415, f"every part must be {DICOM}")


async def read_parts(request: Request, boundary: str, max_bytes: int) -> list[Part]:
    """The request's parts, parsed while the body streams; Refused(413 / 400 / 415)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes * DRAIN_FACTOR:
        raise Refused(413, f"body exceeds the limit of {max_bytes} bytes")
    try:
        reader = MultipartReader(boundary)
    except MultipartError as e:
        raise Refused(400, str(e)) from None
    parts, size, error = [], 0, None
    async for chunk in request.stream():
        size += len(chunk)
        if error is None and size > max_bytes:
            error, parts = Refused(413, f"body exceeds the limit of {max_bytes} bytes"), []
        if error is not None:           # drain a little so the client reads our answer
            if size > max_bytes * DRAIN_FACTOR:
                break
            continue
        try:
            for part in reader.feed(chunk):
                check_part(part)
                parts.append(part)
        except MultipartError as e:
            error, parts = Refused(400, f"malformed multipart body: {e}"), []
        except Refused as e:
            error, parts = e, []
    if error is not None:
        raise error
    try:
        for part in reader.close():
            check_part(part)
            parts.append(part)
    except MultipartError as e:
        raise Refused(400, f"malformed multipart body: {e}") from None
    if not parts:
        raise Refused(400, "no DICOM part in the request")
    return parts


def store(committer: Committer, parts: list[Part], edge: str,
          study: str | None) -> tuple[list[InstanceResult], Counter]:
    """Receive every part, commit the accepted ones together; one result per part, in order,
    and the count of refusals per kind (for the Warning header)."""
    received = [receive(p.body, edge, study) for p in parts]
    accepted = [r for r in received if r.prepared is not None]
    outcomes = iter(committer.store_many([r.prepared for r in accepted]) if accepted else [])
    results, kinds = [], Counter()
    for r in received:
        if r.prepared is None:
            _log_refusal(edge, r, r.failure, r.kind, r.reason)
            kinds[(r.kind, r.failure)] += 1
            results.append(InstanceResult(r.sop_class, r.sop_instance, failure=r.failure))
            continue
        outcome = next(outcomes)
        if outcome.acknowledged:
            results.append(InstanceResult(r.sop_class, r.sop_instance, warning=r.warning))
            if r.warning is not None:
                log.info("stow from edge %s: %s stored with warning 0x%04X: %s", edge,
                         r.loggable_sop, r.warning, r.reason)
            continue
        code = OUTCOME_FAILURE.get(outcome.kind, outcome.status)
        why = OUTCOME_WHY.get(outcome.kind, outcome.kind)
        _log_refusal(edge, r, code, why, outcome.comment)
        kinds[(why, code)] += 1
        results.append(InstanceResult(r.sop_class, r.sop_instance, failure=code))
    return results, kinds


def _log_refusal(edge: str, r: Received, code: int, kind: str, reason: str) -> None:
    log.warning("stow refused from edge %s: %s 0x%04X %s: %s", edge, r.loggable_sop, code,
                kind, reason)


def warning_headers(kinds: Counter) -> list[str]:
    """One RFC 7234 ``Warning: 299`` value per kind of refusal (fixed words and counts)."""
    return [f'299 - "{n} object(s) {kind} (0x{code:04X})"'
            for (kind, code), n in sorted(kinds.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def stow_router(committer: Committer, max_bytes: int,
                identify: Callable[[dict], Peer] = peer_from_scope) -> APIRouter:
    """The STOW-RS routes over ``committer``; bodies larger than ``max_bytes`` are refused."""
    router = APIRouter()

    async def stow(request: Request, study: str | None) -> Response:
        started = time.perf_counter()
        peer = identify(request.scope)
        if peer.edge is None:
            log.warning("stow refused: client certificate %s is not an edge identity (403)",
                        peer.described)
            metrics.STOW_REQUESTS.labels("403").inc()
            return _error(403, "STOW-RS needs an edge client certificate (pacs certs edge)")
        try:
            boundary = check_content_type(request.headers.get("content-type"))
            parts = await read_parts(request, boundary, max_bytes)
        except Refused as e:
            log.warning("stow refused from edge %s: request %d, %s", peer.edge, e.status, e.detail)
            metrics.STOW_REQUESTS.labels(str(e.status)).inc()
            return _error(e.status, e.detail)
        results, kinds = await run_in_threadpool(store, committer, parts, peer.edge, study)
        status = http_status(results)
        for r in results:
            metrics.STOW_INSTANCES.labels(metrics.status_label(r.status_code)).inc()
        metrics.STOW_REQUESTS.labels(str(status)).inc()
        metrics.STOW_SECONDS.observe(time.perf_counter() - started)
        stored = sum(r.stored for r in results)
        log.info("stow from edge %s: %d object(s), %d stored, %d refused, status %d, %.1f ms, "
                 "hospital %s", peer.edge, len(results), stored, len(results) - stored, status,
                 (time.perf_counter() - started) * 1000, peer.hospital or "-")
        response = JSONResponse(response_json(results), status_code=status, media_type=DICOM_JSON)
        for value in warning_headers(kinds):
            response.headers.append("Warning", value)
        return response

    @router.post("/dicomweb/studies")
    async def stow_studies(request: Request) -> Response:
        return await stow(request, None)

    @router.post("/dicomweb/studies/{study}")
    async def stow_study(request: Request, study: str) -> Response:
        return await stow(request, study)

    return router
