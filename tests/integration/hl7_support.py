"""Helpers for the HL7 gateway integration tests: a gateway subprocess on a test port, and
client certificates of several hospitals (or of none) from its CA."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import requests

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from hl7_gateway import certs as pki
from hl7_gateway.certs import CertPaths, create_dev_pki
from pacs_hdfs.hardening import private_dir, write_private

REPO = Path(__file__).resolve().parents[2]
PACS = str(REPO / ".venv" / "bin" / "pacs")


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"gateway did not listen on {port}")


def unmapped_client(certs: CertPaths, name: str) -> CertPaths:
    """A clientAuth certificate (CN=``name``) that the CA of ``certs`` signed but that names no
    hospital, in ``<certs>/unmapped/<name>/`` as a `pacs has --certs` folder: what an older
    `pacs certs`, or someone with the CA key, could have made."""
    out = CertPaths(certs.directory / "unmapped" / name)
    ca_cert, ca_key = pki._ca(certs)
    key, cert = pki._leaf(name, ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_cert)
    private_dir(out.directory)
    write_private(out.client_key, pki._key_pem(key))
    write_private(out.client_cert, cert.public_bytes(serialization.Encoding.PEM))
    write_private(out.ca_cert, certs.ca_cert.read_bytes())
    return out


class Gateway:
    """`pacs gateway` in a subprocess with its own certificates and log file; ``env`` replaces
    the environment it runs in (e.g. a scratch namespace's, plus `PACS_GATEWAY_*` settings)."""

    def __init__(self, workdir: Path, port: int, env: dict | None = None):
        self.workdir, self.port, self.env = workdir, port, env
        self.certs: CertPaths = create_dev_pki(workdir / "certs")
        self.log_file = workdir / "gateway.log"
        self.out_file = workdir / "gateway.out"
        self.url = f"https://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Gateway":
        out = open(self.out_file, "ab")
        self.proc = subprocess.Popen(
            [PACS, "gateway", "--port", str(self.port), "--certs", str(self.certs.directory),
             "--log-file", str(self.log_file)], stdout=out, stderr=subprocess.STDOUT,
            env=dict(self.env) if self.env is not None else os.environ.copy())
        wait_for_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def session(self, with_cert: bool = True, client: CertPaths | None = None
                ) -> requests.Session:
        """A session with the HAS client certificate of `pacs certs init`, or ``client``'s."""
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.certs.ca_cert)
        if with_cert:
            client = client or self.certs
            s.cert = (str(client.client_cert), str(client.client_key))
        return s

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.log_file, self.out_file)
                       if p.exists())


def run_has(home: Path, *args: str, check: bool = True, timeout: float = 600):
    env = {**os.environ, "PACS_HOME": str(home)}
    env.pop("PACS_VAULT_KEY", None)
    return subprocess.run([PACS, "has", *args], env=env, capture_output=True, text=True,
                          check=check, timeout=timeout)


def has_popen(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PACS_HOME": str(home)}
    env.pop("PACS_VAULT_KEY", None)
    return subprocess.Popen([PACS, "has", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
