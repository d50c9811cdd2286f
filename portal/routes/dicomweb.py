"""DICOMweb read endpoints (role teacher and up) so OHIF, Weasis or dicomweb-client connect:
QIDO-RS search and WADO-RS retrieve (objects as stored, metadata, frames, rendered images).

Authentication: the portal session cookie, or HTTP Basic checked against the portal users
(`portal.login.sign_in`: throttle first, bounded argon2, failures audited; a verified
credential is remembered for a minute so a viewer's many requests do not each cost an argon2
hash, and forgotten at once when the user is disabled, deleted or gets a new password). GET
only, so no CSRF. Errors are JSON with the precise status (401 carries
`WWW-Authenticate: Basic`, 429 and 503 `Retry-After`). Quarantined objects never appear (see
portal/dicom_access.py). Every request is audited: QIDO-RS as `qido` (level, keys, matches),
WADO-RS retrieve as `download-study`, metadata, frames and rendered images as `wado`.

WADO-RS retrieve never truncates silently (every object is read through
`pacs_hdfs.dicom.stored.read_bytes`, which checks the indexed sha256):
* Up to `VERIFY_BUDGET` bytes (the objects' indexed sizes), every object is read and verified
  before the status line. All readable: 200. Some unreadable: 206 Partial Content (a success
  status of the Retrieve transaction for a response holding only some of the target
  instances, PS3.18 §10.4.3; PS3.2 Table N.7-92 lists it) with a `Warning: 299` header, every
  readable object, and a last part of type application/json naming the missing instances.
  None readable: 503 with a JSON body naming them.
* Bigger retrieves stream, one verified object at a time, under a 200 sent before the first
  read. An object that cannot be read is skipped, and the body then ends with the same
  application/json error part before the closing boundary, so a client sees the failure: a
  multipart parser gets a part that is not application/dicom (dicomweb-client raises when it
  tries to read it as DICOM), and the count and UIDs of what is missing are in it.
A part is only written once its object has been read completely, so no part is ever cut.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import threading
import time
from typing import Callable

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute

from pacs_hdfs.hdfs_store import StorageError
from portal import dicomweb_http as http
from portal import imaging
from portal.deps import current, portal
from portal.dicom_access import Archive, archive, require_uids
from portal.login import Refused, sign_in
from portal.roles import allows
from portal.users import User
from portal.web import client_ip

log = logging.getLogger("pacs.portal.dicomweb")

DICOM_JSON = "application/dicom+json"
REALM = 'Basic realm="pacs DICOMweb", charset="UTF-8"'
CACHE_SECONDS = 60
#: A WADO-RS retrieve whose objects total at most this many bytes (by the index) is read and
#: verified completely before the response starts; a bigger one is streamed (module docstring).
VERIFY_BUDGET = 128 << 20
BULK_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "WaveformData",
                 "EncapsulatedDocument")


class DicomwebRoute(APIRoute):
    """Answers HTTPException/StorageError as JSON with their headers (the app's error pages are
    HTML and drop `WWW-Authenticate`); dependencies run inside, so auth errors are covered."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def guarded(request: Request):
            try:
                return await handler(request)
            except HTTPException as e:
                return JSONResponse({"detail": e.detail}, e.status_code, headers=e.headers)
            except StorageError:
                return JSONResponse({"detail": "the archive is not reachable right now"}, 503)
        return guarded


