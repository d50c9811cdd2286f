"""A standard viewer against our DICOMweb: OHIF v3 (the npm package's prebuilt app, installed
by `make install` into .cache/ohif) served on its own origin, in headless Chromium, on the real
cluster with authentication on.

A CT study arrives through the real path (edge -> STOW-RS -> MDC). A case holding that exam is
written to HBase the way the HL7 gateway writes it. A teacher signs in to a real `pacs portal`
(CORS allowed for OHIF's origin, `portal_viewer_url` set), opens the case page and follows its
"Open in OHIF" link: the portal redirects to OHIF with the study and a study-scoped viewer
token, which OHIF sends as `Authorization: Bearer` on every QIDO/WADO request. The test waits
for OHIF's viewport to show the image (pixels of the viewport not uniform) and records the time
to first image in test-artifacts/e2e/ohif-timing.json. Screenshots: test-artifacts/e2e/ohif-*.png.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.integration.dicom_support import DCMTK, deid_uid, scp_process, store
from tests.integration.dicomweb_viewer_support import case_with_exam
from tests.namespace_support import environment
from tests.portal_support import (ARTIFACTS, free_port, have_chromium, make_user,
                                  portal_process, screenshot)

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
OHIF_DIST = REPO / ".cache" / "ohif" / "3.13.2" / "dist"

if not have_chromium():
    pytest.skip("needs Debian packages chromium and chromium-driver", allow_module_level=True)
if not (OHIF_DIST / "index.html").exists():
    pytest.skip("OHIF is not installed: run `make ohif` (npm pack @ohif/app into .cache/ohif)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs the selenium package")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

OHIF_PORT = free_port()
OHIF_ORIGIN = f"http://127.0.0.1:{OHIF_PORT}"
SLICES = 8


def app_config(dicomweb_root: str) -> str:
    """OHIF's app-config.js: one DICOMweb data source, our portal; no study list."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "pacs",
        "configuration": {
            "friendlyName": "pacs MDC", "name": "pacs",
            "wadoUriRoot": dicomweb_root, "qidoRoot": dicomweb_root, "wadoRoot": dicomweb_root,
            "qidoSupportsIncludeField": True, "imageRendering": "wadors",
            "thumbnailRendering": "thumbnail", "thumbnailRequestStrategy": "fetch",
            "enableStudyLazyLoad": True, "supportsFuzzyMatching": False,
            "supportsWildcard": True, "staticWado": False, "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True}, "omitQuotationForMultipartRequest": True,
        },
    }
    config = {
        "routerBasename": None, "extensions": [], "modes": [], "customizationService": {},
        "showStudyList": False, "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False, "showCPUFallbackMessage": False,
        "showLoadingIndicator": True, "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "pacs", "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


class OhifHandler(SimpleHTTPRequestHandler):
    """OHIF's files, our app-config.js, index.html for the app's routes (a single-page app)."""
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".wasm": "application/wasm", ".json": "application/json",
                      ".woff2": "font/woff2", ".svg": "image/svg+xml"}

    def __init__(self, *args, config: bytes, **kw):
        self.config = config
        super().__init__(*args, **kw)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/app-config.js":
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(self.config)))
            self.end_headers()
            self.wfile.write(self.config)
            return
        if not (OHIF_DIST / path.lstrip("/")).is_file():
            self.path = "/index.html"
        super().do_GET()

    def log_message(self, *args):
        pass


