"""The DICOM viewer in headless Chromium (Selenium + Debian chromium-driver) against a real
`pacs portal` on the real cluster: a teacher signs in, opens a study that arrived through a
real `pacs scp`, scrolls slices, applies the lung and bone presets and drags window/level; the
canvas pixels must change each time. Screenshots: test-artifacts/e2e/viewer-*.png."""
from __future__ import annotations

import uuid

import pytest

from tests.portal_support import CANVAS_PIXELS, free_port, have_chromium, make_user, screenshot
from tests.integration.dicom_support import DCMTK, deid_uid, scp_process, store

pytestmark = pytest.mark.cluster


if not have_chromium():
    pytest.skip("needs Debian packages chromium and chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs the selenium package")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def study(cluster, tmp_path_factory):
    """A 6-slice synthetic CT (phantom whose inserts move along the series) via a real SCP."""
    if not DCMTK:
        pytest.skip("dcmtk is not installed (apt-get install -y dcmtk)")
    from pacs_hdfs.dicom.synthetic import ct_series, write_files
    import numpy as np
    d = tmp_path_factory.mktemp("viewer")
    series = ct_series(6, patient_id=f"V-{uuid.uuid4().hex[:8]}", patient_name="Viewer^Test",
                       size=128)
    for i, ds in enumerate(series):          # make slices differ so scrolling is visible
        img = np.frombuffer(ds.PixelData, np.uint16).reshape(128, 128).copy()
        img[10 + 15 * i:20 + 15 * i, 10:40] = 400 + 200 * i
        ds.PixelData = img.tobytes()
    port = free_port()
    with scp_process(d, port, free_port()) as scp:
        store(write_files(series, d / "in"), port=port)
        yield deid_uid(scp, series[0].StudyInstanceUID)


@pytest.fixture(scope="module")
def teacher(cluster, settings):
    return make_user(settings, "teacher", "e2e-view")


def _shot(driver, name: str) -> None:
    screenshot(driver, f"viewer-{name}")




def _pixels(driver):
    return tuple(driver.execute_script(CANVAS_PIXELS))


def _changed(driver, before, timeout=15):
    WebDriverWait(driver, timeout).until(lambda d: _pixels(d) != before)
    return _pixels(driver)


def test_teacher_scrolls_and_changes_window_level(browser, portal_url, teacher, study):
    name, pw = teacher
    wait = WebDriverWait(browser, 30)
    browser.get(f"{portal_url}/viewer/study/{study}")          # redirected to the login page
    wait.until(EC.presence_of_element_located((By.ID, "username"))).send_keys(name)
    pwd = browser.find_element(By.ID, "password")
    pwd.send_keys(pw)
    pwd.send_keys(Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.ID, "view")))
    assert f"/viewer/study/{study}" in browser.current_url
    wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-ready") == "1")
    canvas = browser.find_element(By.ID, "view")
    for control in ("slice", "wc", "ww"):                     # labelled controls
        assert browser.find_element(By.CSS_SELECTOR, f"label[for='{control}']").text
    series_btn = browser.find_element(By.CSS_SELECTOR, ".series-button")
    assert series_btn.get_attribute("aria-pressed") == "true" and "6 image" in series_btn.text
    start = _pixels(browser)
    assert start[1] > 0, "the canvas is black"
    _shot(browser, "01-opened")

    slice0 = canvas.get_attribute("data-slice")
    canvas.send_keys(Keys.ARROW_DOWN)                         # keyboard: next slice
    wait.until(lambda d: canvas.get_attribute("data-slice") != slice0)
    scrolled = _changed(browser, start)
    browser.execute_script(                                   # mouse wheel: one slice on
        "arguments[0].dispatchEvent(new WheelEvent('wheel', {deltaY: 120, bubbles: true,"
        " cancelable: true}))", canvas)
    scrolled = _changed(browser, scrolled)
    _shot(browser, "02-scrolled")

    browser.find_element(By.CSS_SELECTOR, ".preset[data-preset='lung']").click()
    assert canvas.get_attribute("data-wc") == "-600" and canvas.get_attribute("data-ww") == "1500"
    lung = _changed(browser, scrolled)
    _shot(browser, "03-lung")
    browser.find_element(By.CSS_SELECTOR, ".preset[data-preset='bone']").click()
    assert canvas.get_attribute("data-wc") == "300"
    bone = _changed(browser, lung)
    _shot(browser, "04-bone")

    ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(60, -40) \
        .release().perform()                                  # drag: width up, centre down
    dragged = _changed(browser, bone)
    assert float(canvas.get_attribute("data-ww")) > 1500
    assert float(canvas.get_attribute("data-wc")) < 300
    _shot(browser, "05-dragged")

    browser.find_element(By.ID, "zoom-in").click()
    zoomed = _changed(browser, dragged)
    browser.find_element(By.ID, "reset").click()
    assert _changed(browser, zoomed) != zoomed
    _shot(browser, "06-reset")