class BasicCache:
    """Verified Basic credentials (hashed with a per-process key) -> (user name, the user's
    session epoch), for a minute and at most `MAX_ENTRIES` of them."""

    MAX_ENTRIES = 1000

    def __init__(self):
        self._key = secrets.token_bytes(32)
        self._seen: dict[bytes, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def _id(self, name: str, password: str) -> bytes:
        return hashlib.blake2b(f"{name}\0{password}".encode(), key=self._key).digest()

    def get(self, name: str, password: str) -> tuple[str, str] | None:
        with self._lock:
            hit = self._seen.get(self._id(name, password))
        return (hit[0], hit[1]) if hit and hit[2] > time.monotonic() else None

    def put(self, name: str, password: str, epoch: str) -> None:
        with self._lock:
            if len(self._seen) >= self.MAX_ENTRIES:
                self._seen.clear()
            self._seen[self._id(name, password)] = (name, epoch,
                                                    time.monotonic() + CACHE_SECONDS)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """`Authorization: Basic ...` -> (user, password); None if not Basic or malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (name, password) if sep else None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": REALM})


def _basic_user(request: Request, state) -> User:
    creds = basic_credentials(request.headers.get("authorization", ""))
    if creds is None:
        raise _unauthorized("sign in, or send HTTP Basic credentials of a portal user")
    name, password = creds
    cache = getattr(request.app.state, "dicomweb_basic", None)
    if cache is None:
        cache = request.app.state.dicomweb_basic = BasicCache()
    if known := cache.get(name, password):
        user = state.users.get(known[0])
        if user and not user.disabled and user.epoch == known[1]:
            return user
    try:
        user = sign_in(state, name, password, client_ip(request), via="dicomweb")
    except Refused as r:
        if r.status == 401:
            raise _unauthorized("wrong user name or password") from None
        raise HTTPException(r.status, r.message, headers=r.headers) from None
    cache.put(name, password, user.epoch)
    return user


def require_session_or_basic(role: str):
    """Like deps.require, but also takes HTTP Basic and answers 401 (never a login redirect)."""
    def check(request: Request, state=Depends(portal)) -> User:
        p = current(request)
        user = p.user if p else _basic_user(request, state)
        if not allows(user.role, role):
            raise HTTPException(403, f"needs role {role}")
        return user
    check.__name__ = f"require_{role}_session_or_basic"
    return check


viewer_of = require_session_or_basic("teacher")
router = APIRouter(prefix="/dicomweb", tags=["dicomweb"], route_class=DicomwebRoute,
                   dependencies=[Depends(viewer_of)])




def _bad(e: http.BadRequest) -> HTTPException:
    return HTTPException(400, str(e))


# --- QIDO-RS --------------------------------------------------------------------------------

def _audit(request: Request, user: User, action: str, target: str, **details) -> None:
    request.app.state.portal.audit(user.name, action, target, via="dicomweb", **details)


def _qido(request: Request, archive: Archive, user: User, level: str,
          fixed: dict[str, str]) -> Response:
    if http.choose(request.headers.get("accept"), (DICOM_JSON, "application/json")) is None:
        raise HTTPException(406, f"QIDO-RS answers {DICOM_JSON}")
    require_uids(*fixed.values())
    try:
        q = http.parse_qido(list(request.query_params.multi_items()), level)
    except http.BadRequest as e:
        raise _bad(e) from None
    q.keys.update(fixed)
    found = archive.search(level, q.keys)[q.offset:q.offset + q.limit]
    body = [http.dicom_json(e.attrs, http.answer_keys(level, q, e.attrs)) for e in found]
    _audit(request, user, "qido", fixed.get("StudyInstanceUID", ""), level=level,
           keys={k: str(v)[:200] for k, v in list(q.keys.items())[:20]}, matches=len(body))
    return JSONResponse(body, media_type=DICOM_JSON)


@router.get("/studies")
def search_studies(request: Request, archive: Archive = Depends(archive),
                   user: User = Depends(viewer_of)):
    return _qido(request, archive, user, "STUDY", {})


@router.get("/studies/{study}/series")
def search_series(study: str, request: Request, archive: Archive = Depends(archive),
                  user: User = Depends(viewer_of)):
    return _qido(request, archive, user, "SERIES", {"StudyInstanceUID": study})


@router.get("/studies/{study}/instances")
def search_study_instances(study: str, request: Request, archive: Archive = Depends(archive),
                           user: User = Depends(viewer_of)):
    return _qido(request, archive, user, "IMAGE", {"StudyInstanceUID": study})


@router.get("/studies/{study}/series/{series}/instances")
def search_instances(study: str, series: str, request: Request,
                     archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _qido(request, archive, user, "IMAGE", {"StudyInstanceUID": study,
                                                   "SeriesInstanceUID": series})


# --- WADO-RS --------------------------------------------------------------------------------

def _located(archive: Archive, study: str, series: str | None = None, sop: str | None = None):
    require_uids(*(u for u in (study, series, sop) if u is not None))
    items = archive.locate(study, series, sop)
    if not items:
        what = "instance" if sop else "series" if series else "study"
        raise HTTPException(404, f"no such {what} in the archive")
    return items


def _retrieve(request: Request, archive: Archive, user: User, study: str,
              series: str | None = None, sop: str | None = None) -> Response:
    if not http.accepts_multipart(request.headers.get("accept"), "application/dicom"):
        raise HTTPException(406, 'WADO-RS answers multipart/related; type="application/dicom"'
                                 " (objects as stored)")
    items = _located(archive, study, series, sop)
    level = "instance" if sop else "series" if series else "study"
    _audit(request, user, "download-study", study, level=level, series=series or "",
           sop=sop or "", instances=len(items))
    boundary = secrets.token_hex(16)
    media_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    what = f"WADO-RS {level} {sop or series or study}"

    def part(item, data: bytes) -> bytes:
        ts = item.transfer_syntax or "1.2.840.10008.1.2.1"
        return http.multipart_part(boundary, f"application/dicom; transfer-syntax={ts}", data)

    def read(item) -> bytes | None:
        """The verified bytes, or None (logged) if the object cannot be read."""
        try:
            return archive.read(item)
        except Exception as e:  # noqa: BLE001 - one unreadable object must not cut the answer
            log.error("%s: instance %s unreadable: %s %s", what, _sop(item), type(e).__name__,
                      str(e)[:300] if isinstance(e, StorageError) else "")
            return None

    size = _indexed_size(items)
    if size is not None and size <= VERIFY_BUDGET:
        # Read and verify everything before the status line: the status tells the truth.
        read_items = [(item, read(item)) for item in items]
        good = [(item, data) for item, data in read_items if data is not None]
        failed = [item for item, data in read_items if data is None]
        if not good:
            return JSONResponse({"detail": f"none of the {len(items)} objects could be read "
                                           "from the archive", **_missing(items, failed)}, 503)
        body = b"".join(part(item, data) for item, data in good)
        if not failed:
            return Response(body + http.multipart_end(boundary), media_type=media_type)
        return Response(body + _error_part(boundary, items, failed) + http.multipart_end(boundary),
                        status_code=206, media_type=media_type,
                        headers={"Warning": f'299 - "{_missing_text(items, failed)}"'})

    def parts():
        """Too big to hold: stream, skipping what cannot be read, and end with an error part
        naming it (the 200 is already sent when a failure is found)."""
        failed = []
        for item in items:
            data = read(item)
            if data is None:
                failed.append(item)
                continue
            yield part(item, data)
        if failed:
            yield _error_part(boundary, items, failed)
        yield http.multipart_end(boundary)
    return StreamingResponse(parts(), media_type=media_type)


def _indexed_size(items) -> int | None:
    """Total bytes of the objects by their index rows; None if a row does not say."""
    try:
        return sum(int(item.row[b"l:length"]) for item in items)
    except (KeyError, ValueError):
        return None


def _sop(item) -> str:
    return item.key.rsplit(b"\x00", 1)[-1].decode(errors="replace")


def _missing_text(items, failed) -> str:
    return (f"{len(failed)} of {len(items)} objects could not be read from the archive and "
            "are missing from this response")


def _missing(items, failed) -> dict:
    return {"requested": len(items), "delivered": len(items) - len(failed),
            "failed": [{"SeriesInstanceUID": item.key.split(b"\x00")[1].decode(errors="replace"),
                        "SOPInstanceUID": _sop(item)} for item in failed]}


def _error_part(boundary: str, items, failed) -> bytes:
    """The last part of a body that lacks objects: JSON naming them (Content-Type
    application/json, so no client can take it for an object)."""
    doc = {"error": _missing_text(items, failed), **_missing(items, failed)}
    return http.multipart_part(boundary, "application/json", json.dumps(doc).encode())


@router.get("/studies/{study}")
def retrieve_study(study: str, request: Request, archive: Archive = Depends(archive),
                   user: User = Depends(viewer_of)):
    return _retrieve(request, archive, user, study)


@router.get("/studies/{study}/series/{series}")
def retrieve_series(study: str, series: str, request: Request,
                    archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _retrieve(request, archive, user, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}")
def retrieve_instance(study: str, series: str, sop: str, request: Request,
                      archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _retrieve(request, archive, user, study, series, sop)


def _metadata_of(archive: Archive, item, base: str) -> dict:
    """dicom+json of one object without bulk data: pixel data becomes a BulkDataURI (its
    frames), other large binary values are left out."""
    ds = archive.dataset(item)
    sop = str(ds.get("SOPInstanceUID", ""))
    pixel_vr = ds["PixelData"].VR if "PixelData" in ds else None
    for kw in BULK_KEYWORDS:
        if kw in ds:
            del ds[kw]
    out = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda _e: "")
    out = {k: v for k, v in out.items() if v.get("BulkDataURI", "x")}
    if pixel_vr:
        out["7FE00010"] = {"vr": pixel_vr, "BulkDataURI": f"{base}/instances/{sop}/frames/1"}
    out["00020010"] = {"vr": "UI", "Value": [str(ds.file_meta.TransferSyntaxUID)]}
    return dict(sorted(out.items()))


def _metadata(request: Request, archive: Archive, user: User, study: str,
              series: str | None = None, sop: str | None = None) -> Response:
    if http.choose(request.headers.get("accept"), (DICOM_JSON, "application/json")) is None:
        raise HTTPException(406, f"metadata is answered as {DICOM_JSON}")
    items = _located(archive, study, series, sop)
    _audit(request, user, "wado", study, what="metadata", series=series or "", sop=sop or "",
           instances=len(items))
    body = []
    for item in items:
        se = item.key.split(b"\x00")[1].decode()
        body.append(_metadata_of(archive, item, f"/dicomweb/studies/{study}/series/{se}"))
    return JSONResponse(body, media_type=DICOM_JSON)


@router.get("/studies/{study}/metadata")
def study_metadata(study: str, request: Request, archive: Archive = Depends(archive),
                   user: User = Depends(viewer_of)):
    return _metadata(request, archive, user, study)


@router.get("/studies/{study}/series/{series}/metadata")
def series_metadata(study: str, series: str, request: Request,
                    archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _metadata(request, archive, user, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
def instance_metadata(study: str, series: str, sop: str, request: Request,
                      archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _metadata(request, archive, user, study, series, sop)


def _image(archive: Archive, study: str, series: str, sop: str):
    ds = archive.dataset(_located(archive, study, series, sop)[0])
    if "PixelData" not in ds:
        raise HTTPException(400, "the instance has no pixel data")
    return ds


def _frame_check(ds, frame: int) -> None:
    if frame > imaging.frame_count(ds):
        raise HTTPException(404, f"frame {frame} does not exist "
                                 f"(the instance has {imaging.frame_count(ds)})")


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}")
def retrieve_frames(study: str, series: str, sop: str, frames: str, request: Request,
                    archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    if not http.accepts_multipart(request.headers.get("accept"), "application/octet-stream"):
        raise HTTPException(406, 'frames are answered as multipart/related; '
                                 'type="application/octet-stream" (uncompressed)')
    try:
        numbers = http.parse_frames(frames)
    except http.BadRequest as e:
        raise _bad(e) from None
    ds = _image(archive, study, series, sop)
    for n in numbers:
        _frame_check(ds, n)
    _audit(request, user, "wado", study, what="frames", series=series, sop=sop,
           frames=numbers[:50])
    boundary = secrets.token_hex(16)
    try:
        body = b"".join(http.multipart_part(
            boundary, "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
            imaging.native_frame_bytes(ds, n - 1)) for n in numbers)
    except imaging.ImagingError as e:
        raise HTTPException(422, str(e)) from None
    return Response(body + http.multipart_end(boundary), media_type=(
        f'multipart/related; type="application/octet-stream"; boundary={boundary}'))


def _rendered(request: Request, archive: Archive, user: User, study: str, series: str,
              sop: str, frame: int) -> Response:
    media = http.choose(request.headers.get("accept"), ("image/png", "image/jpeg"))
    if media is None:
        raise HTTPException(406, "rendered images are image/png or image/jpeg")
    try:
        window = http.parse_window(request.query_params.get("window"))
    except http.BadRequest as e:
        raise _bad(e) from None
    ds = _image(archive, study, series, sop)
    _frame_check(ds, frame)
    _audit(request, user, "wado", study, what="rendered", series=series, sop=sop, frame=frame)
    center, width = window or (None, None)
    try:
        data = imaging.render(ds, frame - 1, center, width, media.split("/")[1])
    except imaging.ImagingError as e:
        raise HTTPException(422, str(e)) from None
    return Response(data, media_type=media)


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered")
def instance_rendered(study: str, series: str, sop: str, request: Request,
                      archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _rendered(request, archive, user, study, series, sop, 1)


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered")
def frame_rendered(study: str, series: str, sop: str, frame: str, request: Request,
                   archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    if not frame.isdigit() or int(frame) < 1:
        raise HTTPException(400, "the frame number is a positive integer")
    return _rendered(request, archive, user, study, series, sop, int(frame))
