"""Teacher pages: the landing page."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from portal.deps import require
from portal.web import render

router = APIRouter(tags=["teacher"], dependencies=[Depends(require("teacher"))])


@router.get("/")
def landing(request: Request):
    return render(request, "home.html")

