"""Keyed, deterministic replacements: patient pseudonyms, accession hashes, UIDs, date shifts.

Dates are rewritten, never carried: a DA, DT or TM value (single or a range, either end open)
is parsed with the verifier's grammar and written anew, so text hidden after a date, or a
second range end, cannot slip through unshifted.

All are HMAC-SHA256 with a secret key from the hospital-side vault, so the same input always
maps to the same output (studies of one patient stay linked, references between objects
survive) while nobody without the key can reverse or recompute them. Each function uses its
own domain label, so one key can never produce the same output for two kinds of input.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from functools import lru_cache

from pydicom.uid import UID_dictionary

# The formats and date grammars live with the data center's verification check, which must not
# import this module.
from deid.verify import (
    ACCESSION_CHARS,
    ACCESSION_PREFIX,
    DA_VALUE,
    DT_VALUE,
    PATIENT_PREFIX,
    PATIENT_PSEUDONYM_CHARS,
    TM_VALUE,
    range_parts,
)

MAX_SHIFT_DAYS = 3650
_DA_FORMAT = "%Y%m%d"


def _digest(key: bytes, domain: str, *parts: str) -> bytes:
    message = "\x1f".join((domain, *parts)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()


def _b32(data: bytes, length: int) -> str:
    return base64.b32encode(data).decode("ascii")[:length]


@lru_cache(maxsize=8192)
def patient_pseudonym(key: bytes, patient_id: str, issuer: str = "") -> str:
    """Stable pseudonym for a patient: 'RS' + 16 base32 chars of HMAC(issuer, patient id)."""
    return PATIENT_PREFIX + _b32(_digest(key, "patient", issuer.strip(), patient_id.strip()),
                                 PATIENT_PSEUDONYM_CHARS)


@lru_cache(maxsize=8192)
def pseudonymise_accession(key: bytes, accession: str) -> str:
    """Replacement AccessionNumber (16 chars, fits SH) shared by the DICOM and HL7 sides.

    Pass the vault's pseudonym key, so both sides compute the same value for a visit.
    """
    return ACCESSION_PREFIX + _b32(_digest(key, "accession", accession.strip()), ACCESSION_CHARS)


@lru_cache(maxsize=8192)
def date_shift_days(key: bytes, patient_id: str, issuer: str = "") -> int:
    """Per-patient date offset in days, in -MAX_SHIFT_DAYS..-1, from HMAC of the patient id."""
    digest = _digest(key, "date-shift", issuer.strip(), patient_id.strip())
    return -(1 + int.from_bytes(digest[:8], "big") % MAX_SHIFT_DAYS)


@lru_cache(maxsize=65536)
def remap_uid(key: bytes, uid: str) -> str:
    """'2.25.' + the 128-bit integer of HMAC(uid); well-known UIDs (SOP classes, transfer
    syntaxes, ... in pydicom's UID dictionary) and empty values are returned unchanged."""
    uid = uid.strip("\x00 ")
    if not uid or uid in UID_dictionary:
        return uid
    return "2.25." + str(int.from_bytes(_digest(key, "uid", uid)[:16], "big"))


@lru_cache(maxsize=16384)
def _shift_date(digits: str, days: int) -> str:
    """Shift a 'YYYY', 'YYYYMM' or 'YYYYMMDD' date by ``days``, keeping its precision.

    Year and year-month values are shifted from the first day of that period and truncated
    back. '' when the date does not exist or leaves the calendar."""
    padded = digits + "0101"[len(digits) - 4:]
    try:
        shifted = dt.datetime.strptime(padded, _DA_FORMAT) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"[:len(digits)]


def _shift_one_dt(value: str, days: int) -> str:
    date, time, offset = DT_VALUE.match(value).groups()
    shifted = _shift_date(date, days)
    return shifted + time + (offset or "") if shifted else ""


def _rewrite(value: str, grammar, one) -> str:
    """Apply ``one`` to a single value or to both ends of a range; '' when ``value`` is not
    well formed or an end cannot be rewritten (nothing of a malformed value is carried)."""
    parts = range_parts(value, grammar)
    if parts is None:
        return ""
    out = [one(p) if p else "" for p in parts]
    if any(p and not o for p, o in zip(parts, out)):
        return ""
    return "-".join(out)


@lru_cache(maxsize=16384)
def shift_da(value: str, days: int) -> str:
    """Shift one DA value ('YYYYMMDD', or a range 'A-B', 'A-', '-B') by ``days``.

    '' when the value is not a well-formed DA. With ``days`` = 0 the value is only checked."""
    return _rewrite(value, DA_VALUE, lambda v: _shift_date(v, days))


@lru_cache(maxsize=16384)
def shift_dt(value: str, days: int) -> str:
    """Shift the date part of one DT value (or of both ends of a DT range) by ``days``, keeping
    its time, fraction and UTC offset; '' when the value is not a well-formed DT.

    Values with only year or year-month precision are shifted from the first day of that
    period and truncated back to the same precision."""
    return _rewrite(value, DT_VALUE, lambda v: _shift_one_dt(v, days))


@lru_cache(maxsize=16384)
def clean_tm(value: str, days: int = 0) -> str:
    """One TM value (or range) if well formed, else ''. Whole-day shifts keep times of day, so
    ``days`` is ignored; the ACR-NEMA form 'HH:MM:SS' is rewritten as 'HHMMSS'."""
    value = value.strip()
    if ":" in value:
        value = value.replace(":", "")
    return _rewrite(value, TM_VALUE, lambda v: v)
