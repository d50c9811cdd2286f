"""One password check for the sign-in form and DICOMweb's HTTP Basic, in the order that keeps
its cost bounded:

1. the throttle reserves the attempt (HBase counters; over a limit -> 429 before any hash);
2. a password-hashing slot is taken (at most a few argon2 hashes at once -> 503 when none
   frees up in time, and the reservation is given back: nothing was checked);
3. the password is verified (same work for known, unknown and disabled users);
4. the reservation is settled: a failure stays counted, a success clears the pair.

Refusals are audited (`login-throttled`, `login-busy`, `login-failed`); the caller audits the
success in its own terms (the form: `login`; Basic is audited per request).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from portal.throttle import Throttled
from portal.users import Busy, User

#: outcome -> (HTTP status, audit action, what the user is told)
REFUSALS = {
    "throttled": (429, "login-throttled", "Too many failed attempts. Try again later."),
    "busy": (503, "login-busy", "Signing in is busy right now; try again in a moment."),
    "failed": (401, "login-failed", "Wrong user name or password."),
}


@dataclass
class Refused(Exception):
    """A refused sign-in: `status` (401/429/503), the message, headers such as Retry-After."""
    outcome: str
    headers: dict = field(default_factory=dict)

    @property
    def status(self) -> int:
        return REFUSALS[self.outcome][0]

    @property
    def message(self) -> str:
        return REFUSALS[self.outcome][2]


def sign_in(state, name: str, password: str, ip: str, **audit_details) -> User:
    """The user whose password this is, or `Refused` (audited)."""
    try:
        attempt = state.throttle.attempt(name, ip)
    except Throttled as t:
        raise _refused(state, "throttled", name, ip, {"Retry-After": str(t.retry_after)},
                       scope=t.scope, **audit_details) from None
    try:
        user = state.users.verify(name, password)
    except Busy:
        attempt.release()
        raise _refused(state, "busy", name, ip, {"Retry-After": "1"}, **audit_details) from None
    except BaseException:
        attempt.release()
        raise
    if user is None:
        attempt.failed()
        raise _refused(state, "failed", name, ip, {}, **audit_details)
    attempt.succeeded()
    return user


def _refused(state, outcome: str, name: str, ip: str, headers: dict, **details) -> Refused:
    state.audit(name, REFUSALS[outcome][1], name, ip=ip, **details)
    return Refused(outcome, headers)
