"""Login and logout. Login is the only POST without a session: it uses a double-submit CSRF
cookie; failures are throttled per (user, client address) and audited."""
from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from portal.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Principal, portal, require
from portal.users import SESSION_SECONDS
from portal.web import client_ip, render

router = APIRouter(tags=["auth"])


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _cookie(response, name: str, value: str, state, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=state.secure_cookies, path="/")


def _login_page(request: Request, status_code: int = 200, error: str = "", username: str = "",
                next_url: str = "/"):
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    resp = render(request, "login.html", status_code=status_code, error=error,
                  username=username, next_url=_safe_next(next_url), login_csrf=token)
    _cookie(resp, LOGIN_CSRF_COOKIE, token, request.app.state.portal)
    return resp


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return _login_page(request, next_url=next)


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""),
          next: str = Form("/"), state=Depends(portal)):
    ip = client_ip(request)
    wait = state.throttle.retry_after(username, ip)
    if wait:
        state.audit(username, "login-throttled", username, ip=ip)
        resp = _login_page(request, 429, "Too many failed attempts. Try again later.",
                           username, next)
        resp.headers["Retry-After"] = str(wait)
        return resp
    user = state.users.verify(username, password)
    if user is None:
        state.throttle.failed(username, ip)
        state.audit(username, "login-failed", username, ip=ip)
        return _login_page(request, 401, "Wrong user name or password.", username, next)
    state.throttle.succeeded(username, ip)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        state.users.end_session(old)
    token, _ = state.users.create_session(user.name)
    state.audit(user.name, "login", user.name, ip=ip, role=user.role)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    _cookie(resp, SESSION_COOKIE, token, state, max_age=SESSION_SECONDS)
    return resp


@router.post("/logout")
def logout(request: Request, p: Principal = Depends(require("teacher")), state=Depends(portal)):
    state.users.end_session(p.token)
    state.audit(p.user.name, "logout", p.user.name)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/api/me")
def me(p: Principal = Depends(require("teacher"))):
    """Who is signed in, and the CSRF token scripts send in X-CSRF-Token."""
    return {"user": p.user.name, "role": p.user.role, "csrf_token": p.session.csrf}

