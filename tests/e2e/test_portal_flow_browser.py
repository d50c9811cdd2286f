"""The whole portal flow in headless Chromium on demo-like data, against the real cluster.

Data arrives through the real front doors: `pacs has generate` + `pacs has sync` to a real
`pacs gateway` (HL7 v3 over mutual TLS), and a synthetic CT study of one of the export's patients
(its CT exam's accession) by C-STORE to a real `pacs scp` sharing the hospital vault, exactly as
`pacs demo` does. A teacher then signs in with the keyboard, searches by ICD-10, opens the case,
walks its visit tabs, opens the examination and changes window/level; an analyst launches an
ICD-10 analysis and sees its chart. Screenshots: test-artifacts/e2e/flow-*.png.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from urllib.parse import unquote

import pytest
import requests

from tests.e2e.flow_support import expected_case, job_runner_cleanup
from tests.portal_support import (CANVAS_PIXELS, free_port, have_chromium, make_user,
                                  portal_process, screenshot)
from tests.integration.dicom_support import DCMTK, scp_process, wait_forwarded

pytestmark = pytest.mark.cluster

SEED, PATIENTS, VISITS = 8703, 20, 60      # a seed of this test's own: its own patients
SLICES, SIZE = 8, 128

if not have_chromium():
    pytest.skip("needs Debian packages chromium and chromium-driver", allow_module_level=True)
pytest.importorskip("selenium.webdriver", reason="needs the selenium package")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def case(cluster, settings, tmp_path_factory):
    """Load the export through gateway and SCP; yields the ExpectedCase of the CT patient."""
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk): the SCP test helper "
                    "checks the SCP with echoscu")
    from hl7_gateway.hospital.has_keys import has_keys, open_vault
    from hl7_gateway.hospital.his_export import read_export
    from hl7_gateway.hospital.link_table import LinkTable
    from pacs_cli.demo import demo_study_choices, send_demo_studies

    from tests.demo_support import sync_his_export

    work = tmp_path_factory.mktemp("flow")
    home, export = sync_his_export(work, patients=PATIENTS, visits=VISITS, seed=SEED)

    [(person, accession, _)] = demo_study_choices(export, 1)
    expected = expected_case(list(read_export(export)), has_keys(open_vault(home)),
                             person["national_id"], accession)
    with LinkTable(home / "hospital" / "links.sqlite") as links:     # what the HAS sent
        link = links.by_encrypted_id(expected.visit_id)
    assert link is not None and link.state == "acked" and link.pseudonym == expected.pseudonym
    assert expected.visits >= 2, "the patient needs several visits for the tabs"

    # the edge shares the HAS's hospital vault, so the study gets the same pseudonyms
    (work / "path").mkdir()
    with scp_process(work / "path", free_port(), free_port(), edge_home=home) as scp:
        sent = send_demo_studies(export, settings, 1, SLICES, size=SIZE, port=scp.port,
                                 ae_title="PACS")
        assert sent == SLICES
        wait_forwarded()
        yield expected


@pytest.fixture(scope="module")
def users(cluster, settings):
    return {role: make_user(settings, role, "e2e-flow") for role in ("teacher", "analyst")}


@pytest.fixture(scope="module")
def portal_url(cluster, settings):
    with job_runner_cleanup(settings), portal_process() as portal:
        yield portal.url


def _shot(driver, name: str) -> None:
    screenshot(driver, f"flow-{name}")


def _active(driver):
    return driver.switch_to.active_element


def _pixels(driver) -> tuple:
    return tuple(driver.execute_script(CANVAS_PIXELS))


def _changed(driver, before, timeout=15) -> tuple:
    WebDriverWait(driver, timeout).until(lambda d: _pixels(d) != before)
    return _pixels(driver)


def _set_date(driver, element_id: str, day: str) -> None:
    """Date inputs take keystrokes in the browser locale's order; set the ISO value instead."""
    driver.execute_script("document.getElementById(arguments[0]).value = arguments[1]",
                          element_id, day)


