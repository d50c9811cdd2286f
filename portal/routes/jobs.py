"""Analyst pages and API: launch forms generated from each kind's Params, the live job list,
result pages with every chart the job drew, the numbers table and CSV/JSON downloads. Launches
and downloads are audited."""
from __future__ import annotations

import json
import re

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from portal.deps import Principal, portal, require
from portal.forms import display_value, field_errors, form_fields, params_from_form
from portal.results import result_table, to_csv
from portal.web import render

router = APIRouter(tags=["jobs"], dependencies=[Depends(require("analyst"))])
analyst = require("analyst")
JOB_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # one plain name, no dir or ..
# what a job's PNG artifacts show, for alt text and caption; others get a generic sentence
CHART_CAPTIONS = {
    ("fdk", "chart.png"): "Central axial, coronal and sagittal slices of the reconstructed "
                          "volume, and a line profile through its centre compared with the "
                          "phantom when the scan was simulated",
    ("scc-sweep", "time.png"): "Median wall time of each stage per B_in:B_out combination",
    ("scc-sweep", "memory.png"): "Peak memory above the stage start of each stage per "
                                 "B_in:B_out combination",
    ("scc-sweep", "quality.png"): "False-candidate ratio (min, quartiles, median) per "
                                  "B_in:B_out combination",
}


def available_kinds() -> dict[str, type]:
    """Kinds whose module is importable now (others are still being written)."""
    from analytics_jobs.kinds import KINDS, kind_spec
    out = {}
    for kind in KINDS:
        try:
            out[kind] = kind_spec(kind)[0]
        except Exception:  # noqa: BLE001 - a kind module that does not load is just not offered
            continue
    return out


def _params_model(kind: str):
    model = available_kinds().get(kind)
    if model is None:
        raise HTTPException(404, f"no job kind {kind!r}")
    return model


def _record(state, job_id: str):
    if not JOB_ID.match(job_id):
        raise HTTPException(404, "no such job")
    try:
        return state.jobs.status(job_id)
    except KeyError:
        raise HTTPException(404, "no such job") from None


def _public(rec) -> dict:
    d = rec.to_dict()
    d["artifacts"] = sorted(d.get("artifacts") or {})  # names only, not HDFS paths
    d["final"] = rec.final
    return d


def chart_names(artifacts) -> list[str]:
    """The job's top-level PNG artifacts, ``chart.png`` first, then by name."""
    names = [n for n in artifacts if n.endswith(".png") and FILE_NAME.match(n)]
    return sorted(names, key=lambda n: (n != "chart.png", n))


def chart_views(kind: str, artifacts) -> list[dict]:
    """What the result page shows of each PNG artifact: name and caption (also its alt text)."""
    out = []
    for name in chart_names(artifacts):
        what = "result" if name == "chart.png" else name.removesuffix(".png").replace("_", " ")
        caption = CHART_CAPTIONS.get((kind, name), f"Chart of the {kind} {what}")
        out.append({"name": name, "caption": caption})
    return out


def _launch(state, p: Principal, kind: str, raw: dict):
    rec = state.jobs.submit(kind, raw, user=p.user.name)
    state.audit(p.user.name, "launch-job", rec.id, kind=kind, params=rec.params)
    return rec


# --- pages -------------------------------------------------------------------------------
@router.get("/jobs")
def job_list(request: Request, state=Depends(portal)):
    return render(request, "jobs.html", kinds=sorted(available_kinds()),
                  jobs=[_public(r) for r in state.jobs.list(50)])


@router.get("/jobs/new/{kind}")
def job_form(request: Request, kind: str):
    model = _params_model(kind)
    fields = form_fields(model)
    return render(request, "job_form.html", kind=kind, fields=fields, errors={},
                  values={f.name: display_value(f, None) for f in fields})


