"""Process glue shared by the portal's integration and browser tests: free ports, a real
`pacs portal` subprocess, headless Debian Chromium, screenshots."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import requests

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "e2e"


def have_chromium() -> bool:
    return Path(CHROMIUM).exists() and Path(DRIVER).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def portal_process(port: int | None = None, timeout: float = 90):
    """`pacs portal` on 127.0.0.1 with this process's environment; yields (url, log path) once
    /healthz answers, and terminates it afterwards."""
    port = port or free_port()
    log = Path(tempfile.mktemp(prefix="portal-test-", suffix=".log"))
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pacs_cli", "portal", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "portal did not start"
            time.sleep(0.5)
        yield SimpleNamespace(url=url, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


@contextmanager
def chromium():
    """Headless Chromium through the Debian chromedriver, in a throw-away profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="chromium-test-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                "--lang=en-US", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def make_user(settings, role: str, tag: str) -> tuple[str, str]:
    """A portal user with a random password in the cluster's HBase; returns (name, password)."""
    import secrets

    from pacs_hdfs import clients
    from portal.users import UserStore
    name, password = f"{tag}-{role}-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    UserStore(clients.hbase(settings)).add(name, role, password)
    return name, password


# a rolling hash and the red-channel sum of the viewer canvas: changes on any redraw
CANVAS_PIXELS = """
const c = document.getElementById('view');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let h = 0, sum = 0;
for (let i = 0; i < d.length; i += 4) { h = (h * 31 + d[i] + 7 * d[i + 1]) >>> 0; sum += d[i]; }
return [h, sum];
"""


def signed_in(url: str, name: str, password: str):
    """A `requests` session signed in to the portal at `url` through its real form, and the
    session's CSRF token (for POST/DELETE). Returns (session, csrf token)."""
    import re

    import requests

    from tests.portal_doubles import LOGIN_TOKEN
    s = requests.Session()
    token = LOGIN_TOKEN.search(s.get(url + "/login").text).group(1)
    r = s.post(url + "/login", data={"username": name, "password": password, "next": "/",
                                     "csrf_token": token}, allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', s.get(url + "/").text).group(1)
    return s, csrf
