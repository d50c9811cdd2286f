"""A teacher on demo data (issue 18 item 4): the first three search results each open an
examination with an image, in headless Chromium.

The data is made by the demo's own code (tests/demo_support.py), in a scratch namespace of
this test (its own HDFS root, HBase prefix and $PACS_HOME, so the search shows only these
cases): `pacs has generate` + `pacs has sync` to a real gateway, then
`pacs_cli.demo.send_demo_examinations` sends a small synthetic series for every imaging exam
by C-STORE to a real `pacs edge` (sharing the HAS's vault), which de-identifies and forwards
over STOW-RS. Smaller than `make demo` (fewer patients), same code path. For each of the first three cases every "Show examination" link
must lead to a study (303, never the "has not arrived" 404), and the first one, clicked, must
draw a non-black image. Screenshots: test-artifacts/e2e/demo-*.png.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.integration.dicom_support import DCMTK
from tests.portal_support import (CANVAS_PIXELS, have_chromium, make_user, portal_process,
                                  screenshot)

pytestmark = pytest.mark.cluster

SEED, PATIENTS, VISITS = 5150, 10, 30

if not have_chromium():
    pytest.skip("needs Debian packages chromium and chromium-driver", allow_module_level=True)
pytest.importorskip("selenium.webdriver", reason="needs the selenium package")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def demo(cluster, tmp_path_factory):
    """The demo's data in a scratch namespace; yields (settings, portal url, teacher)."""
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk): the edge helper "
                    "checks the edge with echoscu")
    from pacs_cli.demo import demo_examinations
    from tests.demo_support import load_demo
    from tests.namespace_support import scratch_namespace_env
    work = tmp_path_factory.mktemp("demo-exams")
    with scratch_namespace_env("demo", work / "mdc-home") as (s, _env):
        t0 = time.monotonic()
        studies, images = load_demo(work, s, patients=PATIENTS, visits=VISITS, seed=SEED)
        print(f"\ndemo data: HIS export synced, {studies} studies, {images} images sent and "
              f"forwarded in {time.monotonic() - t0:.1f} s")
        assert studies == len(demo_examinations(work / "his-export.jsonl")) and studies >= 10
        with portal_process() as portal:
            yield s, portal.url, make_user(s, "teacher", "e2e-demo")


@pytest.fixture(scope="module")
def browser():
    from tests.portal_support import chromium
    with chromium() as driver:
        yield driver


def _pixels(driver) -> tuple:
    return tuple(driver.execute_script(CANVAS_PIXELS))


def test_first_three_results_each_open_an_examination_with_an_image(browser, demo):
    _settings, url, (name, pw) = demo
    wait = WebDriverWait(browser, 60)
    browser.get(url + "/search")
    wait.until(EC.presence_of_element_located((By.ID, "username"))).send_keys(name)
    browser.find_element(By.ID, "password").send_keys(pw, Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.ID, "icd10")))
    search = url + "/search?date_from=2000-01-01"          # every demo case, latest first
    deadline = time.monotonic() + 90                       # the case index tails HBase
    while True:
        browser.get(search)
        wait.until(EC.presence_of_element_located((By.ID, "result-count")))
        links = browser.find_elements(By.CSS_SELECTOR, "#results a.case-link")
        if len(links) >= 3:
            break
        assert time.monotonic() < deadline, "fewer than three demo cases in the search"
        time.sleep(2)
    screenshot(browser, "demo-01-results")
    cases = [a.get_attribute("href") for a in links[:3]]
    session = requests.Session()
    for c in browser.get_cookies():
        session.cookies.set(c["name"], c["value"])
    for n, case in enumerate(cases, 1):
        browser.get(case)
        shows = browser.find_elements(By.CSS_SELECTOR, "a.show-exam")
        hrefs = [a.get_attribute("href") for a in shows]
        assert hrefs, f"search result {n} ({case}) has no examination to show"
        for href in hrefs:                                  # every exam of the case arrived
            r = session.get(href, allow_redirects=False, timeout=30)
            assert r.status_code == 303 and "/viewer/study/" in r.headers["location"], \
                f"{href}: {r.status_code} {r.text[:200]}"
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", shows[0])
        browser.execute_script("arguments[0].click()", shows[0])
        wait.until(EC.presence_of_element_located((By.ID, "view")))
        assert "/viewer/study/" in browser.current_url
        wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-ready") == "1")
        assert _pixels(browser)[1] > 0, f"search result {n}: the examination's image is black"
        screenshot(browser, f"demo-0{n + 1}-examination")
