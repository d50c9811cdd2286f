"""Retry transient failures with exponential backoff; give up with the last error otherwise."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def retry(fn: Callable[[], T], *, what: str, transient: Callable[[Exception], bool],
          attempts: int = 5, first_delay: float = 0.2, max_delay: float = 3.0) -> T:
    """Call `fn` until it succeeds, retrying only errors that `transient` accepts."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified below
            if attempt == attempts or not transient(e):
                raise
            log.warning("%s failed (attempt %d/%d): %s; retrying in %.1f s",
                        what, attempt, attempts, _short(e), delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]
