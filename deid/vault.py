"""Hospital-side key vault: secret keys and the re-identification map in one encrypted file.

File format: ``PACSVLT1`` magic, 12-byte nonce, AES-256-GCM ciphertext of a JSON document
(the magic is authenticated as associated data). Every change re-encrypts the whole document
to a temporary file and ``os.replace``-s it over the vault, so a crash leaves either the old
or the new vault, never a torn one. Writers hold a thread lock and an ``flock`` on
``<vault>.lock`` and re-read the file first if it changed, so threads and processes sharing
one vault (SCP, HL7 sync, CLI) agree on the keys and never lose each other's records.

The master key is 32 bytes in URL-safe base64 (``generate_master_key()``), given directly,
read from a file, or taken from the ``PACS_VAULT_KEY`` environment variable.

The vault, its temporary files and its lock file are created 0600 and its folder 0700
(``pacs_hdfs.hardening``): the modes are given at creation, never fixed afterwards.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deid.keys import KEY_BYTES, KEY_NAMES, DeidKeys
from deid.records import ReidRecord
from pacs_hdfs.hardening import open_private, private_dir

MAGIC = b"PACSVLT1"
NONCE_BYTES = 12
MASTER_KEY_ENV = "PACS_VAULT_KEY"


class VaultError(Exception):
    """The vault cannot be opened or decrypted (wrong key, corrupt file, bad master key)."""


def generate_master_key() -> str:
    """A new random master key, URL-safe base64 text to keep outside the vault."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def decode_master_key(text: str | bytes) -> bytes:
    """32 key bytes from base64 text (URL-safe or standard alphabet)."""
    raw = text.strip() if isinstance(text, bytes) else text.strip().encode("ascii")
    try:
        key = base64.urlsafe_b64decode(raw.replace(b"+", b"-").replace(b"/", b"_"))
    except (binascii.Error, ValueError) as exc:
        raise VaultError("master key is not valid base64") from exc
    if len(key) != 32:
        raise VaultError(f"master key must decode to 32 bytes, got {len(key)}")
    return key


def load_master_key(value: str | None = None, path: str | os.PathLike | None = None) -> bytes:
    """Master key from ``value``, else the file at ``path``, else ``$PACS_VAULT_KEY``."""
    if value:
        return decode_master_key(value)
    if path:
        return decode_master_key(Path(path).read_text(encoding="ascii"))
    env = os.environ.get(MASTER_KEY_ENV)
    if env:
        return decode_master_key(env)
    raise VaultError(f"no vault master key: pass one, a key file, or set {MASTER_KEY_ENV}")


def _empty_document() -> dict:
    return {"version": 1, "keys": {}, "patients": {}, "studies": {}}


