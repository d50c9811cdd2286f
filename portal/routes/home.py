"""Teacher pages: the landing page and the case search (placeholder until the search backend)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from portal.deps import require
from portal.web import render

router = APIRouter(tags=["teacher"], dependencies=[Depends(require("teacher"))])


@router.get("/")
def landing(request: Request):
    return render(request, "home.html")


@router.get("/search")
def search(request: Request, q: str = ""):
    return render(request, "search.html", q=q)
