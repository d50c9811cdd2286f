"""C-FIND attribute matching (PS3.4 C.2.2.2), pure functions over text values.

Supported: universal (empty), single value (exact; PN case-insensitive), wildcard (`*`, `?`),
UID list (`a\\b\\c`), range (`from-to`, `-to`, `from-` for DA, TM, DT).
"""
from __future__ import annotations

import fnmatch
import re

RANGE_VRS = frozenset({"DA", "TM", "DT"})


def _wildcard(pattern: str, value: str, fold: bool) -> bool:
    regex = fnmatch.translate(pattern.replace("[", "[[]"))
    return re.fullmatch(regex, value, re.IGNORECASE if fold else 0) is not None


def _in_range(query: str, value: str) -> bool:
    low, _, high = query.partition("-")
    if not value:
        return False
    width = max(len(low), len(high))
    v = value[:width] if width else value
    return (not low or v >= low[:len(v)]) and (not high or v <= high[:len(v)])


def matches(query: str, value: str, vr: str) -> bool:
    """Does the stored `value` match the C-FIND key `query` of this VR?"""
    query = (query or "").strip()
    if query in ("", "*"):
        return True
    value = (value or "").strip()
    if vr == "UI":
        return value in {q.strip() for q in query.split("\\")}
    if vr in RANGE_VRS and "-" in query:
        return _in_range(query, value)
    fold = vr == "PN"
    if "*" in query or "?" in query:
        return _wildcard(query, value, fold)
    if "\\" in value:  # multi-valued attribute: any value matches
        return any(matches(query, v, vr) for v in value.split("\\"))
    return query.casefold() == value.casefold() if fold else query == value


def row_matches(keys: dict[str, tuple[str, str]], attrs: dict[str, str]) -> bool:
    """keys: keyword -> (query, VR) for the keys with a matching value."""
    return all(matches(q, attrs.get(k, ""), vr) for k, (q, vr) in keys.items())
