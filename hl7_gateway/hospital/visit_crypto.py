"""Deterministic authenticated encryption of hospital visit ids (AES-SIV, RFC 5297).

The same visit id always gives the same token, so re-sending a visit is idempotent at the MDC
and the token can be a stable key there; SIV authenticates, so a forged or altered token is
detected on decryption. The 64-byte key lives only on the hospital side (HAS key vault).
Tokens are base64url without padding, safe in XML attributes, URLs and HBase row keys.
"""
from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

KEY_BYTES = 64  # AES-256-SIV
_CONTEXT = [b"pacs-mdc/visit-id/v1"]  # associated data: binds tokens to this purpose


class VisitTokenError(ValueError):
    """A token that was not produced by this key (tampered, truncated or foreign)."""


def new_visit_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _check_key(key: bytes) -> AESSIV:
    if len(key) != KEY_BYTES:
        raise ValueError(f"visit-id key must be {KEY_BYTES} bytes, got {len(key)}")
    return AESSIV(key)


def encrypt_visit_id(key: bytes, visit_id: str) -> str:
    """Hospital visit id -> deterministic base64url token."""
    sealed = _check_key(key).encrypt(visit_id.encode("utf-8"), _CONTEXT)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def decrypt_visit_id(key: bytes, token: str) -> str:
    """Token -> hospital visit id; raises VisitTokenError if it does not authenticate."""
    aead = _check_key(key)
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return aead.decrypt(sealed, _CONTEXT).decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise VisitTokenError("visit token does not authenticate with this key") from exc
