"""Tokenizing and normalising, shared by indexing and querying so both sides agree."""
from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache

WORD = re.compile(r"\w{2,}")
EPOCH = date(1970, 1, 1)


def fold(text: str) -> str:
    """Case- and accent-insensitive form: 'Łódź' and 'lodz' meet."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("ł", "l"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Distinct folded words of at least two characters, in order of first appearance."""
    return list(dict.fromkeys(WORD.findall(fold(text))))


@lru_cache(maxsize=50_000)          # every query compares it with each code of the vocabulary
def code_key(code: str) -> str:
    """A diagnosis code without its dot, upper case: 'c50.9' -> 'C509' (for prefix matching)."""
    return code.strip().upper().replace(".", "")


def day_number(iso_day: str | date) -> int:
    d = date.fromisoformat(iso_day) if isinstance(iso_day, str) else iso_day
    return (d - EPOCH).days


def day_iso(number: int) -> str:
    return date.fromordinal(EPOCH.toordinal() + int(number)).isoformat()