def _keyboard_login(driver, wait, name: str, pw: str) -> None:
    """On the login page: the user name field has focus, Tab reaches the password, Enter."""
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    assert _active(driver).get_attribute("id") == "username"
    _active(driver).send_keys(name)
    _active(driver).send_keys(Keys.TAB)
    assert _active(driver).get_attribute("id") == "password"
    _active(driver).send_keys(pw)
    _active(driver).send_keys(Keys.ENTER)


def _study_patient(driver, portal_url: str, study_uid: str) -> str:
    """The study's (pseudonymous) PatientID by QIDO-RS, with the browser's session cookie."""
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    res = requests.get(f"{portal_url}/dicomweb/studies", params={"StudyInstanceUID": study_uid},
                       cookies=cookies, timeout=30)
    assert res.status_code == 200, res.text
    [study] = res.json()
    return study["00100020"]["Value"][0]


def _check_search_form_accessible(driver) -> None:
    form = driver.find_element(By.CSS_SELECTOR, "form.search-form")
    fields = [f for f in form.find_elements(By.CSS_SELECTOR, "input, select")
              if f.is_displayed() and f.get_attribute("type") != "hidden"]
    assert len(fields) >= 9
    for f in fields:
        fid = f.get_attribute("id")
        labels = driver.find_elements(By.CSS_SELECTOR, f"label[for='{fid}']")
        assert fid and labels and labels[0].text.strip(), f"field {fid!r} has no label"
    # keyboard: Tab from the first field walks through the form to the submit button (a date
    # input takes three Tab stops in Chromium: month, day, year)
    fields[0].click()
    for _ in range(3 * len(fields)):
        if _active(driver).get_attribute("id") == "search-submit":
            break
        _active(driver).send_keys(Keys.TAB)
    assert _active(driver).get_attribute("id") == "search-submit", "Search is not reachable by Tab"


def test_teacher_searches_opens_case_and_examination(browser, portal_url, users, case, settings):
    from pacs_hdfs.audit import query
    name, pw = users["teacher"]
    wait = WebDriverWait(browser, 30)
    started = datetime.now(timezone.utc).date().isoformat()   # audit days are UTC

    browser.get(portal_url + "/search")                     # redirected to the login page
    assert "/login" in browser.current_url
    _keyboard_login(browser, wait, name, pw)
    wait.until(EC.presence_of_element_located((By.ID, "icd10")))
    assert browser.current_url.endswith("/search")
    _check_search_form_accessible(browser)
    _shot(browser, "01-search-form")

    icd10 = browser.find_element(By.ID, "icd10")
    icd10.clear()
    icd10.send_keys(case.icd10)
    _set_date(browser, "date_from", case.day)               # narrow to the exam's visit
    _set_date(browser, "date_to", case.day)
    browser.find_element(By.ID, "city").send_keys(case.city)
    browser.find_element(By.ID, "search-submit").send_keys(Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.ID, "result-count")))
    assert f"icd10={case.icd10}" in unquote(browser.current_url)
    link_css = f"#results a.case-link[href='/cases/{case.pseudonym}']"
    deadline = time.monotonic() + 60    # the case index tails HBase every 2 s
    while not browser.find_elements(By.CSS_SELECTOR, link_css):
        assert time.monotonic() < deadline, "the case never appeared in the search results"
        time.sleep(2)
        browser.refresh()
        wait.until(EC.presence_of_element_located((By.ID, "result-count")))
    row = browser.find_element(By.CSS_SELECTOR, link_css).find_element(By.XPATH, "./ancestor::tr")
    assert case.icd10 in row.text and case.city in row.text
    _shot(browser, "02-results")

    browser.find_element(By.CSS_SELECTOR, link_css).click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-tabs].tabs-ready")))
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Case {case.pseudonym}"
    tabs = browser.find_elements(By.CSS_SELECTOR, "[role='tab']")
    assert len(tabs) == case.visits
    assert tabs[0].get_attribute("aria-selected") == "true"

    def shown() -> list[str]:
        return [p.get_attribute("id") for p in browser.find_elements(
            By.CSS_SELECTOR, "[role='tabpanel']") if p.is_displayed()]

    tabs[1].click()                                          # mouse
    assert tabs[1].get_attribute("aria-selected") == "true"
    assert shown() == [tabs[1].get_attribute("aria-controls")]
    _active(browser).send_keys(Keys.ARROW_LEFT)              # keyboard: back to the first tab
    assert _active(browser) == tabs[0] and tabs[0].get_attribute("aria-selected") == "true"
    _active(browser).send_keys(Keys.END)
    assert tabs[-1].get_attribute("aria-selected") == "true"
    assert shown() == [tabs[-1].get_attribute("aria-controls")]

    exam_tab = browser.find_element(By.ID, f"tab-{case.visit_id}")
    exam_tab.click()
    assert f"visit={case.visit_id}" in unquote(browser.current_url)
    panel = browser.find_element(By.ID, f"panel-{case.visit_id}")
    assert case.icd10 in panel.text
    show = panel.find_element(By.CSS_SELECTOR,
                              f"a.show-exam[href='/viewer/accession/{case.accession}']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", show)
    _shot(browser, "03-case")

    show.click()
    wait.until(EC.presence_of_element_located((By.ID, "view")))
    assert "/viewer/study/" in browser.current_url
    study_uid = browser.current_url.rsplit("/", 1)[1]
    assert _study_patient(browser, portal_url, study_uid) == case.pseudonym
    wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-ready") == "1")
    canvas = browser.find_element(By.ID, "view")
    assert f"{SLICES} image" in browser.find_element(By.CSS_SELECTOR, ".series-button").text
    start = _pixels(browser)
    assert start[1] > 0, "the canvas is black"
    _shot(browser, "04-viewer")

    browser.find_element(By.CSS_SELECTOR, ".preset[data-preset='lung']").click()
    assert (canvas.get_attribute("data-wc"), canvas.get_attribute("data-ww")) == ("-600", "1500")
    lung = _changed(browser, start)
    _shot(browser, "05-lung")
    ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(60, -40) \
        .release().perform()                                  # drag: width up, centre down
    _changed(browser, lung)
    assert float(canvas.get_attribute("data-ww")) > 1500
    _shot(browser, "06-dragged")

    # the audit trail names what the teacher looked at
    events = query(settings, user=name, since=started)
    assert ("view-case", case.pseudonym) in {(e.action, e.target) for e in events}
    assert ("view-study", study_uid) in {(e.action, e.target) for e in events}

    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    browser.get(portal_url + "/search")
    assert "/login" in browser.current_url, "still signed in after logging out"


