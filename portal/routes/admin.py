"""Admin pages: users and roles, the audit trail (filterable), quarantine review (view, preview,
release, reject: the same functions as `pacs quarantine`)."""
from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from portal import audit
from portal.deps import Principal, portal, require
from portal.roles import ROLES
from portal.users import UserError
from portal.web import render

router = APIRouter(tags=["admin"], dependencies=[Depends(require("admin"))])
admin = require("admin")
DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})?$")
DICOM_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _users_page(request, state, status_code=200, error="", notice=""):
    return render(request, "admin_users.html", status_code=status_code, users=state.users.list(),
                  roles=ROLES, error=error, notice=notice)


@router.get("/admin")
def admin_home():
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/admin/users")
def users_page(request: Request, state=Depends(portal)):
    return _users_page(request, state)


@router.post("/admin/users")
def user_add(request: Request, name: str = Form(""), role: str = Form(""),
             password: str = Form(""), p: Principal = Depends(admin), state=Depends(portal)):
    try:
        state.users.add(name.strip(), role, password)
    except UserError as e:
        return _users_page(request, state, 400, error=str(e))
    state.audit(p.user.name, "user-add", name.strip(), role=role)
    return _users_page(request, state, notice=f"added {name.strip()} ({role})")


@router.post("/admin/users/{name}/role")
def user_role(request: Request, name: str, role: str = Form(""),
              p: Principal = Depends(admin), state=Depends(portal)):
    try:
        state.users.set_role(name, role)
    except UserError as e:
        return _users_page(request, state, 400, error=str(e))
    state.audit(p.user.name, "user-role", name, role=role)
    return _users_page(request, state, notice=f"{name} is now {role}")


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


@router.get("/admin/quarantine")
def quarantine_page(request: Request, state=Depends(portal)):
    from pacs_hdfs.dicom.quarantine import list_entries
    entries, error = [], ""
    try:
        entries = list_entries(state.store, state=None)
    except Exception as e:  # noqa: BLE001 - shown on the page: the table may not exist yet
        error = f"cannot read the quarantine table: {e}"
    return render(request, "admin_quarantine.html", entries=[_with_when(e) for e in entries],
                  error=error)


def _with_when(entry: dict) -> dict:
    """The entry plus `when`: its quarantine time as readable UTC ('' when unknown)."""
    from datetime import datetime, timezone
    t = entry.get("time") or 0
    when = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if t else ""
    return {**entry, "when": when}


def _held_row(state, sop_uid: str) -> dict[bytes, bytes]:
    """The quarantine row of `sop_uid`: 400 if malformed, 404 if unknown or without object."""
    from pacs_hdfs.schema import row_key
    if len(sop_uid) > 64 or not DICOM_UID.match(sop_uid):
        raise HTTPException(400, "malformed SOP Instance UID")
    row = state.store.get("quarantine", row_key(sop_uid))
    if not row:
        raise HTTPException(404, f"{sop_uid} is not in quarantine")
    if b"q:key" not in row:
        raise HTTPException(404, f"{sop_uid} has no stored object")
    return row


@router.get("/admin/quarantine/{sop_uid}")
def quarantine_item(request: Request, sop_uid: str, state=Depends(portal)):
    from pacs_hdfs.dicom.quarantine import QuarantineError, show
    _held_row(state, sop_uid)
    try:
        entry = show(state.store, sop_uid)
    except QuarantineError as e:
        raise HTTPException(404, str(e)) from e
    return render(request, "admin_quarantine_item.html", e=_with_when(entry))


@router.get("/admin/quarantine/{sop_uid}/preview.png")
def quarantine_preview(sop_uid: str, state=Depends(portal)):
    """The held object's first frame as PNG (bytes from its HDFS batch file, verified)."""
    from io import BytesIO

    from pydicom import dcmread

    from pacs_hdfs.dicom.query import Stored
    from portal.dicom_access import archive_of
    row = _held_row(state, sop_uid)
    try:
        from portal.imaging import ImagingError, render_png
    except ImportError as e:    # a pixel decoder missing from the install
        raise HTTPException(503, "image rendering is not available") from e
    key = row[b"q:key"]
    inst = state.store.get("instance", key)
    if not inst:
        raise HTTPException(404, f"{sop_uid} has no stored object")
    data = archive_of(state).read(Stored(key, inst, "", ""))
    try:
        png = render_png(dcmread(BytesIO(data)), frame=0, center=None, width=None)
    except ImagingError as e:
        raise HTTPException(422, f"this object has no image that can be shown: {e}") from e
    return Response(png, media_type="image/png")


def _decide(sop_uid: str, state, p: Principal, decide, action: str):
    from pacs_hdfs.dicom.quarantine import QuarantineError
    row = _held_row(state, sop_uid)
    if row.get(b"q:state") != b"held":
        raise HTTPException(409, f"{sop_uid} is already {row.get(b'q:state', b'?').decode()}")
    try:
        decide(state.store, sop_uid)
    except QuarantineError as e:     # decided by someone else meanwhile
        raise HTTPException(409, str(e)) from e
    state.audit(p.user.name, action, sop_uid, reason=row.get(b"q:reason", b"").decode())
    return RedirectResponse(f"/admin/quarantine/{sop_uid}", status_code=303)


@router.post("/admin/quarantine/{sop_uid}/release")
def quarantine_release(sop_uid: str, p: Principal = Depends(admin), state=Depends(portal)):
    from pacs_hdfs.dicom.quarantine import release
    return _decide(sop_uid, state, p, release, "quarantine-release")


@router.post("/admin/quarantine/{sop_uid}/reject")
def quarantine_reject(sop_uid: str, p: Principal = Depends(admin), state=Depends(portal)):
    from pacs_hdfs.dicom.quarantine import reject
    return _decide(sop_uid, state, p, reject, "quarantine-reject")
