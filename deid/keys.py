"""The secret keys de-identification needs, and their names in the vault."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

PSEUDONYM_KEY = "pseudonym"
DATE_SHIFT_KEY = "date_shift"
UID_KEY = "uid"
VISIT_ID_KEY = "visit_id"
#: Every key the vault creates on first use (32 random bytes each).
KEY_NAMES = (PSEUDONYM_KEY, DATE_SHIFT_KEY, UID_KEY, VISIT_ID_KEY)
KEY_BYTES = 32


@dataclass(frozen=True, repr=False)
class DeidKeys:
    """HMAC keys for patient/accession pseudonyms, date shifts and UID remapping."""

    pseudonym: bytes
    date_shift: bytes
    uid: bytes

    def __repr__(self) -> str:  # never print key material
        return "DeidKeys(<secret>)"

    @classmethod
    def generate(cls) -> "DeidKeys":
        """Fresh random keys (tests, throw-away runs)."""
        return cls(*(secrets.token_bytes(KEY_BYTES) for _ in range(3)))

    @classmethod
    def from_vault(cls, vault) -> "DeidKeys":
        """The keys stored in a :class:`deid.vault.Vault` (created there on first use)."""
        return cls(vault.key(PSEUDONYM_KEY), vault.key(DATE_SHIFT_KEY), vault.key(UID_KEY))