def test_analyst_launches_icd10_analysis_and_sees_chart(browser, portal_url, users, case):
    name, pw = users["analyst"]
    wait = WebDriverWait(browser, 30)
    browser.delete_all_cookies()
    browser.get(portal_url + "/jobs")
    _keyboard_login(browser, wait, name, pw)
    wait.until(EC.presence_of_element_located((By.ID, "job-table")))
    browser.find_element(By.LINK_TEXT, "icd10-age").click()
    wait.until(EC.presence_of_element_located((By.ID, "f-date_from")))
    for field in ("date_from", "date_to"):
        assert browser.find_element(By.CSS_SELECTOR, f"label[for='f-{field}']").text
    month = case.day[:7]                   # the month of the exam's visit: in the Parquet store
    _set_date(browser, "f-date_from", f"{month}-01")
    _set_date(browser, "f-date_to", f"{month}-28")
    _shot(browser, "07-job-form")
    browser.find_element(By.ID, "f-date_to").submit()

    wait.until(EC.presence_of_element_located((By.ID, "job-state")))
    assert "/jobs/" in browser.current_url
    WebDriverWait(browser, 240, poll_frequency=1).until(
        lambda d: d.find_element(By.ID, "job-state").text.strip() in
        ("succeeded", "failed", "cancelled"))
    assert browser.find_element(By.ID, "job-state").text.strip() == "succeeded", \
        browser.find_element(By.ID, "job-status").text
    table = wait.until(EC.presence_of_element_located((By.ID, "result-table")))
    assert table.find_elements(By.CSS_SELECTOR, "tbody tr"), "the numbers table is empty"
    chart = browser.find_element(By.CSS_SELECTOR, "img.chart")
    wait.until(lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", chart))
    _shot(browser, "08-job-result")
