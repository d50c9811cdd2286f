"""End to end in headless Chromium (Selenium + the Debian chromium-driver) against a real
`pacs portal` on the real cluster: sign in with the keyboard, launch a spark-selftest job from
the generated form, watch it succeed live, open the result. Screenshots: test-artifacts/e2e/."""
from __future__ import annotations


import pytest

from tests.portal_support import have_chromium, make_user, screenshot

pytestmark = pytest.mark.cluster


if not have_chromium():
    pytest.skip("needs Debian packages chromium and chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs the selenium package")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def analyst(cluster, settings):
    return make_user(settings, "analyst", "e2e")


def _shot(driver, name: str) -> None:
    screenshot(driver, name)


def _active(driver):
    return driver.switch_to.active_element


def test_login_launch_job_and_see_result(browser, portal_url, analyst):
    name, pw = analyst
    wait = WebDriverWait(browser, 30)
    browser.get(portal_url + "/jobs")                      # redirected to the login page
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    assert "/login" in browser.current_url
    # keyboard only: the user name field has focus, Tab reaches the password, Enter submits
    assert _active(browser).get_attribute("id") == "username"
    _active(browser).send_keys(name)
    _active(browser).send_keys(Keys.TAB)
    assert _active(browser).get_attribute("id") == "password"
    outline = browser.execute_script(
        "return getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "keyboard focus must be visible"
    _active(browser).send_keys(pw)
    _shot(browser, "01-login")
    _active(browser).send_keys(Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.ID, "job-table")))
    assert browser.current_url.endswith("/jobs")
    _shot(browser, "02-jobs")

    browser.find_element(By.LINK_TEXT, "spark-selftest").click()
    field = wait.until(EC.presence_of_element_located((By.ID, "f-n")))
    label = browser.find_element(By.CSS_SELECTOR, "label[for='f-n']")
    assert label.text.strip().startswith("N")
    field.clear()
    field.send_keys("-1")                                   # server-side validation first
    field.submit()
    wait.until(EC.text_to_be_present_in_element((By.ID, "e-n"), "greater than or equal to 1"))
    _shot(browser, "03-validation")
    field = browser.find_element(By.ID, "f-n")
    field.clear()
    field.send_keys("2000")
    partitions = browser.find_element(By.ID, "f-partitions")
    partitions.clear()
    partitions.send_keys("2")
    partitions.submit()

    wait.until(EC.presence_of_element_located((By.ID, "job-state")))
    assert "/jobs/" in browser.current_url
    _shot(browser, "04-job-running")
    WebDriverWait(browser, 300, poll_frequency=1).until(
        EC.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
    table = WebDriverWait(browser, 30).until(
        EC.presence_of_element_located((By.ID, "result-table")))
    assert "1999000" in table.text                          # sum(0..1999)
    assert browser.find_element(By.ID, "download-csv").get_attribute("href").endswith(
        "/result.csv")
    _shot(browser, "05-result")


def test_admin_sees_the_launch_in_the_audit_trail(browser, portal_url, analyst, settings):
    admin, pw = make_user(settings, "admin", "e2e")
    browser.delete_all_cookies()
    wait = WebDriverWait(browser, 30)
    browser.get(portal_url + "/login")
    wait.until(EC.presence_of_element_located((By.ID, "username"))).send_keys(admin)
    browser.find_element(By.ID, "password").send_keys(pw + Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.LINK_TEXT, "Audit"))).click()
    user_filter = wait.until(EC.presence_of_element_located((By.ID, "a-user")))
    user_filter.send_keys(analyst[0])
    user_filter.submit()
    wait.until(EC.url_contains("user="))
    wait.until(EC.text_to_be_present_in_element((By.ID, "audit-table"), "launch-job"))
    table = browser.find_element(By.ID, "audit-table").text
    assert "login" in table and admin not in table          # filtered to the analyst
    _shot(browser, "06-audit")
