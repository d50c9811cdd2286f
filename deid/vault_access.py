"""The hospital-side key vault for the embedded default: a local file, never HDFS/HBase.

The master key comes from `PACS_VAULT_KEY` if set, else from a key file created on first use
with mode 0600.
"""
from __future__ import annotations

import os
from pathlib import Path

from deid import Vault, generate_master_key
from deid.vault import MASTER_KEY_ENV


def ensure_key_file(path: Path) -> Path:
    """Create the master key file (0600) if it does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(generate_master_key())
    return path


def open_vault(vault_path: Path, key_path: Path) -> Vault:
    if os.environ.get(MASTER_KEY_ENV):
        return Vault.open(vault_path)
    return Vault.open(vault_path, master_key_file=ensure_key_file(key_path))
