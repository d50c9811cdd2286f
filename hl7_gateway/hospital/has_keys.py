"""The hospital-side secrets of the HAS, from the shared hospital vault (``deid.vault.Vault``).

One vault per hospital at ``$PACS_HOME/hospital/vault.bin`` is shared with the DICOM SCP, so the
same patient gets the same pseudonym on both sides and exams link to studies. Its master key comes
from ``$PACS_VAULT_KEY`` or the file ``$PACS_HOME/hospital/master.key`` (created on first use,
mode 0600, in the hospital folder, 0700). The vault's ``visit_id`` key is 32 bytes; AES-SIV needs
64, so HKDF-SHA256 stretches it.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from deid.keys import DATE_SHIFT_KEY, PSEUDONYM_KEY, VISIT_ID_KEY
from deid.vault import MASTER_KEY_ENV, Vault, generate_master_key
from hl7_gateway.hospital.deidentify_visit import HasKeys
from hl7_gateway.hospital.visit_crypto import KEY_BYTES
from pacs_hdfs.hardening import open_private, private_dir

_SIV_INFO = b"pacs-mdc/visit-id/aes-siv-512"


def hospital_dir(home: Path) -> Path:
    return home / "hospital"


def siv_key(vault_key: bytes) -> bytes:
    """64-byte AES-SIV key derived from the vault's 32-byte visit-id key (deterministic)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=_SIV_INFO).derive(vault_key)


def master_key_file(home: Path) -> Path:
    """The master key file, created with a fresh key (mode 0600) if missing."""
    path = private_dir(hospital_dir(home)) / "master.key"
    if not path.exists():
        try:
            fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:  # another process created it meanwhile
            return path
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(generate_master_key() + "\n")
    return path


def open_vault(home: Path) -> Vault:
    """The shared hospital vault (created on first use)."""
    vault_path = hospital_dir(home) / "vault.bin"
    if os.environ.get(MASTER_KEY_ENV):
        return Vault.open(vault_path)
    return Vault.open(vault_path, master_key_file=master_key_file(home))


def has_keys(vault: Vault, date_policy: str = "shift") -> HasKeys:
    """Visit-id, pseudonym and (date policy "shift") date-shift keys for
    ``his_record_to_visit``; ``date_policy`` is ``Settings.deid_date_policy``."""
    if date_policy not in ("shift", "retain"):
        raise ValueError(f"unknown date policy {date_policy!r}")
    return HasKeys(visit_key=siv_key(vault.key(VISIT_ID_KEY)),
                   pseudonym_key=vault.key(PSEUDONYM_KEY),
                   date_shift_key=vault.key(DATE_SHIFT_KEY) if date_policy == "shift" else None)
