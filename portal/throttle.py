"""Login throttling: at most N failures per (user, client address) in a sliding window.

Kept in the portal process's memory: one portal process serves the MDC. Restarting the portal
clears it (the audit trail still has every `login-failed`)."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class LoginThrottle:
    def __init__(self, max_failures: int = 5, window_s: float = 300.0):
        self.max_failures = max_failures
        self.window_s = window_s
        self._fails: dict[tuple[str, str], deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key, now):
        q = self._fails[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, user: str, ip: str) -> int:
        """Seconds until this (user, ip) may try again; 0 if it may try now."""
        now = time.monotonic()
        with self._lock:
            q = self._prune((user.lower(), ip), now)
            if len(q) < self.max_failures:
                return 0
            return max(1, int(q[0] + self.window_s - now) + 1)

    def failed(self, user: str, ip: str) -> None:
        with self._lock:
            self._fails[(user.lower(), ip)].append(time.monotonic())

    def succeeded(self, user: str, ip: str) -> None:
        with self._lock:
            self._fails.pop((user.lower(), ip), None)
