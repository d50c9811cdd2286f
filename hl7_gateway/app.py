"""The MDC HL7 v3 gateway: a FastAPI app (served over mutual TLS by ``server.py``).

- ``POST /hl7/v3``: body = one PRPA_IN402001UV02 or an MCCI_IN200100UV01 batch; answer = one
  MCCI_IN000002UV01 accept acknowledgement. The body is read in chunks and never buffered past
  the limit (AR ``BODY_TOO_LARGE``). AA is answered only after ``VisitStore.store`` returned,
  i.e. after HDFS and HBase are durable; a storage failure turns every accepted visit into AE
  ``STORAGE_UNAVAILABLE`` (the HAS retries), and HTTP 503.
- ``GET /hl7/v3/visits/{visit_id}``: the stored visit (JSON) by encrypted visit id.
- ``GET /healthz``.
- With a ``stow`` router (`pacs_hdfs.dicom.stow.stow_router`): the MDC's DICOMweb STOW-RS
  ingest for hospital edges, ``POST /dicomweb/studies[/{study}]``, on the same mutual-TLS port.

HTTP status mirrors the ack: 200 AA/AE, 400 AR, 413 too large, 503 storage failure. Log lines
name request id, counts and error *codes* only (never message content, so never PHI).

**Who.** Every request passes `identity.IdentityGate` first: a revoked certificate, or one that
acts for no hospital, is refused (403) before any route runs. The HL7 routes then serve a HAS
client of that hospital (an edge certificate is 403 here: it stores images, not visits): a
visit is stored as that hospital's, and one whose visit or subject row another hospital owns
is answered AE ``VISIT_OF_ANOTHER_HOSPITAL`` / ``SUBJECT_OF_ANOTHER_HOSPITAL`` with nothing
written (`ownership`); reading another hospital's visit answers 404 exactly as an unknown id.
"""
from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from hl7_gateway.ack import acknowledgement_for, build_ack_element
from hl7_gateway.builder import to_bytes
from hl7_gateway.identity import AUDIT_ACTION, Audit, Identities, IdentityGate
from hl7_gateway.models import AckDetail
from hl7_gateway.parser import ParseOutcome, ParserLimits, VisitResult, parse_request
from pacs_hdfs import metrics
from pacs_hdfs.dicom.edge_identity import Peer, peer_from_scope
from pacs_hdfs.logs import RequestIdMiddleware

log = logging.getLogger("hl7_gateway")
XML = "application/xml"
DRAIN_FACTOR = 4  # past limit * this, stop draining and let the connection drop


def _too_large(limit: int) -> ParseOutcome:
    return ParseOutcome(None, AckDetail(code="BODY_TOO_LARGE",
                                        text=f"body exceeds the limit of {limit} bytes"))


def storage_failed(outcome: ParseOutcome, reason: str) -> ParseOutcome:
    """Same outcome with every accepted visit turned into AE (nothing claimed as stored)."""
    detail = AckDetail(code="STORAGE_UNAVAILABLE", text=f"not stored, resend later: {reason}")
    return ParseOutcome(outcome.request_id, None, tuple(
        VisitResult(r.message_id, None, (detail,)) if r.ok else r for r in outcome.results))