class Vault:
    """Encrypted store of de-identification keys and pseudonym -> identity mappings."""

    def __init__(self, path: Path, master_key: bytes):
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._aead = AESGCM(master_key)
        self._doc = _empty_document()
        self._stamp: tuple | None = None  # (inode, size, mtime) of the file _doc was read from
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | os.PathLike, master_key: str | bytes | None = None,
             master_key_file: str | os.PathLike | None = None) -> "Vault":
        """Open (or create, if the file does not exist) the vault at ``path``.

        ``master_key`` is base64 text or 32 raw bytes; without it the key comes from
        ``master_key_file`` or ``$PACS_VAULT_KEY``. Raises VaultError on a wrong key.
        """
        if isinstance(master_key, bytes) and len(master_key) == 32:
            key = master_key
        else:
            text = master_key.decode("ascii") if isinstance(master_key, bytes) else master_key
            key = load_master_key(text, master_key_file)
        vault = cls(Path(path), key)
        with vault._exclusive():  # creates the file if it is missing
            pass
        return vault

    # --- encryption and persistence ---------------------------------------------------------

    def _decrypt(self, blob: bytes) -> dict:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise VaultError(f"{self._path} is not a PACS vault file")
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        try:
            plain = self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], MAGIC)
        except InvalidTag as exc:
            raise VaultError(f"cannot decrypt {self._path}: wrong master key or corrupt file") from exc
        return json.loads(plain)

    def _file_stamp(self) -> tuple | None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self) -> None:
        """Re-read the file if another process (or Vault object) replaced it since."""
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            self._doc = self._decrypt(self._path.read_bytes())
            self._stamp = stamp

    @contextmanager
    def _exclusive(self):
        """Lock against other threads and processes, with the newest document loaded.

        Changes made inside are based on the latest file, so two writers never drop
        each other's keys or records; a missing vault file is created on exit.
        """
        with self._lock:
            private_dir(self._path.parent)
            lock_fd = open_private(self._lock_path, os.O_RDWR | os.O_CREAT)
            with os.fdopen(lock_fd, "r+b") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    self._refresh()
                    yield
                    if self._file_stamp() is None:
                        self._save()
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _save(self) -> None:
        """Encrypt the document to a temporary file and atomically replace the vault."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = json.dumps(self._doc, separators=(",", ":"), sort_keys=True).encode("utf-8")
        blob = MAGIC + nonce + self._aead.encrypt(nonce, plain, MAGIC)
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with os.fdopen(open_private(tmp), "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        self._stamp = self._file_stamp()

    # --- keys ---------------------------------------------------------------------------------

    def key(self, name: str) -> bytes:
        """The named 32-byte secret key, created and persisted on first use."""
        with self._lock:
            encoded = self._doc["keys"].get(name)
        if encoded is not None:
            return base64.b64decode(encoded)
        with self._exclusive():
            encoded = self._doc["keys"].get(name)
            if encoded is None:
                encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
                self._doc["keys"][name] = encoded
                self._save()
            return base64.b64decode(encoded)

    def deid_keys(self) -> DeidKeys:
        """Keys for :func:`deid.deidentify` (also creates every standard key once)."""
        for name in KEY_NAMES:
            self.key(name)
        return DeidKeys.from_vault(self)

    # --- re-identification map ----------------------------------------------------------------

    def remember(self, record: ReidRecord) -> bool:
        """Store the patient and study mapping of ``record``; True if the vault changed.

        Only new or changed facts are written, so calling this for every instance of a
        study costs one file write per study, not per instance.
        """
        patient = record.patient_attributes()
        study = {
            "original_study_uid": record.original_study_uid,
            "patient_pseudonym": record.patient_pseudonym,
            "accession_number": record.accession_number,
        }
        with self._lock:
            if self._doc["patients"].get(record.patient_pseudonym) == patient and (
                    not record.deid_study_uid
                    or self._doc["studies"].get(record.deid_study_uid) == study):
                return False  # fast path: already known, no file lock needed
        with self._exclusive():
            changed = False
            if self._doc["patients"].get(record.patient_pseudonym) != patient:
                self._doc["patients"][record.patient_pseudonym] = patient
                changed = True
            if record.deid_study_uid and self._doc["studies"].get(record.deid_study_uid) != study:
                self._doc["studies"][record.deid_study_uid] = study
                changed = True
            if changed:
                self._save()
            return changed

    def lookup_patient(self, pseudonym: str) -> dict | None:
        """Original patient attributes behind ``pseudonym``, or None."""
        with self._lock:
            self._refresh()
            found = self._doc["patients"].get(pseudonym)
            return dict(found) if found else None

    def lookup_study(self, deid_study_uid: str) -> dict | None:
        """Original study UID, pseudonym and accession behind a de-identified study UID."""
        with self._lock:
            self._refresh()
            found = self._doc["studies"].get(deid_study_uid)
            return dict(found) if found else None

    def reid_record(self, deid_study_uid: str) -> ReidRecord | None:
        """A record for :func:`deid.reidentify` built from the stored study and patient."""
        study = self.lookup_study(deid_study_uid)
        if study is None:
            return None
        patient = self.lookup_patient(study["patient_pseudonym"]) or {}
        return ReidRecord(
            patient_pseudonym=study["patient_pseudonym"],
            original_study_uid=study["original_study_uid"],
            deid_study_uid=deid_study_uid,
            accession_number=study.get("accession_number", ""),
            uid_map={deid_study_uid: study["original_study_uid"]},
            **patient,
        )
