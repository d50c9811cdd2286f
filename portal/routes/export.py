"""Cohort export from the portal (analyst and up; teachers cannot export).

- `POST /search/export` ("Export this search" on the search page): the search's criteria are
  resolved to every matching case with the portal's live case index, here at submit time (the
  job runner holds no case index), and an `export` job is submitted with both: the criteria go
  into the manifest, the pseudonyms select the cases. Audited as `launch-job`.
- `GET /jobs/{job_id}/export.zip`: the zip streamed from HDFS, to the job's owner and admins
  only (403 for anyone else, audited as `download-denied`); every download is audited
  (`download-export`: user, job, bytes and sha256 of the zip from the job's result).
"""
from __future__ import annotations

import json

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import ValidationError

from analytics_jobs.export.job import ZIP_NAME
from analytics_jobs.export.params import SEARCH_ONLY_FIELDS, Params
from portal.deps import Principal, portal, require
from portal.roles import allows
from portal.routes.jobs import _record
from portal.search.query import CaseQuery, resolve

router = APIRouter(tags=["export"], dependencies=[Depends(require("analyst"))])
analyst = require("analyst")
MAX_CASES = Params.model_fields["max_cases"].default
INDEX_WAIT_S = 5.0


def _criteria(form) -> CaseQuery:
    raw = {k: str(v) for k, v in form.items()
           if k in CaseQuery.model_fields and k not in SEARCH_ONLY_FIELDS and str(v).strip()}
    try:
        q = CaseQuery.model_validate(raw)
    except ValidationError as e:
        raise HTTPException(422, "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}"
                                           for x in e.errors())) from None
    if q.is_empty:
        raise HTTPException(422, "give at least one criterion: an export never takes every case")
    return q


def matching_cases(state, q: CaseQuery, limit: int = MAX_CASES) -> list[str]:
    """Every case pseudonym the live index matches for `q` (422 above `limit`; 503 while the
    index is still loading, as an export of a partial index would silently miss cases)."""
    live = state.search.start()
    if not live.ready.is_set() and not live.error:
        live.ready.wait(INDEX_WAIT_S)
    if not live.ready.is_set():
        raise HTTPException(503, "the case index is still loading; try the export again shortly")
    index = live.index
    criteria = resolve(q, index)
    total = index.search(criteria, "patient", False, 1, 1).total
    if total > limit:
        raise HTTPException(422, f"{total} cases match; an export takes at most {limit}: "
                                 "narrow the search")
    if total == 0:
        return []
    return [c.patient for c in index.search(criteria, "patient", False, 1, total).cases]


@router.post("/search/export")
async def export_search(request: Request, p: Principal = Depends(analyst),
                        state=Depends(portal)):
    q = _criteria(await request.form())
    pseudonyms = matching_cases(state, q)
    if not pseudonyms:
        raise HTTPException(422, "no case matches this search: nothing to export")
    criteria = q.model_dump(mode="json", exclude_defaults=True, exclude=set(SEARCH_ONLY_FIELDS))
    try:
        rec = state.jobs.submit("export", {"criteria": criteria, "pseudonyms": pseudonyms},
                                user=p.user.name)
    except ValidationError as e:
        raise HTTPException(422, str(e).splitlines()[0]) from None
    state.audit(p.user.name, "launch-job", rec.id, kind="export", cases=len(pseudonyms),
                criteria=criteria)
    return RedirectResponse(f"/jobs/{rec.id}", status_code=303)


@router.get("/jobs/{job_id}/export.zip")
def export_download(job_id: str, p: Principal = Depends(analyst), state=Depends(portal)):
    rec = _record(state, job_id)
    if rec.kind != "export" or rec.state != "succeeded" or ZIP_NAME not in rec.artifacts:
        raise HTTPException(404, "this job has no export to download")
    if rec.user != p.user.name and not allows(p.user.role, "admin"):
        state.audit(p.user.name, "download-denied", f"job/{rec.id}/{ZIP_NAME}", owner=rec.user)
        raise HTTPException(403, "only the job's owner and admins can download its export")
    export = json.loads(state.jobs.artifact(rec.id, "result.json")).get("export", {})
    state.audit(p.user.name, "download-export", f"job/{rec.id}/{ZIP_NAME}", job=rec.id,
                bytes=export.get("bytes"), sha256=export.get("sha256"), owner=rec.user)
    headers = {"Content-Disposition": f'attachment; filename="export-{rec.id}.zip"'}
    if export.get("bytes") is not None:
        headers["Content-Length"] = str(export["bytes"])
    return StreamingResponse(state.hdfs.read_chunks(rec.artifacts[ZIP_NAME]),
                             media_type="application/zip", headers=headers)
