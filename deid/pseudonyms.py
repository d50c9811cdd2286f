"""Keyed, deterministic replacements: patient pseudonyms, accession hashes, UIDs, date shifts.

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

# The formats live with the data center's verification check, which must not import this module.
from deid.verify import ACCESSION_CHARS, ACCESSION_PREFIX, PATIENT_PREFIX, PATIENT_PSEUDONYM_CHARS

MAX_SHIFT_DAYS = 3650
_DA_FORMAT = "%Y%m%d"


def _digest(key: bytes, domain: str, *parts: str) -> bytes:
    message = "\x1f".join((domain, *parts)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()


def _b32(data: bytes, length: int) -> str:
    return base64.b32encode(data).decode("ascii")[:length]


def patient_pseudonym(key: bytes, patient_id: str, issuer: str = "") -> str:
    """Stable pseudonym for a patient: 'RS' + 16 base32 chars of HMAC(issuer, patient id)."""
    return PATIENT_PREFIX + _b32(_digest(key, "patient", issuer.strip(), patient_id.strip()),
                                 PATIENT_PSEUDONYM_CHARS)


def pseudonymise_accession(key: bytes, accession: str) -> str:
    """Replacement AccessionNumber (16 chars, fits SH) shared by the DICOM and HL7 sides.

    Pass the vault's pseudonym key, so both sides compute the same value for a visit.
    """
    return ACCESSION_PREFIX + _b32(_digest(key, "accession", accession.strip()), ACCESSION_CHARS)


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


def shift_da(value: str, days: int) -> str:
    """Shift one DA value ('YYYYMMDD', or a 'A-B' range) by ``days``; '' if unparseable."""
    value = value.strip()
    if "-" in value:
        return "-".join(shift_da(part, days) if part else "" for part in value.split("-"))
    try:
        return (dt.datetime.strptime(value, _DA_FORMAT) + dt.timedelta(days=days)).strftime(_DA_FORMAT)
    except ValueError:
        return ""


def shift_dt(value: str, days: int) -> str:
    """Shift the date part of one DT value, keeping its time, fraction and UTC offset.

    Values with only year or year-month precision are shifted from the first day of that
    period and truncated back to the same precision.
    """
    value = value.strip()
    digits = len(value) if value.isdigit() else next(
        (i for i, c in enumerate(value) if not c.isdigit()), len(value))
    date_len = min(digits, 8)
    if date_len not in (4, 6, 8):
        return ""
    padded = value[:date_len] + "0101"[date_len - 4:]
    shifted = shift_da(padded, days)
    return shifted[:date_len] + value[date_len:] if shifted else ""
