"""Rendering helpers shared by the routers: templates with the user and CSRF token filled in."""
from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates

from hl7_gateway.models import age_label
from portal.deps import current
from portal.roles import allows

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["allows"] = allows
templates.env.filters["age"] = age_label   # stored ages are top-coded: 90 is shown "90+"


def render(request: Request, name: str, status_code: int = 200, **ctx):
    p = current(request)
    ctx.update(user=p.user if p else None, csrf=p.session.csrf if p else "")
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"
