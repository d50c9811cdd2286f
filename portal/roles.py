"""Roles, lowest to highest; a higher role has every right of the lower ones."""
from __future__ import annotations

ROLES = ("teacher", "analyst", "admin")


def rank(role: str) -> int:
    """Position of a role (-1 for an unknown role, which has no rights)."""
    return ROLES.index(role) if role in ROLES else -1


def allows(role: str, needed: str) -> bool:
    return rank(role) >= rank(needed) >= 0
