"""Helpers for the whole-portal browser flow (tests/e2e/test_portal_flow_browser.py).

`expected_case` works out, from the HIS export and the hospital's own keys, what the portal must
show for the demo study's patient (pseudonym, de-identified accession, a visit's ICD-10 code), so
the test asserts against values it derived, never against what the portal happens to print.
The rest is process glue: free ports, a `pacs portal` subprocess, headless Chromium.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# sum of the red channel of the viewer canvas, and a rolling hash of it: changes on any redraw
CANVAS_PIXELS = """
const c = document.getElementById('view');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let h = 0, sum = 0;
for (let i = 0; i < d.length; i += 4) { h = (h * 31 + d[i] + 7 * d[i + 1]) >>> 0; sum += d[i]; }
return [h, sum];
"""


@dataclass(frozen=True)
class ExpectedCase:
    pseudonym: str          # research id of the patient
    accession: str          # de-identified accession of the CT exam sent to the SCP
    visit_id: str           # encrypted id of the visit holding that exam
    icd10: str              # an ICD-10 code of that visit
    day: str                # its admission day, YYYY-MM-DD
    city: str
    visits: int             # how many visits the patient has in the export


def expected_case(records: list[dict], keys, national_id: str, accession: str) -> ExpectedCase:
    """What the MDC holds for the patient `national_id` and the exam `accession` (both PHI-side
    values from the export), de-identified with the HAS keys `keys`."""
    from hl7_gateway.deidentify_visit import his_record_to_visit
    mine = [r for r in records if r["patient"]["national_id"] == national_id]
    exam_visit = next(r for r in mine if any(e.get("accession") == accession for e in r["exams"]))
    visit = his_record_to_visit(exam_visit, keys)
    codes = [d.code for d in visit.diagnoses if d.system == "ICD10"]
    assert codes, "the exam's visit has no ICD-10 diagnosis: pick another seed"
    deid_accessions = [e.accession for e in visit.exams if e.kind == "CT" and e.accession]
    return ExpectedCase(pseudonym=visit.patient_id, accession=deid_accessions[0],
                        visit_id=visit.visit_id, icd10=codes[0],
                        day=visit.admission.date().isoformat(), city=visit.city or "",
                        visits=len(mine))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def portal_process(port: int, timeout: float = 90):
    """`pacs portal` on 127.0.0.1:`port` with this process's environment; yields its URL once
    /healthz answers, terminates it afterwards."""
    log = open(tempfile.mktemp(prefix="portal-flow-", suffix=".log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "pacs_hdfs", "portal", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, Path(log.name).read_text()[-2000:]
            assert time.monotonic() < deadline, "portal did not start"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


@contextmanager
def chromium():
    """Headless Chromium through the Debian chromedriver, in a throw-away profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="chromium-flow-")
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


@contextmanager
def job_runner_cleanup(settings):
    """Stop the job runner afterwards if it was not running before and has nothing left to do
    (the portal starts it on the first launch; it would otherwise run on forever)."""
    from analytics_jobs.service import RUNNER_NAME, JobService
    from deploy.supervisor import Supervisor
    sup = Supervisor(settings)
    was_running = bool(sup.pid(RUNNER_NAME))
    try:
        yield
    finally:
        if not was_running and sup.pid(RUNNER_NAME):
            busy = [j for j in JobService(settings).list(50) if not j.final]
            if not busy:
                sup.stop_daemon(RUNNER_NAME)
