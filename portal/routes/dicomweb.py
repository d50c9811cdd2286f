"""DICOMweb read endpoints (role teacher and up) so OHIF, Weasis or dicomweb-client connect:
QIDO-RS search at every level, WADO-RS retrieve (objects and frames as stored, or decoded only
when the client asks for uncompressed data), metadata with BulkDataURIs and the bulkdata
resource, rendered images and thumbnails (PS3.18).

Authentication: the portal session cookie, HTTP Basic checked against the portal users
(`portal.login.sign_in`: throttle first, bounded argon2, failures audited; a verified
credential is remembered for a minute so a viewer's many requests do not each cost an argon2
hash, and forgotten at once when the user is disabled, deleted or gets a new password), or a
study-scoped viewer token (`Authorization: Bearer`, made by `viewer_launch_url` for the case
page's "Open in OHIF"). GET only, so no CSRF. CORS headers only for the origins in
`portal_cors_origins` (none by default), never with credentials. Errors are JSON with the
precise status (401 carries `WWW-Authenticate`, 429 and 503 `Retry-After`). Quarantined
objects never appear (see portal/dicom_access.py). Every request is audited: QIDO-RS as
`qido` (level, keys, matches), WADO-RS retrieve as `download-study`, metadata, frames, bulk
data, rendered images and thumbnails as `wado` (with `auth: viewer-token` for token requests).

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
from io import BytesIO
from typing import Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydicom import dcmread

from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance
from portal import dicomweb_http as http
from portal import imaging
from portal.deps import current, portal
from portal.dicom_access import Archive, archive, require_uids
from portal.login import Refused, sign_in
from portal.roles import allows
from portal.users import User
from portal.web import client_ip

log = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
REALM = 'Basic realm="pacs DICOMweb", charset="UTF-8"'
CACHE_SECONDS = 60
#: A WADO-RS retrieve whose objects total at most this many bytes (by the index) is read and
#: verified completely before the response starts; a bigger one is streamed (module docstring).
VERIFY_BUDGET = 128 << 20
#: binary values longer than this go by BulkDataURI in /metadata (shorter: InlineBinary)
BULK_THRESHOLD = 1024
#: part media types a frames request may ask for (stored frames go out in their own)
FRAME_TYPES = ("application/octet-stream",) + tuple(dict.fromkeys(http.FRAME_MEDIA.values()))


class DicomwebRoute(APIRoute):
    """Answers HTTPException/StorageError as JSON with their headers (the app's error pages are
    HTML and drop `WWW-Authenticate`); dependencies run inside, so auth errors are covered.
    Every answer, errors included, carries the CORS headers an allowed origin needs."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def guarded(request: Request):
            try:
                response = await handler(request)
            except HTTPException as e:
                response = JSONResponse({"detail": e.detail}, e.status_code, headers=e.headers)
            except StorageError:
                response = JSONResponse({"detail": "the archive is not reachable right now"}, 503)
            response.headers.update(cors_headers(request))
            return response
        return guarded


# --- CORS (settings.portal_cors_origins; none = off) ------------------------------------------
#: request headers a cross-origin viewer may send (what OHIF and dicomweb-client send)
CORS_REQUEST_HEADERS = ("authorization", "accept", "accept-language", "cache-control",
                        "content-type", "pragma", "x-requested-with", "if-none-match")
CORS_EXPOSED = "Content-Type, Content-Length, Content-Location, Warning, Retry-After"


def _cors_origin(request: Request) -> str | None:
    """The request's Origin if the settings allow it, else None."""
    origin = request.headers.get("origin")
    settings = request.app.state.portal.settings
    allowed = getattr(settings, "portal_cors_origins", None) or ()
    return origin if origin and origin.rstrip("/") in [a.rstrip("/") for a in allowed] else None


def cors_headers(request: Request) -> dict[str, str]:
    """CORS headers of an answer to an allowed origin. No credentials: a cross-origin page
    never rides the portal session cookie; it authenticates with a viewer token (or Basic)."""
    origin = _cors_origin(request)
    if origin is None:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Expose-Headers": CORS_EXPOSED}


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


