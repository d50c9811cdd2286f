"""SCP settings that the shared Settings object does not carry, read from `PACS_SCP_*` env vars.

| env var | meaning |
|---|---|
| `PACS_SCP_BIND` | listen address (default `0.0.0.0`); AE title and port are `PACS_SCP_AE_TITLE` / `PACS_SCP_PORT` of the main settings |
| `PACS_SCP_ALLOWED_AES` | comma-separated calling AE titles allowed to associate; empty = all |
| `PACS_SCP_DESTINATIONS` | C-MOVE destinations, `AE=host:port,AE2=host:port` |
| `PACS_SCP_TLS_CERT`, `PACS_SCP_TLS_KEY` | server certificate and key (PEM): enables DICOM TLS |
| `PACS_SCP_TLS_CA` | CA bundle (PEM): if set, clients must present a certificate it signed |
| `PACS_SCP_VAULT` | hospital-side vault file (default `$PACS_HOME/hospital/vault.bin`) |
| `PACS_SCP_MASTER_KEY_FILE` | vault master key file (default `$PACS_HOME/hospital/master.key`; or `PACS_VAULT_KEY`) |
| `PACS_SCP_LOG` | log file (default `$PACS_HOME/logs/scp.log`) |
"""
from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pacs_hdfs.settings import Settings


class ScpConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PACS_SCP_", extra="ignore")

    bind: str = "0.0.0.0"
    allowed_aes: str = ""
    destinations: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    vault: Path | None = None
    master_key_file: Path | None = None
    log: Path | None = None

    @field_validator("tls_cert", "tls_key", "tls_ca", "vault", "master_key_file", "log",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return v or None

    def allowed(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.allowed_aes.split(",") if a.strip())

    def move_destinations(self) -> dict[str, tuple[str, int]]:
        return parse_destinations(self.destinations)

    def vault_path(self, settings: Settings) -> Path:
        return self.vault or settings.path("hospital", "vault.bin")

    def key_path(self, settings: Settings) -> Path:
        return self.master_key_file or settings.path("hospital", "master.key")

    def log_path(self, settings: Settings) -> Path:
        return self.log or settings.path("logs", "scp.log")

    def ssl_context(self) -> ssl.SSLContext | None:
        """Server TLS context, or None when no certificate is configured."""
        if not self.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_ca:
            ctx.load_verify_locations(self.tls_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def parse_destinations(text: str) -> dict[str, tuple[str, int]]:
    """`AE=host:port,AE2=host:port` -> {AE: (host, port)}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        ae, _, addr = part.partition("=")
        host, _, port = addr.rpartition(":")
        if not ae or not host or not port.isdigit():
            raise ValueError(f"bad C-MOVE destination {part!r}: want AE=host:port")
        out[ae.strip()] = (host.strip(), int(port))
    return out
