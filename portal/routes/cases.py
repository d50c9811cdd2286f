"""The case view: one pseudonymous patient with all their visits (teacher and up).

Glue only: reads the HBase `subject` row (its `v:<visit id>` columns) and each visit's `v:json`,
hands them to `portal.case_view`, renders or returns JSON, and audits `view-case`. An exam's
"Open in OHIF" link (shown when `portal_viewer_url` is set) goes through `/cases/{p}/viewer/{acc}`,
which checks the exam belongs to the case and redirects to the viewer with a study-scoped token.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import RedirectResponse

from pacs_hdfs.rows import subject as subject_rows
from pacs_hdfs.rows import visit as visit_rows
from portal import case_view as cv
from portal.deps import Principal, portal, require
from portal.dicom_access import Archive, archive
from portal.routes.dicomweb import viewer_launch_url
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
    subject = store.get("subject", subject_rows.key(pseudonym))
    if not subject:
        raise HTTPException(404, f"no case with pseudonym {pseudonym}")
    visit_ids = subject_rows.visits(subject)
    rows = store.get_many("visit", visit_ids, columns=[visit_rows.JSON]) if visit_ids else {}
    cells = [cell for r in rows.values() if (cell := visit_rows.visit_json(r)) is not None]
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
    return render(request, "case.html", case=case,
                  launch_viewer=bool(state.settings.portal_viewer_url))


@router.get("/cases/{pseudonym}/viewer/{accession}")
def launch_viewer(pseudonym: str, accession: str, p: Principal = Depends(teacher),
                  state=Depends(portal), archive: Archive = Depends(archive)):
    """The exam's study in the standard viewer (OHIF): 303 to `portal_viewer_url` with the
    study and a read-only token for it (routes/dicomweb.py `viewer_launch_url`)."""
    if not state.settings.portal_viewer_url:
        raise HTTPException(404, "No standard viewer is configured (portal_viewer_url).")
    case = load_case(state.store, pseudonym, "")
    if not any(e.accession == accession for v in case.visits for e in v.exams):
        raise HTTPException(404, "No such examination in this case.")
    study = archive.study_for_accession(accession)
    if study is None:
        raise HTTPException(404, f"No examination with accession {accession} has arrived in "
                                 "the archive yet (or it is held for review).")
    state.audit(p.user.name, "view-study", study, via="viewer-launch", case=pseudonym)
    return RedirectResponse(viewer_launch_url(state, p.user, p.session.expires, study),
                            status_code=303)


@router.get("/api/cases/{pseudonym}")
def case_api(pseudonym: str, visit: str = "", p: Principal = Depends(teacher),
             state=Depends(portal)):
    case = load_case(state.store, pseudonym, visit)
    _viewed(state, p, case)
    return jsonable_encoder(case)