def not_stored(outcome: ParseOutcome, refused: dict[str, AckDetail]) -> ParseOutcome:
    """Same outcome with the accepted visits the store refused (visit id -> why) as AE."""
    if not refused:
        return outcome
    return ParseOutcome(outcome.request_id, None, tuple(
        VisitResult(r.message_id, None, (refused[r.visit.visit_id],))
        if r.ok and r.visit.visit_id in refused else r for r in outcome.results))


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` (the rest is drained, not kept)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit * DRAIN_FACTOR:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > limit * DRAIN_FACTOR:
            break
        else:
            chunks = []
    return b"".join(chunks) if size <= limit else None


def _reason(exc: Exception) -> str:
    """Type and first line of a storage error (they name operations and paths, not content)."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _codes(outcome: ParseOutcome) -> str:
    if outcome.rejection:
        return outcome.rejection.code
    return ",".join(sorted({d.code for r in outcome.results for d in r.errors})) or "-"


def hl7_caller(request: Request) -> Peer:
    """The hospital's HAS calling an HL7 route (dependency); 403 for an edge certificate or a
    request the identity gate did not resolve to a hospital."""
    peer = peer_from_scope(request.scope)
    if peer.hospital is None or peer.edge is not None:
        log.warning("HL7 route refused to %s: %s (403)", peer.described,
                    "an edge certificate" if peer.edge else "no hospital")
        raise HTTPException(403, "HL7 routes need a hospital's HAS client certificate")
    return peer


def create_app(store, identities: Identities, limits: ParserLimits = ParserLimits(),
               stow: APIRouter | None = None, audit: Audit | None = None) -> FastAPI:
    """The gateway app over a ``VisitStore`` (or anything with store/get_visit_json), behind
    the identity gate of ``identities``, plus the STOW-RS routes when ``stow`` is given.
    ``audit(user, action, target, **details)`` records refusals (`pacs_hdfs.audit.record`)."""
    app = FastAPI(title="pacs-mdc HL7 v3 gateway", docs_url=None, redoc_url=None)
    app.add_middleware(IdentityGate, identities=identities, audit=audit)
    app.add_middleware(RequestIdMiddleware)  # outermost: the identity gate's lines carry it
    if stow is not None:
        app.include_router(stow)

    def process(body: bytes, peer: Peer) -> tuple[ParseOutcome, int]:
        outcome = parse_request(body, limits)
        if outcome.rejection is not None:
            return outcome, 400
        visits = outcome.visits
        try:
            report = store.store(visits, outcome.request_id, peer.hospital)
        except Exception as exc:  # noqa: BLE001 - any storage failure becomes AE + 503
            log.error("request %s: storage failed for %d visits: %s", outcome.request_id,
                      len(visits), _reason(exc))
            return storage_failed(outcome, type(exc).__name__), 503
        if report.refused:
            _refused_writes(outcome.request_id, peer, report.refused)
        return not_stored(outcome, report.refused), 200

    def _refused_writes(request_id: str | None, peer: Peer,
                        refused: dict[str, AckDetail]) -> None:
        codes = ",".join(sorted({d.code for d in refused.values()}))
        log.warning("request %s from hospital %s (%s): %d visit(s) refused: %s", request_id,
                    peer.hospital, peer.described, len(refused), codes)
        if audit is None:
            return
        try:
            audit(peer.described, AUDIT_ACTION, "/hl7/v3", reason=codes, hospital=peer.hospital,
                  visits=len(refused), request=request_id)
        except Exception as exc:  # noqa: BLE001 - the AE stands; the log line says it
            log.error("audit of refused visits failed: %s", _reason(exc))

    @app.post("/hl7/v3")
    async def receive(request: Request, peer: Peer = Depends(hl7_caller)) -> Response:
        started = time.perf_counter()
        body = await read_limited(request, limits.max_bytes)
        if body is None:
            outcome, status = _too_large(limits.max_bytes), 413
        else:
            outcome, status = await run_in_threadpool(process, body, peer)
        acknowledgement = acknowledgement_for(outcome)
        ack = to_bytes(build_ack_element(acknowledgement))
        for message in acknowledgement.messages:
            metrics.HL7_ACKS.labels(message.type_code).inc()
        accepted = len(outcome.visits) if status == 200 else 0
        log.info("request %s from hospital %s: %d messages, %d accepted, status %d, codes %s, "
                 "%.1f ms", outcome.request_id, peer.hospital, len(outcome.results), accepted,
                 status, _codes(outcome), (time.perf_counter() - started) * 1000)
        return Response(ack, status_code=status, media_type=XML)

    @app.get("/hl7/v3/visits/{visit_id}")
    async def visit(visit_id: str, peer: Peer = Depends(hl7_caller)) -> Response:
        try:
            data = await run_in_threadpool(store.get_visit_json, visit_id, peer.hospital)
        except Exception as exc:  # noqa: BLE001 - storage down: tell the client to retry
            log.error("visit lookup failed: %s", _reason(exc))
            raise HTTPException(503, "storage unavailable, retry later") from None
        if data is None:  # unknown, or another hospital's: the same answer
            raise HTTPException(404, "no such visit")
        return Response(data, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    return app
