"""The portal application: `create_app()` wires the routers, auth errors and security headers."""
from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from urllib.parse import quote

from analytics_jobs.service import RunnerUnavailable
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.logs import RequestIdMiddleware
from portal.deps import NotSignedIn, csrf_guard
from portal.search.feed import LiveIndex
from portal.search.service import SharedSearch
from portal.routes import (admin, auth, cases, dicomweb, dicomweb_admin, export, home, jobs,
                           search, viewer)
from portal.state import Lazy, PortalState
from portal.web import HERE, render

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(settings=None, store=None, job_service=None, secure_cookies: bool = False
               ) -> FastAPI:
    """The portal app; defaults: the configured HBase and the real JobService."""
    if settings is None:
        from pacs_hdfs.settings import get_settings
        settings = get_settings()
    real_store = store is None
    if real_store:
        from pacs_hdfs import clients
        store = Lazy(lambda: clients.hbase(settings))
    if job_service is None:
        from analytics_jobs.service import JobService
        job_service = Lazy(lambda: JobService(settings))

    app = FastAPI(title="pacs portal", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(csrf_guard)])
    app.state.portal = PortalState(settings, store, job_service, secure_cookies)
    # the configured store: the shared on-disk index (one indexer, every process reads it);
    # a store handed in (tests): the in-memory index over that store
    app.state.portal.search = (SharedSearch(settings, hbase=store) if real_store
                               else LiveIndex(settings, hbase=store, snapshots=False))
    for module in (auth, home, search, cases, viewer, dicomweb, dicomweb_admin, jobs, export,
                   admin):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True}

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn):
        if _is_api(request) or request.method != "GET":
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(StorageError)
    async def storage_down(request: Request, exc: StorageError):
        logging.getLogger(__name__).error("storage error on %s: %s", request.url.path, exc)
        return await http_error(request, StarletteHTTPException(
            503, "The data store is not reachable right now; try again shortly."))

    @app.exception_handler(RunnerUnavailable)
    async def no_runner(request: Request, exc: RunnerUnavailable):
        logging.getLogger(__name__).error("job not queued on %s: %s", request.url.path, exc)
        return await http_error(request, StarletteHTTPException(
            503, "No job runner is running, so the job was not queued; an administrator has "
                 "to start one (`pacs job runner` or the pacs-job-runner service)."))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        return render(request, "error.html", status_code=exc.status_code,
                      status=exc.status_code, detail=exc.detail)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if secure_cookies:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    return app
