"""Login and logout. Login is the only POST without a session: its CSRF token is signed for a
pre-session cookie (portal/deps.py); the password check is throttled, bounded and audited
(portal/login.py)."""
from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from portal.deps import (LOGIN_CSRF_COOKIE, LOGIN_CSRF_MAX_AGE, SESSION_COOKIE, Principal,
                         login_csrf_token, portal, require)
from portal.login import Refused, sign_in
from portal.web import client_ip, render

router = APIRouter(tags=["auth"])


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _cookie(response, name: str, value: str, state, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=state.secure_cookies, path="/")


def _login_page(request: Request, status_code: int = 200, error: str = "", username: str = "",
                next_url: str = "/"):
    state = request.app.state.portal
    presession = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not 20 <= len(presession) <= 64:
        presession = secrets.token_urlsafe(32)
    resp = render(request, "login.html", status_code=status_code, error=error,
                  username=username, next_url=_safe_next(next_url),
                  login_csrf=login_csrf_token(state.secret, presession))
    _cookie(resp, LOGIN_CSRF_COOKIE, presession, state, max_age=LOGIN_CSRF_MAX_AGE)
    return resp


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return _login_page(request, next_url=next)


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""),
          next: str = Form("/"), state=Depends(portal)):
    ip = client_ip(request)
    try:
        user = sign_in(state, username, password, ip)
    except Refused as r:
        resp = _login_page(request, r.status, r.message, username, next)
        resp.headers.update(r.headers)
        return resp
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        state.users.end_session(old)
    token, _ = state.users.create_session(user)
    state.audit(user.name, "login", user.name, ip=ip, role=user.role)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    _cookie(resp, SESSION_COOKIE, token, state, max_age=int(state.users.max_s))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
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

