"""The edge review page: a small web app where a reviewer looks at held objects and releases or
rejects them. Served by the edge process on `edge_review_bind:edge_review_port`
(127.0.0.1:8001 by default: reach it on the edge host or through an SSH tunnel).

* Login required (`EdgeUsers`: argon2id hashes in a local file); sessions live in the edge
  process's memory (a restart signs everyone out) behind an HttpOnly, SameSite=Strict cookie.
* Every POST carries a CSRF token: the session's token in a hidden field (or the
  `X-CSRF-Token` header); the login form uses a double-submit cookie.
* A preview PNG of each held object (`portal.imaging.render_png`, a pure function), so the
  reviewer can look for burned-in text; the page shows de-identified UIDs only.
* Decisions go through `quarantine.release/reject` (audited as `web:<user>`).
"""
from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from deid.edge import quarantine
from deid.edge.layout import EdgePaths
from deid.edge.users import EdgeUsers

log = logging.getLogger(__name__)

SESSION_COOKIE = "edge_session"
LOGIN_CSRF_COOKIE = "edge_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 8 * 3600


@dataclass
class Session:
    user: str
    csrf: str
    expires: float


class Sessions:
    """In-memory sessions keyed by the sha256 of their token (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_hash: dict[str, Session] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def create(self, user: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        sess = Session(user, secrets.token_urlsafe(24), time.time() + SESSION_SECONDS)
        with self._lock:
            self._by_hash[self._key(token)] = sess
        return token, sess

    def get(self, token: str) -> Session | None:
        if not token:
            return None
        with self._lock:
            sess = self._by_hash.get(self._key(token))
            if sess and sess.expires < time.time():
                del self._by_hash[self._key(token)]
                sess = None
            return sess

    def drop(self, token: str) -> None:
        with self._lock:
            self._by_hash.pop(self._key(token), None)


class _NotSignedIn(Exception):
    pass


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.4em;vertical-align:top}"
        "img{max-width:256px;max-height:256px;background:#000}form{display:inline}"
        "</style></head><body>" + body + "</body></html>",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                 "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"})


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch or 0, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def create_app(paths: EdgePaths, users: EdgeUsers, edge_name: str = "edge") -> FastAPI:
    app = FastAPI(title=f"pacs edge review ({edge_name})", docs_url=None, redoc_url=None,
                  openapi_url=None)
    sessions = Sessions()
    app.state.sessions = sessions

    def principal(request: Request) -> tuple[str, Session]:
        token = request.cookies.get(SESSION_COOKIE, "")
        sess = sessions.get(token)
        if sess is None:
            raise _NotSignedIn()
        return token, sess

    async def check_csrf(request: Request, expected: str) -> None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent:
            sent = str((await request.form()).get(CSRF_FIELD, ""))
        if not expected or not sent or not hmac.compare_digest(sent, expected):
            raise HTTPException(403, "missing or wrong CSRF token")

    @app.exception_handler(_NotSignedIn)
    async def _to_login(request: Request, exc: _NotSignedIn):
        if request.method == "GET" and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login", status_code=303)
        return Response("sign in first", status_code=401)

    @app.get("/login")
    def login_form() -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        resp = _page("Sign in", (
            f"<h1>pacs edge {html.escape(edge_name)}: quarantine review</h1>"
            "<form method='post' action='/login'>"
            f"<input type='hidden' name='{CSRF_FIELD}' value='{token}'>"
            "<p><label>User <input name='username' autocomplete='username'></label></p>"
            "<p><label>Password <input type='password' name='password' "
            "autocomplete='current-password'></label></p><p><button>Sign in</button></p></form>"))
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict")
        return resp

    @app.post("/login")
    async def login(request: Request, username: str = Form(""), password: str = Form("")):
        await check_csrf(request, request.cookies.get(LOGIN_CSRF_COOKIE, ""))
        if not users.verify(username, password):
            log.warning("review login failed for %r", username[:64])
            return _page("Sign in", "<p>Wrong user or password. <a href='/login'>Again</a></p>")
        token, _ = sessions.create(username)
        log.info("review login: %s", username)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        max_age=SESSION_SECONDS)
        resp.delete_cookie(LOGIN_CSRF_COOKIE)
        return resp

    @app.post("/logout")
    async def logout(request: Request):
        token, sess = principal(request)
        await check_csrf(request, sess.csrf)
        sessions.drop(token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    @app.get("/")
    def index(request: Request) -> HTMLResponse:
        _, sess = principal(request)
        held = quarantine.list_held(paths)
        csrf = html.escape(sess.csrf)
        rows = []
        for h in held:
            uid = html.escape(h["sop_uid"])
            rows.append(
                f"<tr><td><img src='/preview/{uid}.png' alt='preview'></td>"
                f"<td>SOP {uid}<br>study {html.escape(h.get('study_uid', ''))}<br>"
                f"series {html.escape(h.get('series_uid', ''))}<br>"
                f"modality {html.escape(h.get('modality', ''))}</td>"
                f"<td>{html.escape(h.get('reason', ''))}<br>held {_when(h.get('held_at'))}</td>"
                f"<td><form method='post' action='/release/{uid}'>"
                f"<input type='hidden' name='{CSRF_FIELD}' value='{csrf}'>"
                "<button>Release (send to the MDC)</button></form> "
                f"<form method='post' action='/reject/{uid}'>"
                f"<input type='hidden' name='{CSRF_FIELD}' value='{csrf}'>"
                "<button>Reject (delete)</button></form></td></tr>")
        table = ("<table><tr><th>preview</th><th>object</th><th>why held</th><th>decision</th>"
                 "</tr>" + "".join(rows) + "</table>") if rows else "<p>Nothing is held.</p>"
        return _page("Quarantine", (
            f"<h1>Held on edge {html.escape(edge_name)}: {len(held)}</h1>"
            f"<p>Signed in as {html.escape(sess.user)}. "
            f"<form method='post' action='/logout'><input type='hidden' name='{CSRF_FIELD}' "
            f"value='{csrf}'><button>Sign out</button></form></p>{table}"))

    @app.get("/api/held")
    def api_held(request: Request) -> dict:
        _, sess = principal(request)
        return {"held": quarantine.list_held(paths), "csrf_token": sess.csrf}

    @app.get("/preview/{sop_uid}.png")
    def preview(request: Request, sop_uid: str) -> Response:
        principal(request)
        try:
            path = quarantine.object_path(paths, sop_uid)
        except (quarantine.QuarantineError, ValueError):
            raise HTTPException(404, "not held") from None
        try:
            from pydicom import dcmread

            from portal.imaging import render_png
            png = render_png(dcmread(path))
        except Exception as e:  # noqa: BLE001 - no displayable pixels, or a codec missing
            log.info("no preview for %s (%s)", sop_uid, type(e).__name__)
            raise HTTPException(404, "no preview for this object") from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def decide(request: Request, sop_uid: str, action):
        _, sess = principal(request)
        await check_csrf(request, sess.csrf)
        try:
            result = action(paths, sop_uid, who=f"web:{sess.user}")
        except (quarantine.QuarantineError, ValueError) as e:
            raise HTTPException(404, str(e)) from None
        log.info("review: %s %s by %s", result["state"], result["sop_uid"], sess.user)
        if "application/json" in request.headers.get("accept", ""):
            return result
        return RedirectResponse("/", status_code=303)

    @app.post("/release/{sop_uid}")
    async def release(request: Request, sop_uid: str):
        return await decide(request, sop_uid, quarantine.release)

    @app.post("/reject/{sop_uid}")
    async def reject(request: Request, sop_uid: str):
        return await decide(request, sop_uid, quarantine.reject)

    return app
