"""The case view: one pseudonymous patient with all their visits (teacher and up).

Glue only: reads the HBase `subject` row (its `v:<visit id>` columns) and each visit's `v:json`,
hands them to `portal.case_view`, renders or returns JSON, and audits `view-case`.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.encoders import jsonable_encoder

from portal import case_view as cv
from portal.deps import Principal, portal, require
from portal.web import render

router = APIRouter(tags=["cases"], dependencies=[Depends(require("teacher"))])
teacher = require("teacher")


def load_case(store, pseudonym: str, visit: str) -> cv.CaseView:
    """The case from HBase; 400 for malformed ids, 404 for an unknown patient or visit."""
    if not cv.valid_pseudonym(pseudonym):
        raise HTTPException(400, "malformed pseudonym: expected RS followed by 16 base32 "
                                 "characters")
    if visit and not cv.valid_visit_id(visit):
        raise HTTPException(400, "malformed visit id")
    subject = store.get("subject", pseudonym.encode())
    if not subject:
        raise HTTPException(404, f"no case with pseudonym {pseudonym}")
    visit_ids = [c[2:] for c in subject if c.startswith(b"v:")]
    rows = store.get_many("visit", visit_ids, columns=[b"v:json"]) if visit_ids else {}
    cells = [r[b"v:json"] for r in rows.values() if b"v:json" in r]
    try:
        return cv.case_view(pseudonym, cv.parse_visits(cells), visit)
    except LookupError as e:
        raise HTTPException(404, str(e)) from e


def _viewed(state, p: Principal, case: cv.CaseView) -> None:
    state.audit(p.user.name, "view-case", case.pseudonym, visits=len(case.visits))


@router.get("/cases/{pseudonym}")
def case_page(request: Request, pseudonym: str, visit: str = "",
              p: Principal = Depends(teacher), state=Depends(portal)):
    case = load_case(state.store, pseudonym, visit)
    _viewed(state, p, case)
    return render(request, "case.html", case=case)


@router.get("/api/cases/{pseudonym}")
def case_api(pseudonym: str, visit: str = "", p: Principal = Depends(teacher),
             state=Depends(portal)):
    case = load_case(state.store, pseudonym, visit)
    _viewed(state, p, case)
    return jsonable_encoder(case)
