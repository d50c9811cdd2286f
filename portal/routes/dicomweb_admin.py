"""Admin DICOMweb: `DELETE /dicomweb/studies/{study}[/series/{series}[/instances/{sop}]]`.

The study lifecycle of `pacs study delete|reject` (pacs_hdfs/dicom/lifecycle.py) over HTTP, for
role admin. `?reason=` picks the rejection note's code (IHE IOCM style, a KOS recorded with
the lifecycle record):

| reason | code | afterwards |
|---|---|---|
| `delete` (default), `113039` | 113039 Data Retention Policy Expired | gone; space freed by `pacs study compact` |
| `reject`, `113001` | 113001 Rejected for Quality Reasons | hidden; `pacs study restore` brings it back |
| `reject-patient-safety`, `113037` | 113037 Rejected for Patient Safety Reasons | as reject |

The index rows go before the answer, so QIDO/WADO, the viewer and the MDC's DIMSE Q/R stop
showing the scope at once. Answers: 200 with the outcome document (note UID, reason, objects,
bytes; see `pacs study --help`), 404 nothing stored there, 400 bad UID or reason, 503 storage
unreachable. Audited by the lifecycle (`study-delete` / `study-reject`, with the PS3.15 A.5
"DICOM Instances Deleted" message) with the portal user and client address.

A DELETE is an unsafe method: the portal's CSRF guard wants a signed-in session and its token
in `X-CSRF-Token` (HTTP Basic alone is not enough to delete). Kept apart from the read-only
DICOMweb module (portal/routes/dicomweb.py) on purpose.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from portal.deps import portal
from portal.routes.dicomweb import DicomwebRoute, require_session_or_basic
from portal.users import User
from portal.web import client_ip

admin_of = require_session_or_basic("admin")
router = APIRouter(prefix="/dicomweb", tags=["dicomweb-admin"], route_class=DicomwebRoute,
                   dependencies=[Depends(admin_of)])

#: `?reason=` -> lifecycle action (rejection_note.REASONS)
REASONS = {"delete": "delete", "113039": "delete", "reject": "reject", "113001": "reject",
           "reject-patient-safety": "reject-patient-safety", "113037": "reject-patient-safety"}


def _remove(request: Request, state, user: User, reason: str, study: str, series: str = "",
            sop: str = "") -> dict:
    from pacs_hdfs.dicom.lifecycle import NotFound, Scope
    action = REASONS.get(reason)
    if action is None:
        raise HTTPException(400, f"reason must be one of {', '.join(REASONS)}")
    try:
        scope = Scope(study, series, sop)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    try:
        out = state.lifecycle().remove(action, scope, user.name, client_ip(request))
    except NotFound as e:
        raise HTTPException(404, str(e)) from None
    return out.as_dict()


REASON = Query("delete", description="delete | reject | reject-patient-safety (or the code)")


@router.delete("/studies/{study}")
def delete_study(study: str, request: Request, reason: str = REASON,
                 user: User = Depends(admin_of), state=Depends(portal)) -> dict:
    return _remove(request, state, user, reason, study)


@router.delete("/studies/{study}/series/{series}")
def delete_series(study: str, series: str, request: Request, reason: str = REASON,
                  user: User = Depends(admin_of), state=Depends(portal)) -> dict:
    return _remove(request, state, user, reason, study, series)


@router.delete("/studies/{study}/series/{series}/instances/{sop}")
def delete_instance(study: str, series: str, sop: str, request: Request, reason: str = REASON,
                    user: User = Depends(admin_of), state=Depends(portal)) -> dict:
    return _remove(request, state, user, reason, study, series, sop)
