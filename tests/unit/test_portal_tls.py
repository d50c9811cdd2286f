"""`pacs portal` serves HTTPS when PACS_PORTAL_CERT/PACS_PORTAL_KEY are set, and then marks its
cookies Secure and speaks only AEAD suites (TLS 1.2 ECDHE+AES-GCM/ChaCha20, TLS 1.3). (The login
page needs no cluster, so this runs without one.)"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PORT = 8006


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    c, k = tmp_path / "portal.crt", tmp_path / "portal.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


def test_https_portal_sets_secure_cookies(tmp_path):
    cert, key = _self_signed(tmp_path)
    env = {**os.environ, "PACS_PORTAL_CERT": str(cert), "PACS_PORTAL_KEY": str(key)}
    proc = subprocess.Popen([sys.executable, "-m", "pacs_cli", "portal", "--port", str(PORT)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    urllib3.disable_warnings()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = requests.get(f"https://127.0.0.1:{PORT}/login", verify=str(cert), timeout=2)
                break
            except requests.exceptions.SSLError:
                raise
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                assert time.monotonic() < deadline, "portal did not start"
                time.sleep(0.5)
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert "max-age" in r.headers["strict-transport-security"]
        assert _handshake(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert _handshake(ssl.TLSVersion.TLSv1_3, None)
        assert not _handshake(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256")    # CBC
        assert not _handshake(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-SHA")       # CBC, SHA1
        with pytest.raises(requests.ConnectionError):   # no plain HTTP on that port
            requests.get(f"http://127.0.0.1:{PORT}/login", timeout=2)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _handshake(version: ssl.TLSVersion, ciphers: str | None) -> bool:
    """Whether a client pinned to `version` (and TLS 1.2 `ciphers`) completes a handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=5) as raw:
            with ctx.wrap_socket(raw):
                return True
    except (ssl.SSLError, OSError):
        return False


def test_half_configured_tls_is_refused(tmp_path):
    env = {**os.environ, "PACS_PORTAL_CERT": str(tmp_path / "missing.crt"),
           "PACS_PORTAL_KEY": ""}
    out = subprocess.run([sys.executable, "-m", "pacs_cli", "portal", "--port", str(PORT)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "portal_cert" in out.stderr