def _unauthorized(detail: str, bearer: bool = False) -> HTTPException:
    challenge = ('Bearer realm="pacs DICOMweb", error="invalid_token"' if bearer else REALM)
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def _bearer_user(request: Request, state) -> User | None:
    """The user of `Authorization: Bearer <viewer token>` (None when no bearer is sent). The
    token is the portal's own (`viewer_launch_url`): HMAC-checked, unexpired, and the user
    still enabled with the same session epoch; its study is kept on `request.state` so every
    route answers only for that study."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        grant = http.read_token(state.secret, value.strip(), time.time())
    except http.BadToken as e:
        raise _unauthorized(str(e), bearer=True) from None
    user = state.users.get(grant.user)
    if user is None or user.disabled or user.epoch != grant.epoch:
        raise _unauthorized("viewer token revoked: open the study from the portal again",
                            bearer=True)
    study = request.path_params.get("study")
    if study is not None and study != grant.study:
        raise HTTPException(403, "this viewer token is for another study")
    request.state.dicomweb_grant = grant
    return user


def viewer_launch_url(state, user: User, until: float, study: str) -> str:
    """The configured viewer (settings.portal_viewer_url, OHIF) opened on `study`, carrying a
    read-only token for that study that ends with the session that asked for it (`until`)."""
    grant = http.ViewerToken(user.name, user.epoch, study, int(until))
    token = http.mint_token(state.secret, grant)
    base = state.settings.portal_viewer_url
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{urlencode({'StudyInstanceUIDs': study, 'token': token})}"


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
    """Like deps.require, but also takes HTTP Basic or a viewer token, and answers 401 (never
    a login redirect)."""
    def check(request: Request, state=Depends(portal)) -> User | None:
        if request.method == "OPTIONS":
            return None                     # a CORS preflight carries no credentials
        user = _bearer_user(request, state)
        if user is None:
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


def _grant_study(request: Request) -> str | None:
    """The one study a viewer token limits this request to (None: no token)."""
    grant = getattr(request.state, "dicomweb_grant", None)
    return grant.study if grant else None


@router.options("/{rest:path}")
def preflight(rest: str, request: Request):
    """CORS preflight: allowed origins get the methods and headers they may use (GET only);
    any other caller just learns the methods."""
    origin = _cors_origin(request)
    if origin is None:
        return Response(headers={"Allow": "GET, HEAD, OPTIONS"})
    asked = [h.strip().lower() for h in
             request.headers.get("access-control-request-headers", "").split(",") if h.strip()]
    allowed = [h for h in asked if h in CORS_REQUEST_HEADERS] if asked else []
    settings = request.app.state.portal.settings
    return Response(headers={
        "Allow": "GET, HEAD, OPTIONS", "Access-Control-Allow-Methods": "GET, HEAD",
        "Access-Control-Allow-Headers": ", ".join(allowed or CORS_REQUEST_HEADERS),
        "Access-Control-Max-Age": str(getattr(settings, "portal_cors_max_age", 600))})


# --- QIDO-RS --------------------------------------------------------------------------------

def _audit(request: Request, user: User, action: str, target: str, **details) -> None:
    if _grant_study(request):
        details["auth"] = "viewer-token"
    request.app.state.portal.audit(user.name, action, target, via="dicomweb", **details)


def _qido(request: Request, archive: Archive, user: User, level: str,
          fixed: dict[str, str]) -> Response:
    if http.choose(request.headers.get("accept"), (DICOM_JSON, "application/json")) is None:
        raise HTTPException(406, f"QIDO-RS answers {DICOM_JSON}")
    require_uids(*fixed.values())
    try:
        q = http.parse_qido(list(request.query_params.multi_items()), level,
                            top_level=not fixed)
    except http.BadRequest as e:
        raise _bad(e) from None
    q.keys.update(fixed)
    if (scope := _grant_study(request)) is not None:
        q.keys["StudyInstanceUID"] = scope          # a viewer token sees its study only
    matches = archive.search(level, q.keys)
    found = matches[q.offset:q.offset + q.limit]
    body = [http.dicom_json(e.attrs, http.answer_keys(level, q, e.attrs)) for e in found]
    _audit(request, user, "qido", q.keys.get("StudyInstanceUID", ""), level=level,
           keys={k: str(v)[:200] for k, v in list(q.keys.items())[:20]}, matches=len(body))
    warnings = []
    if q.fuzzy:
        warnings.append('299 pacs "The fuzzymatching parameter is not supported. Only literal '
                        'matching has been performed."')
    if (more := len(matches) - q.offset - len(found)) > 0:
        warnings.append(f'299 pacs "There are {more} additional results that can be requested"')
    headers = {"Warning": ", ".join(warnings)} if warnings else None
    return JSONResponse(body, media_type=DICOM_JSON, headers=headers)


@router.get("/studies")
def search_studies(request: Request, archive: Archive = Depends(archive),
                   user: User = Depends(viewer_of)):
    return _qido(request, archive, user, "STUDY", {})


@router.get("/series")
def search_all_series(request: Request, archive: Archive = Depends(archive),
                      user: User = Depends(viewer_of)):
    return _qido(request, archive, user, "SERIES", {})


@router.get("/instances")
def search_all_instances(request: Request, archive: Archive = Depends(archive),
                         user: User = Depends(viewer_of)):
    return _qido(request, archive, user, "IMAGE", {})


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
    accepted = http.offers(request.headers.get("accept"), ("application/dicom",))
    if not accepted:
        raise HTTPException(406, 'WADO-RS answers multipart/related; type="application/dicom"'
                                 " (transfer-syntax=* for objects as stored)")
    items = _located(archive, study, series, sop)
    syntax = {}
    for item in items:
        stored = item.transfer_syntax or http.EXPLICIT_LE
        syntax[item.key] = http.instance_syntax(stored, accepted)
        if syntax[item.key] is None:
            raise HTTPException(406, f"an object is stored in {stored}; ask for that, "
                                     f"transfer-syntax=* or {http.EXPLICIT_LE}")
    level = "instance" if sop else "series" if series else "study"
    _audit(request, user, "download-study", study, level=level, series=series or "",
           sop=sop or "", instances=len(items))
    boundary = secrets.token_hex(16)
    media_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    what = f"WADO-RS {level} {sop or series or study}"

    def part(item, data: bytes) -> bytes:
        ts = syntax[item.key]
        return http.multipart_part(boundary, f"application/dicom; transfer-syntax={ts}", data)

    def read(item) -> bytes | None:
        """The verified bytes (decoded only if the client does not take the stored syntax),
        or None (logged) if the object cannot be read or decoded."""
        try:
            data = archive.read(item)
            if syntax[item.key] != (item.transfer_syntax or http.EXPLICIT_LE):
                data = imaging.explicit_le_bytes(dcmread(BytesIO(data)))
            return data
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
        return sum(int(item.row[instance.LENGTH]) for item in items)
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


def _bulk_paths(ds, prefix: str = "", out: dict | None = None) -> dict[int, str]:
    """id(element) -> its bulkdata path (`TTTTTTTT` or `SSSSSSSS/<item>/TTTTTTTT...`) for every
    binary element, nested ones included (pydicom's bulk data handler gets only the element)."""
    out = {} if out is None else out
    for elem in ds:
        path = f"{prefix}{elem.tag:08X}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                _bulk_paths(item, f"{path}/{i}/", out)
        elif elem.VR in http.BULK_VRS:
            out[id(elem)] = path
    return out


def _metadata_of(archive: Archive, item, base: str) -> dict:
    """dicom+json of one object with bulk data by reference (PS3.18 F.2.6): pixel data points
    at its frames, every other binary value over `BULK_THRESHOLD` bytes (waveforms, documents,
    large OB/OW/UN) at `.../instances/{sop}/bulkdata/{path}`; smaller ones stay InlineBinary."""
    ds = archive.dataset(item)
    sop = str(ds.get("SOPInstanceUID", ""))
    inst = f"{base}/instances/{sop}"
    paths = _bulk_paths(ds)
    out = ds.to_json_dict(
        bulk_data_threshold=BULK_THRESHOLD,
        bulk_data_element_handler=lambda e: f"{inst}/bulkdata/{paths.get(id(e), f'{e.tag:08X}')}")
    if "7FE00010" in out:          # pixel data: always by reference, to its frames resource
        frames = ",".join(str(n) for n in range(1, imaging.frame_count(ds) + 1))
        out["7FE00010"] = {"vr": out["7FE00010"]["vr"], "BulkDataURI": f"{inst}/frames/{frames}"}
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
    try:
        numbers = http.parse_frames(frames)
    except http.BadRequest as e:
        raise _bad(e) from None
    return _frames(request, archive, user, study, series, sop, numbers)


def _frames(request: Request, archive: Archive, user: User, study: str, series: str, sop: str,
            numbers: list[int] | None) -> Response:
    """Frames (all when `numbers` is None) as multipart/related: stored frames passed through
    untouched when Accept takes their transfer syntax (transfer-syntax=*, or that syntax),
    decoded to uncompressed little endian only when that is what is asked (the default)."""
    accepted = http.offers(request.headers.get("accept"), FRAME_TYPES)
    if not accepted:
        raise HTTPException(406, 'frames are answered as multipart/related; type="application/'
                                 'octet-stream" (transfer-syntax=* for frames as stored)')
    ds = _image(archive, study, series, sop)
    numbers = numbers or list(range(1, imaging.frame_count(ds) + 1))
    for n in numbers:
        _frame_check(ds, n)
    stored = imaging.frame_syntax(ds)
    choice = http.frame_offer(stored, accepted)
    if choice is None:
        raise HTTPException(406, f"the frames are stored in {stored}; ask for that, "
                                 f"transfer-syntax=* or {http.EXPLICIT_LE} (decoded)")
    media, ts, through = choice
    _audit(request, user, "wado", study, what="frames", series=series, sop=sop,
           frames=numbers[:50], syntax=ts, decoded=not through)
    boundary = secrets.token_hex(16)
    try:
        frame_bytes = imaging.stored_frame_bytes if through else imaging.native_frame_bytes
        body = b"".join(http.multipart_part(boundary, f"{media}; transfer-syntax={ts}",
                                            frame_bytes(ds, n - 1)) for n in numbers)
    except imaging.ImagingError as e:
        raise HTTPException(422, str(e)) from None
    return Response(body + http.multipart_end(boundary),
                    media_type=f'multipart/related; type="{media}"; boundary={boundary}')


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{path:path}")
def retrieve_bulkdata(study: str, series: str, sop: str, path: str, request: Request,
                      archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    """A BulkDataURI of /metadata: one binary value as multipart/related application/octet-stream;
    pixel data answers as all its frames (negotiated like the frames resource)."""
    if path.upper() == "7FE00010":
        return _frames(request, archive, user, study, series, sop, None)
    if not http.offers(request.headers.get("accept"), ("application/octet-stream",)):
        raise HTTPException(406, 'bulk data is answered as multipart/related; '
                                 'type="application/octet-stream"')
    ds = archive.dataset(_located(archive, study, series, sop)[0])
    try:
        elem = http.element_at(ds, path)
    except http.BadRequest as e:
        raise _bad(e) from None
    if elem is None or elem.VR not in http.BULK_VRS or elem.value is None:
        raise HTTPException(404, "no binary element at that path")
    _audit(request, user, "wado", study, what="bulkdata", series=series, sop=sop, path=path)
    boundary = secrets.token_hex(16)
    body = http.multipart_part(boundary, "application/octet-stream", bytes(elem.value))
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


# --- thumbnails (PS3.18 §10.4.1.1.4: rendered thumbnail resources) --------------------------------

def _representative(archive: Archive, study: str, series: str | None = None):
    """The instance a study or series thumbnail shows: the middle image (by InstanceNumber) of
    the series, or of the study's first series (by SeriesNumber) that holds images."""
    require_uids(*(u for u in (study, series) if u is not None))
    for se in ([series] if series else [a["SeriesInstanceUID"] for a in archive.series(study)]):
        images = [a for a in archive.instances(study, se) if a.get("Rows")]
        if images:
            sop = images[len(images) // 2]["SOPInstanceUID"]
            return se, sop
    raise HTTPException(404, "no image to make a thumbnail of")


def _thumbnail(request: Request, archive: Archive, user: User, study: str, series: str | None,
               sop: str | None, frame: int | None) -> Response:
    wanted = request.query_params.get("accept") or request.headers.get("accept")
    media = http.choose(wanted, ("image/jpeg", "image/png"))
    if media is None:
        raise HTTPException(406, "thumbnails are image/jpeg or image/png")
    try:
        width, height = http.parse_viewport(request.query_params.get("viewport"))
    except http.BadRequest as e:
        raise _bad(e) from None
    if sop is None:
        series, sop = _representative(archive, study, series)
    ds = _image(archive, study, series, sop)
    if frame is not None:
        _frame_check(ds, frame)
    _audit(request, user, "wado", study, what="thumbnail", series=series, sop=sop,
           frame=frame or 0)
    try:
        data = imaging.thumbnail(ds, width, height, media.split("/")[1],
                                 None if frame is None else frame - 1)
    except imaging.ImagingError as e:
        raise HTTPException(422, str(e)) from None
    return Response(data, media_type=media)


@router.get("/studies/{study}/thumbnail")
def study_thumbnail(study: str, request: Request, archive: Archive = Depends(archive),
                    user: User = Depends(viewer_of)):
    return _thumbnail(request, archive, user, study, None, None, None)


@router.get("/studies/{study}/series/{series}/thumbnail")
def series_thumbnail(study: str, series: str, request: Request,
                     archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _thumbnail(request, archive, user, study, series, None, None)


@router.get("/studies/{study}/series/{series}/instances/{sop}/thumbnail")
def instance_thumbnail(study: str, series: str, sop: str, request: Request,
                       archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    return _thumbnail(request, archive, user, study, series, sop, None)


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/thumbnail")
def frame_thumbnail(study: str, series: str, sop: str, frame: str, request: Request,
                    archive: Archive = Depends(archive), user: User = Depends(viewer_of)):
    if not frame.isdigit() or int(frame) < 1:
        raise HTTPException(400, "the frame number is a positive integer")
    return _thumbnail(request, archive, user, study, series, sop, int(frame))
