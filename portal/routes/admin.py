"""Admin pages: users (add, role, password, disable/enable, delete: what `pacs user ...` does),
the audit trail (filterable). Objects held for burned-in PHI review never reach the data
center: they are reviewed on the hospital edge's own page (`deid/edge/`).

An admin cannot disable or delete their own account here (so the last admin cannot lock
everybody out by a click); `pacs user` on the server can."""
from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from pacs_hdfs import audit
from portal.deps import Principal, portal, require
from portal.roles import ROLES
from portal.users import UserError
from portal.web import render

router = APIRouter(tags=["admin"], dependencies=[Depends(require("admin"))])
admin = require("admin")
DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})?$")


def _users_page(request, state, status_code=200, error="", notice=""):
    return render(request, "admin_users.html", status_code=status_code, users=state.users.list(),
                  roles=ROLES, error=error, notice=notice)


@router.get("/admin")
def admin_home():
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/admin/users")
def users_page(request: Request, state=Depends(portal)):
    return _users_page(request, state)


def _apply(request: Request, state, p: Principal, change, audited: str, name: str,
           notice: str, **details):
    """Run one user change; 400 with its message if refused, else audit it and say so."""
    try:
        change(state.users)
    except UserError as e:
        return _users_page(request, state, 400, error=str(e))
    state.audit(p.user.name, audited, name, **details)
    return _users_page(request, state, notice=notice)


@router.post("/admin/users")
def user_add(request: Request, name: str = Form(""), role: str = Form(""),
             password: str = Form(""), p: Principal = Depends(admin), state=Depends(portal)):
    name = name.strip()
    return _apply(request, state, p, lambda users: users.add(name, role, password), "user-add",
                  name, f"added {name} ({role})", role=role)


@router.post("/admin/users/{name}/role")
def user_role(request: Request, name: str, role: str = Form(""),
              p: Principal = Depends(admin), state=Depends(portal)):
    return _apply(request, state, p, lambda users: users.set_role(name, role), "user-role",
                  name, f"{name} is now {role}", role=role)


@router.post("/admin/users/{name}/password")
def user_password(request: Request, name: str, password: str = Form(""),
                  p: Principal = Depends(admin), state=Depends(portal)):
    return _apply(request, state, p, lambda users: users.set_password(name, password),
                  "user-password", name, f"new password for {name}; their sessions ended")


#: action in the URL -> (UserStore call, audit action, notice)
LIFECYCLE = {
    "disable": (lambda users, name: users.set_disabled(name, True), "user-disable",
                "{name} is disabled; their sessions ended"),
    "enable": (lambda users, name: users.set_disabled(name, False), "user-enable",
               "{name} is enabled"),
    "delete": (lambda users, name: users.delete(name), "user-delete", "{name} is deleted"),
}


@router.post("/admin/users/{name}/{action}")
def user_lifecycle(request: Request, name: str, action: str, p: Principal = Depends(admin),
                   state=Depends(portal)):
    if action not in LIFECYCLE:
        raise HTTPException(404, "no such user action")
    change, audited, notice = LIFECYCLE[action]
    if name == p.user.name and action != "enable":
        return _users_page(request, state, 400, error="you cannot disable or delete yourself")
    return _apply(request, state, p, lambda users: change(users, name), audited, name,
                  notice.format(name=name))


def _events(state, user, action, since, until):
    if not DAY.match(since) or not DAY.match(until):
        raise HTTPException(422, "dates are YYYY-MM-DD")
    return audit.query(state.settings, user=user.strip(), action=action.strip(), since=since,
                       until=until, store=state.store)


@router.get("/admin/audit")
def audit_page(request: Request, user: str = "", action: str = "", since: str = "",
               until: str = "", state=Depends(portal)):
    events = _events(state, user, action, since, until)
    return render(request, "admin_audit.html", events=events, actions=audit.ACTIONS,
                  f={"user": user, "action": action, "since": since, "until": until})


@router.get("/api/audit")
def audit_api(user: str = "", action: str = "", since: str = "", until: str = "",
              state=Depends(portal)):
    return [e.__dict__ for e in _events(state, user, action, since, until)]
