"""The DICOM viewer (teacher and up): accession link -> study, the viewer page, and the JSON /
pixel endpoints its script uses. The browser does window/level itself on modality values
(float32) so dragging is smooth; see portal/imaging.py and portal/static/viewer.js."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from urllib.parse import quote

from portal import imaging
from portal.deps import Principal, portal, require
from portal.dicom_access import Archive, archive, require_uids
from portal.web import render

router = APIRouter(tags=["viewer"], dependencies=[Depends(require("teacher"))])
MAX_ACCESSION = 64
#: presets offered next to the dataset's own window (centre, width)
PRESETS = (("lung", "Lung", -600, 1500), ("bone", "Bone", 300, 1500),
           ("soft", "Soft tissue", 40, 400), ("brain", "Brain", 40, 80))




@router.get("/viewer/accession/{accession}")
def by_accession(accession: str, archive: Archive = Depends(archive)):
    """The case view's "Show examination" link: 303 to the study, or a 404 page."""
    if not accession or len(accession) > MAX_ACCESSION or not accession.isprintable():
        raise HTTPException(400, "not an accession number")
    study = archive.study_for_accession(accession)
    if study is None:
        raise HTTPException(404, f"No examination with accession {accession} has arrived in "
                                 "the archive yet (or it is held for review).")
    return RedirectResponse(f"/viewer/study/{quote(study)}", status_code=303)


@router.get("/viewer/study/{study_uid}")
def study_page(study_uid: str, request: Request, archive: Archive = Depends(archive),
               p: Principal = Depends(require("teacher")), state=Depends(portal)):
    require_uids(study_uid)
    study = archive.study(study_uid)
    if study is None:
        raise HTTPException(404, "No such study in the archive.")
    series = archive.series(study_uid)
    state.audit(p.user.name, "view-study", study_uid, series=len(series))
    return render(request, "viewer.html", study=study, series=series, presets=PRESETS)


@router.get("/api/viewer/studies/{study_uid}/series/{series_uid}")
def series_instances(study_uid: str, series_uid: str, archive: Archive = Depends(archive),
                     p: Principal = Depends(require("teacher")), state=Depends(portal)):
    """The series' instances in InstanceNumber order (what the slice slider walks); audited
    `view-series` (the frames the viewer then loads one by one are not audited each)."""
    require_uids(study_uid, series_uid)
    found = archive.instances(study_uid, series_uid)
    if not found:
        raise HTTPException(404, "no such series in the archive")
    state.audit(p.user.name, "view-series", study_uid, series=series_uid,
                instances=len(found))
    return {"study": study_uid, "series": series_uid,
            "instances": [{"sop": a["SOPInstanceUID"], "number": a.get("InstanceNumber", ""),
                           "rows": a.get("Rows", ""), "columns": a.get("Columns", "")}
                          for a in found]}


@router.get("/api/viewer/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
            "/frames/{frame}")
def frame_values(study_uid: str, series_uid: str, sop_uid: str, frame: int,
                 archive: Archive = Depends(archive)):
    """One frame's modality values (float32 LE) or RGB bytes; the X-* headers describe them."""
    require_uids(study_uid, series_uid, sop_uid)
    item = archive.one(study_uid, series_uid, sop_uid)
    if item is None:
        raise HTTPException(404, "no such instance in the archive")
    ds = archive.dataset(item)
    if "PixelData" not in ds:
        raise HTTPException(400, "the instance has no pixel data")
    if not 1 <= frame <= imaging.frame_count(ds):
        raise HTTPException(404, f"frame {frame} does not exist")
    try:
        body, headers = imaging.viewer_payload(ds, frame - 1)
    except imaging.ImagingError as e:
        raise HTTPException(422, str(e)) from None
    return Response(body, media_type="application/octet-stream", headers=headers)
