"""Placeholder router (filled in by the dicomweb work)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
