"""FastAPI dependencies: the portal state, the signed-in user, role checks and CSRF.

Every router declares `dependencies=[Depends(require(ROLE))]`; the app itself carries
`csrf_guard`, so no POST route can forget it.

The login form has no session yet. Its CSRF token is bound to a pre-session instead: the
`pacs_login_csrf` cookie holds a random pre-session id, and the form's token is
``<issued>.<HMAC-SHA256(server secret, pre-session id, issued)>``. A client can set any cookie
it likes, but without the server secret it cannot make a token that matches it, so a
made-up cookie/field pair is refused; a token is good for `LOGIN_CSRF_MAX_AGE` seconds.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

from portal.roles import allows
from portal.users import Session, User

SESSION_COOKIE = "pacs_session"
LOGIN_CSRF_COOKIE = "pacs_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_CSRF_MAX_AGE = 2 * 3600


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
    """The signed-in user (read fresh from HBase, so a role change, disabling or a new
    password applies at once)."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    token = request.cookies.get(SESSION_COOKIE, "")
    found = request.app.state.portal.users.principal(token) if token else None
    p = Principal(found[0], found[1], token) if found else None
    request.state.principal = p
    return p


def _login_mac(secret: bytes, presession: str, issued: str) -> str:
    msg = b"login-csrf\0" + presession.encode() + b"\0" + issued.encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def login_csrf_token(secret: bytes, presession: str, now: float | None = None) -> str:
    """The login form's CSRF token for this pre-session id."""
    issued = str(int(time.time() if now is None else now))
    return f"{issued}.{_login_mac(secret, presession, issued)}"


def login_csrf_valid(secret: bytes, presession: str, token: str,
                     now: float | None = None) -> bool:
    """True if `token` was made by this server for `presession` and is not too old."""
    issued, _, mac = token.partition(".")
    if not presession or not issued.isdigit() or len(token) > 200:
        return False
    age = (time.time() if now is None else now) - int(issued)
    return 0 <= age <= LOGIN_CSRF_MAX_AGE and hmac.compare_digest(
        mac.encode(), _login_mac(secret, presession, issued).encode())


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

    The login form has no session yet: its token is signed for the pre-session cookie."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = str((await request.form()).get(CSRF_FIELD, ""))
    if request.url.path == "/login":
        ok = login_csrf_valid(request.app.state.portal.secret,
                              request.cookies.get(LOGIN_CSRF_COOKIE, ""), sent)
    else:
        p = current(request)
        if p is None:
            raise NotSignedIn()
        ok = bool(sent) and hmac.compare_digest(sent.encode(), p.session.csrf.encode())
    if not ok:
        raise HTTPException(403, "missing or wrong CSRF token")
