"""Case search (teacher and up): the search page and ``GET /api/search``, from the live index.
Every search that runs is audited (`search`: the criteria given and how many cases matched)."""
from __future__ import annotations

from dataclasses import asdict
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import ValidationError

from pacs_hdfs import metrics
from portal.deps import Principal, portal, require
from portal.search.query import CaseQuery, describe_icd10, resolve
from portal.web import render

router = APIRouter(tags=["teacher"], dependencies=[Depends(require("teacher"))])
COLUMNS = (("patient", "Case"), ("age", "Age"), ("visits", "Matching visits"),
           ("latest", "Latest visit"))


def _query(request: Request) -> CaseQuery:
    """The query string as a CaseQuery; empty fields count as absent. Raises ValidationError."""
    params = {k: v for k, v in request.query_params.items() if v.strip()}
    return CaseQuery.model_validate(params)


def _problem(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'query'}: {e['msg']}"
                     for e in exc.errors())


def _run(state, p: Principal, q: CaseQuery, via: str):
    live = state.search.start()
    if not live.ready.is_set() and not live.error:
        live.ready.wait(5)      # still loading: give it a moment (not when HBase is failing)
    index = live.index
    with metrics.SEARCH_SECONDS.time():
        page = index.search(resolve(q, index), q.sort, q.order == "desc", q.page, q.per_page)
    state.audit(p.user.name, "search", "cases", via=via, total=page.total,
                criteria=q.model_dump(exclude_defaults=True, mode="json"))
    return page, live


@router.get("/search")
def search_page(request: Request, p: Principal = Depends(require("teacher")),
                state=Depends(portal)):
    try:
        q = _query(request)
    except ValidationError as exc:
        return render(request, "search.html", status_code=422, q=CaseQuery(), page=None,
                      error=_problem(exc), columns=COLUMNS, link=lambda **_: "", status={})
    page, live = (None, state.search) if q.is_empty else _run(state, p, q, "page")
    base = q.model_dump(exclude_defaults=True, mode="json")

    def link(**change) -> str:
        return "/search?" + urlencode({**base, **change})

    return render(request, "search.html", q=q, page=page, error="", columns=COLUMNS,
                  link=link, status=live.status(), describe=describe_icd10,
                  pages=(page.total + q.per_page - 1) // q.per_page if page else 0)


@router.get("/api/search")
def search_api(request: Request, p: Principal = Depends(require("teacher")),
               state=Depends(portal)):
    try:
        q = _query(request)
    except ValidationError as exc:
        raise HTTPException(422, _problem(exc)) from None
    if q.is_empty:
        raise HTTPException(422, "give at least one criterion")
    page, live = _run(state, p, q, "api")
    return {"total": page.total, "page": q.page, "per_page": q.per_page,
            "visits_matched": page.visits_matched, "took_ms": round(page.took_ms, 2),
            "index": live.status(), "cases": [asdict(c) for c in page.cases]}
