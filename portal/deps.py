"""FastAPI dependencies: the portal state, the signed-in user, role checks and CSRF.

Every router declares `dependencies=[Depends(require(ROLE))]`; the app itself carries
`csrf_guard`, so no POST route can forget it.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

from portal.roles import allows
from portal.users import Session, User

SESSION_COOKIE = "pacs_session"
LOGIN_CSRF_COOKIE = "pacs_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class NotSignedIn(Exception):
    """Raised for anonymous requests; pages redirect to /login, the API answers 401."""


@dataclass
class Principal:
    user: User
    session: Session
    token: str


def portal(request: Request):
    return request.app.state.portal


def current(request: Request) -> Principal | None:
    """The signed-in user (role read fresh from HBase, so a role change applies at once)."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    token = request.cookies.get(SESSION_COOKIE, "")
    p = None
    if token:
        users = request.app.state.portal.users
        sess = users.session(token)
        user = users.get(sess.user) if sess else None
        if user:
            p = Principal(user, sess, token)
    request.state.principal = p
    return p


def require(role: str):
    """A dependency that lets through users with at least `role`."""
    def check(p: Principal | None = Depends(current)) -> Principal:
        if p is None:
            raise NotSignedIn()
        if not allows(p.user.role, role):
            raise HTTPException(403, f"needs role {role}")
        return p
    check.__name__ = f"require_{role}"
    return check


async def csrf_guard(request: Request) -> None:
    """Unsafe methods must carry the session's CSRF token (form field or X-CSRF-Token header).

    The login form has no session yet: it uses a double-submit cookie instead."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = str((await request.form()).get(CSRF_FIELD, ""))
    if request.url.path == "/login":
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    else:
        p = current(request)
        if p is None:
            raise NotSignedIn()
        expected = p.session.csrf
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token")
