"""Two local security policies every side shares: private files and the TLS cipher policy.

Private files: secrets, PHI and anything linked to them (the hospital folder, the vault, the
link table, certificates and keys, the portal's signing key) are created 0600 inside folders
created 0700. The mode is given when the file is created (``os.open(..., 0o600)``), so no other
user can open it in the moment between creation and a later chmod; a file or folder that
already exists with a wider mode (an older install) is narrowed through its open descriptor.

TLS: TLS 1.2 or newer, and for TLS 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM,
ChaCha20-Poly1305); TLS 1.3's suites are all AEAD. `harden(ctx)` applies this to an
`ssl.SSLContext`; `AEAD_CIPHERS` is the OpenSSL cipher string for servers configured by name
(uvicorn's ``ssl_ciphers``).
"""
from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
#: TLS 1.2 suites allowed: forward secrecy and authenticated encryption only
AEAD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!DSS"


def private_dir(path: str | os.PathLike) -> Path:
    """``path`` as a folder of mode 0700 (missing parents are made with the default mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
            os.chmod(path, DIR_MODE)
    return path


def open_private(path: str | os.PathLike, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                 ) -> int:
    """A descriptor of ``path`` opened with ``flags``; a new file is created 0600, an existing
    one with a wider mode is narrowed to 0600 before anything is written."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600), replacing what was there."""
    with os.fdopen(open_private(path), "wb") as f:
        f.write(data)


def touch_private(path: str | os.PathLike) -> Path:
    """Create ``path`` empty and 0600 if missing (e.g. before SQLite or flock open it, so they
    never create it with their wider default); an existing file is narrowed to 0600."""
    os.close(open_private(path, os.O_RDONLY | os.O_CREAT))
    return Path(path)


def harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2+ and AEAD suites only, no compression; servers prefer their own order."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(AEAD_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx
