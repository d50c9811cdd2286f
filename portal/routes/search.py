"""Placeholder router (filled in by the search work)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