@router.post("/jobs/new/{kind}")
async def job_launch(request: Request, kind: str, p: Principal = Depends(analyst),
                     state=Depends(portal)):
    model = _params_model(kind)
    fields = form_fields(model)
    form = await request.form()
    try:
        rec = _launch(state, p, kind, params_from_form(fields, form))
    except ValidationError as e:
        values = {f.name: str(form.get(f.name, "")) for f in fields}
        for f in fields:
            if f.input == "checkbox":
                values[f.name] = "True" if f.name in form else ""
        return render(request, "job_form.html", status_code=422, kind=kind, fields=fields,
                      errors=field_errors(e), values=values)
    return RedirectResponse(f"/jobs/{rec.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, state=Depends(portal)):
    rec = _record(state, job_id)
    columns, rows = [], []
    if rec.state == "succeeded" and "result.json" in rec.artifacts:
        columns, rows = result_table(json.loads(state.jobs.artifact(job_id, "result.json")))
    charts = chart_views(rec.kind, rec.artifacts) if rec.state == "succeeded" else []
    return render(request, "job.html", job=_public(rec), columns=columns, rows=rows,
                  charts=charts)


@router.get("/jobs/{job_id}/charts/{name:path}")
def job_chart(job_id: str, name: str, state=Depends(portal)):
    """Any top-level PNG artifact of the job (``name`` as listed in its artifacts)."""
    if not FILE_NAME.match(name):
        raise HTTPException(400, "a chart name is one file name (letters, digits, . _ -)")
    rec = _record(state, job_id)
    if name not in chart_names(rec.artifacts):
        raise HTTPException(404, "this job has no such chart")
    return Response(state.jobs.artifact(job_id, name), media_type="image/png")


def _download(state, p, rec, name: str, body, media_type: str) -> Response:
    state.audit(p.user.name, "download", f"job/{rec.id}/{name}", kind=rec.kind)
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{rec.id}-{name}"'})


@router.get("/jobs/{job_id}/result.json")
def job_json(job_id: str, p: Principal = Depends(analyst), state=Depends(portal)):
    rec = _record(state, job_id)
    if "result.json" not in rec.artifacts:
        raise HTTPException(404, "no result yet")
    return _download(state, p, rec, "result.json", state.jobs.artifact(job_id, "result.json"),
                     "application/json")


@router.get("/jobs/{job_id}/result.csv")
def job_csv(job_id: str, p: Principal = Depends(analyst), state=Depends(portal)):
    rec = _record(state, job_id)
    if "result.json" not in rec.artifacts:
        raise HTTPException(404, "no result yet")
    columns, rows = result_table(json.loads(state.jobs.artifact(job_id, "result.json")))
    return _download(state, p, rec, "result.csv", to_csv(columns, rows), "text/csv")


@router.post("/jobs/{job_id}/cancel")
def job_cancel(job_id: str, p: Principal = Depends(analyst), state=Depends(portal)):
    rec = _record(state, job_id)
    state.jobs.cancel(rec.id)
    state.audit(p.user.name, "cancel-job", rec.id, kind=rec.kind)
    return RedirectResponse(f"/jobs/{rec.id}", status_code=303)


# --- JSON API (polled by the pages; usable by scripts with X-CSRF-Token) -----------------
@router.get("/api/kinds")
def api_kinds():
    return {kind: model.model_json_schema() for kind, model in available_kinds().items()}


@router.get("/api/jobs")
def api_jobs(limit: int = 50, state=Depends(portal)):
    return [_public(r) for r in state.jobs.list(max(1, min(limit, 500)))]


@router.get("/api/jobs/{job_id}")
def api_job(job_id: str, state=Depends(portal)):
    return _public(_record(state, job_id))


@router.post("/api/jobs/{kind}", status_code=201)
def api_launch(kind: str, params: dict = Body(default_factory=dict),
               p: Principal = Depends(analyst), state=Depends(portal)):
    _params_model(kind)
    try:
        rec = _launch(state, p, kind, params)
    except ValidationError as e:
        return JSONResponse({"detail": "invalid parameters", "errors": field_errors(e)},
                            status_code=422)
    return _public(rec)