@contextmanager
def ohif_server(dicomweb_root: str):
    handler = partial(OhifHandler, directory=str(OHIF_DIST),
                      config=app_config(dicomweb_root).encode())
    server = ThreadingHTTPServer(("127.0.0.1", OHIF_PORT), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield OHIF_ORIGIN
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def portal_url(cluster):
    """A portal that lets OHIF's origin call /dicomweb and links case pages to OHIF."""
    with environment(PACS_PORTAL_CORS_ORIGINS=json.dumps([OHIF_ORIGIN]),
                     PACS_PORTAL_VIEWER_URL=f"{OHIF_ORIGIN}/viewer"):
        with portal_process() as portal:
            yield portal.url


@pytest.fixture(scope="module")
def study(cluster, tmp_path_factory):
    """An 8-slice synthetic CT (256^2) through the real edge -> MDC path, with an accession."""
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    from pacs_hdfs.dicom.synthetic import ct_series, write_files
    d = tmp_path_factory.mktemp("ohif")
    accession = f"OH{uuid.uuid4().hex[:10].upper()}"
    series = ct_series(SLICES, patient_id=f"O-{uuid.uuid4().hex[:8]}", patient_name="Ohif^Test",
                       size=256, accession=accession)
    port = free_port()
    with scp_process(d, port, free_port()) as scp:
        store(write_files(series, d / "in"), port=port)
        yield deid_uid(scp, series[0].StudyInstanceUID)


@pytest.fixture(scope="module")
def teacher(cluster, settings):
    return make_user(settings, "teacher", "e2e-ohif")


@pytest.fixture(scope="module")
def case(cluster, settings, study, portal_url, teacher):
    """A case whose visit holds the study's exam (its de-identified accession, read back over
    QIDO), written as the gateway writes visits; removed afterwards."""
    from pacs_hdfs import clients
    found = requests.get(f"{portal_url}/dicomweb/studies", auth=teacher,
                         params={"StudyInstanceUID": study}).json()
    with case_with_exam(clients.hbase(settings), found[0]["00080050"]["Value"][0]) as pseudonym:
        yield pseudonym


# Where OHIF's first load spends its time (Resource Timing, ms from the OHIF page's start): the
# app's own boot until its first DICOMweb request, then the DICOMweb requests themselves.
PHASES = """
const all = performance.getEntriesByType('resource');
const dw = all.filter(e => e.name.includes('/dicomweb/'));
const kind = u => u.includes('/frames/') ? 'frames' : u.includes('/thumbnail') ? 'thumbnail'
  : u.includes('/metadata') ? 'metadata' : 'qido';
const out = {dom_content_loaded_ms: Math.round(performance.getEntriesByType('navigation')[0]
               .domContentLoadedEventEnd),
             app_resources: all.length - dw.length,
             first_dicomweb_request_ms: dw.length ? Math.round(dw[0].startTime) : null,
             dicomweb_requests: {}};
for (const e of dw) {
  const k = kind(e.name), o = out.dicomweb_requests[k] || {n: 0, ms: 0};
  o.n += 1; o.ms += Math.round(e.duration); out.dicomweb_requests[k] = o;
}
return out;
"""


def _viewport_image(driver) -> np.ndarray | None:
    """Greyscale pixels of OHIF's first viewport canvas as shown on screen (None if absent)."""
    canvases = driver.find_elements(By.CSS_SELECTOR, ".cornerstone-viewport-element canvas,"
                                                     " [data-viewport-uid] canvas")
    for canvas in canvases:
        if canvas.size["width"] >= 64 and canvas.size["height"] >= 64:
            png = canvas.screenshot_as_png
            return np.asarray(Image.open(BytesIO(png)).convert("L"))
    return None


def _shows_image(driver) -> bool:
    img = _viewport_image(driver)
    return img is not None and float(img.std()) > 10 and len(np.unique(img)) > 16


def test_ohif_opens_the_study_from_the_case_page(browser, portal_url, teacher, study, case):
    name, pw = teacher
    wait = WebDriverWait(browser, 30)
    browser.get(f"{portal_url}/cases/{case}")                 # -> the login page
    wait.until(EC.presence_of_element_located((By.ID, "username"))).send_keys(name)
    pwd = browser.find_element(By.ID, "password")
    pwd.send_keys(pw)
    pwd.send_keys(Keys.ENTER)
    link = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "a.open-viewer")))
    assert "OHIF" in link.text
    href = link.get_attribute("href")
    screenshot(browser, "ohif-01-case")

    with ohif_server(f"{portal_url}/dicomweb"):
        started = time.monotonic()
        browser.get(href)                   # portal 303 -> OHIF /viewer?StudyInstanceUIDs=..&token=..
        WebDriverWait(browser, 300, poll_frequency=0.25).until(_shows_image)
        first_image = time.monotonic() - started
        screenshot(browser, "ohif-02-first-image")
        phases = browser.execute_script(PHASES)
        for skip in browser.find_elements(By.XPATH, "//*[normalize-space(text())='Skip all']"):
            skip.click()                                      # OHIF's first-visit tour
            time.sleep(0.5)
            screenshot(browser, "ohif-03-tour-skipped")
        assert browser.current_url.startswith(OHIF_ORIGIN + "/viewer")
        assert "token=" not in browser.current_url          # OHIF took it out of the URL
        img = _viewport_image(browser)
        assert img.std() > 10, "the viewport is uniform"

        # the image OHIF draws is ours: a 256x256 CT phantom (bright disc on black)
        centre = img[img.shape[0] // 4: 3 * img.shape[0] // 4,
                     img.shape[1] // 4: 3 * img.shape[1] // 4]
        assert centre.mean() > img[:8, :8].mean(), "no phantom in the middle of the viewport"

        # a second open of the same study, warm caches: the time the viewer itself needs
        started = time.monotonic()
        browser.get(href)
        WebDriverWait(browser, 300, poll_frequency=0.25).until(_shows_image)
        warm = time.monotonic() - started

    _every_request_was_audited_with_the_token(teacher[0], study)

    # side by side in the same run: the portal's own viewer on the same study
    started = time.monotonic()
    browser.get(f"{portal_url}/viewer/study/{study}")
    WebDriverWait(browser, 120, poll_frequency=0.25).until(
        lambda d: d.find_element(By.ID, "view").get_attribute("data-ready") == "1")
    portal_viewer = time.monotonic() - started

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    (ARTIFACTS / "ohif-timing.json").write_text(json.dumps({
        "ohif": "3.13.2", "slices": SLICES, "size": 256,
        "first_image_s": round(first_image, 2), "first_image_warm_s": round(warm, 2),
        "portal_viewer_first_image_s": round(portal_viewer, 2),
        "ohif_page": phases,
        "loadavg": [round(x, 2) for x in load]}, indent=2))
    print(f"OHIF time to first image: {first_image:.2f} s (again: {warm:.2f} s; the portal's "
          f"own viewer: {portal_viewer:.2f} s); "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _every_request_was_audited_with_the_token(user: str, study: str) -> None:
    """OHIF's QIDO, metadata, frames and thumbnails are in the audit trail under the teacher,
    authenticated by the viewer token; frames went out as stored (not decoded)."""
    from pacs_hdfs import audit
    from pacs_hdfs.settings import get_settings
    events = [e for e in audit.query(get_settings(), user=user, limit=2000)
              if e.target == study]
    by_token = [e for e in events if e.details.get("auth") == "viewer-token"]
    assert {e.action for e in by_token} >= {"qido", "wado"}
    what = {e.details.get("what") for e in by_token if e.action == "wado"}
    assert {"metadata", "frames", "thumbnail"} <= what, what
    frames = [e for e in by_token if e.details.get("what") == "frames"]
    assert frames and not any(e.details.get("decoded") for e in frames)
    assert any(e.action == "view-study" and e.details.get("via") == "viewer-launch"
               for e in events)
