"""Keyed replacements shared with the DICOM de-identification (patient pseudonym, accession).

Stand-ins until the lead points them at ``deid.pseudonyms``: both sides must produce the same
value for the same input, so images and visits link up at the MDC.
- ``pseudonym_for``: HMAC-SHA256(key, patient id), 'RS' + first 16 base32 chars, issuer-less
  (as briefed; ``deid.pseudonyms.patient_pseudonym`` uses a domain label and issuer, so its
  output differs until this is re-pointed).
- ``accession_for``: same construction as ``deid.pseudonyms.pseudonymise_accession`` today
  ('AC' + 14 base32 chars of HMAC-SHA256(key, "accession" US accession)), 16 chars = DICOM SH.
"""
from __future__ import annotations

import base64
import hashlib
import hmac


def _b32_hmac(key: bytes, message: str, length: int) -> str:
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:length].upper()


def pseudonym_for(key: bytes, patient_id: str) -> str:
    return "RS" + _b32_hmac(key, patient_id, 16)


def accession_for(key: bytes, accession: str) -> str:
    return "AC" + _b32_hmac(key, "\x1f".join(("accession", accession.strip())), 14)
