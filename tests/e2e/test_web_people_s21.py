"""`owlery web` in headless Chromium with JavaScript off, at phone and desktop widths, driven by the keyboard.

A quarantine directory holds realistic held mail (tests/web/people_s21_data.py: encoded words of
several charsets, right-to-left subjects, 450-character subjects without a space, HTML-only
messages, odd attachment names, messages held for several recipients); `owlery web` serves it
(web_list_max = 8, so the list has pages) and releases to a recording SMTP sink. Debian's
chromium + chromium-driver (the browser options of tests/e2e/test_web_browser.py) with page
scripts disabled: no page needs any. Checked: no page scrolls sideways at 360 px or at
1280 px; a keyboard user reaches a visible skip link first, pages to older messages, ticks
one and releases it, and comes back to the same page; the digest's HTML part fits a phone too.
Screenshots land in a temp dir the test
prints (docs/screenshots/ holds two of them).
"""

from __future__ import annotations

import email
import email.policy
import tempfile
import time
from pathlib import Path

import pytest

from owlery.directory.auth import sha_crypt
from owlery.quarantine.digest import Item, build_digest
from owlery.quarantine.directory import DirectoryStore
from tests.e2e.test_web_browser import click_through
from tests.harness.browser import headless_chromium
from tests.harness.procs import wait_until
from tests.harness.smtp_sink import RecordingSmtpSink
from tests.web.people_s21_data import held, mail_id
from tests.web.server import WebServer, token_key_file

from selenium.webdriver.common.by import By  # noqa: E402,I001  (a test dependency: scripts/install-deps --test)
from selenium.webdriver.common.keys import Keys  # noqa: E402

USERS = {"alice@example.test": "alice-pw", "admin@example.test": "admin-pw"}
SCREENS = Path(tempfile.mkdtemp(prefix="owlery-people-screens-"))
HELD = 40


@pytest.fixture(scope="module")
def site(harness_dirs):
    work = harness_dirs("web-people")
    store = DirectoryStore(str(work / "quarantine"), timeout=5)
    for record, message in held(HELD, time.time()):
        store.put(record, message)
    store.close()
    passwd = work / "passwd"
    passwd.write_text("".join(f"{u}:{{SHA512-CRYPT}}{sha_crypt(p.encode(), '$6$owlerytest$')}\n"
                              for u, p in USERS.items()))
    sink = RecordingSmtpSink()
    web = WebServer(work, f'quarantine_directory = "{work / "quarantine"}"\n'
                          f'quarantine_release_smtp_endpoint = "{sink.endpoint}"\n'
                          f'quarantine_token_key_file = "{token_key_file(work)}"\nfiles_passwords = "{passwd}"\n'
                          'web_admins = ["admin@example.test"]\nweb_list_max = 8\n').start()
    try:
        yield web, sink
    finally:
        web.stop()
        sink.close()


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium(1280, 800, javascript=False)
    print(f"\npeople screenshots in {SCREENS}")
    yield driver
    driver.quit()


def viewport(driver, width, height):
    """A device `width` CSS pixels wide (a window cannot be made narrower than about 500)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def sideways(driver):
    """How many CSS pixels the page is wider than the screen (0: no sideways scrolling)."""
    return driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")


def login(driver, web, user):
    driver.delete_all_cookies()
    driver.get(web.url + "/login")
    driver.find_element(By.NAME, "username").send_keys(user)
    password = driver.find_element(By.NAME, "password")
    password.send_keys(USERS[user])
    driver.execute_script("window.__owleryOldPage = true;")
    password.send_keys(Keys.ENTER)
    wait_until(lambda: driver.current_url.endswith("/list")
               and driver.execute_script("return !window.__owleryOldPage && document.readyState === 'complete';"),
               10, f"{user} logged in")


def test_no_page_scrolls_sideways_on_a_phone_or_a_wide_screen(site, browser):
    web, _ = site
    login(browser, web, "alice@example.test")
    long_subject, hebrew = mail_id(6), mail_id(12)          # a 450-character word; right to left
    for width, height in ((360, 740), (1280, 800)):
        viewport(browser, width, height)
        for path in ("/list", f"/m/{long_subject}", f"/m/{hebrew}"):
            browser.get(web.url + path)
            assert not browser.title.startswith("Not found"), path
            assert sideways(browser) <= 0, (width, path)
        browser.get(web.url + "/list")
        browser.save_screenshot(str(SCREENS / f"list-{width}.png"))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_keyboard_alone_pages_ticks_and_releases_without_javascript(site, browser):
    web, sink = site
    login(browser, web, "alice@example.test")
    assert browser.execute_script("return document.documentElement.lang") == "en"
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to the content"
    outline = browser.execute_script("const s = getComputedStyle(arguments[0]);"
                                     "return [s.outlineStyle, parseFloat(s.outlineWidth)];", skip)
    assert outline[0] != "none" and outline[1] >= 2, outline          # focus is visible
    older = browser.find_element(By.LINK_TEXT, "Older messages")
    click_through(browser, older)                                      # (a link: Enter would do the same)
    assert browser.current_url.endswith("/list?page=2") and "page 2" in browser.title
    box = browser.find_elements(By.NAME, "id")[0]
    picked = box.get_attribute("value")
    assert box.get_attribute("aria-label").startswith("Select: ")
    box.send_keys(Keys.SPACE)
    assert box.is_selected()
    release = browser.find_element(By.XPATH, "//button[text()='Release selected']")
    browser.execute_script("window.__owleryOldPage = true;")
    release.send_keys(Keys.ENTER)
    wait_until(lambda: browser.execute_script("return !window.__owleryOldPage && document.readyState === 'complete';"),
               10, "the page after the release")
    assert browser.current_url.endswith("/list?page=2")              # back where the form was
    assert f"{picked}: released to alice@example.test" in browser.find_element(By.TAG_NAME, "main").text
    [sent] = sink.take(1)
    assert sent.rcpts == ("alice@example.test",)
    browser.save_screenshot(str(SCREENS / "released-page-2.png"))


def test_admin_searches_decoded_subjects_by_keyboard_and_reads_the_audit_on_a_phone(site, browser):
    web, _ = site
    browser.set_window_size(1100, 760)
    login(browser, web, "admin@example.test")
    assert "Messages 1\u20138, newest first." in browser.find_element(By.CSS_SELECTOR, "p.count").text
    assert browser.find_element(By.LINK_TEXT, "Older messages")
    subject = browser.find_element(By.NAME, "subject")
    subject.send_keys("Rechnung")                     # ISO-8859-1 encoded words, found decoded
    browser.execute_script("window.__owleryOldPage = true;")
    subject.send_keys(Keys.ENTER)
    wait_until(lambda: browser.execute_script("return !window.__owleryOldPage && document.readyState === 'complete';"),
               10, "the search's page")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.messages tbody tr")
    assert len(rows) == HELD // 8 and all("Rechnung Nr." in r.text for r in rows)
    browser.save_screenshot(str(SCREENS / "admin-list.png"))
    viewport(browser, 360, 740)
    browser.get(web.url + "/audit")
    assert "released" in browser.find_element(By.CSS_SELECTOR, "table.audit").text or \
        "release" in browser.find_element(By.CSS_SELECTOR, "table.audit").text
    assert sideways(browser) <= 0, browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth]")
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_digest_reads_on_a_phone(site, browser):
    web, _ = site
    now = time.time()
    items = [Item(r.mail_id, r.created, r.sender, r.header_from, r.subject, r.reason, r.detail, r.score,
                  release_url=f"{web.url}/r/{'A' * 120}", show_url=f"{web.url}/s/{'B' * 120}")
             for r, _ in held(8, now)]                  # 200-character names, 160 characters without a space
    digest = email.message_from_bytes(build_digest("alice@example.test", items, from_addr="postmaster@example.test",
                                                   now=now, domain="example.test"), policy=email.policy.default)
    page = SCREENS / "digest.html"
    page.write_text(digest.get_body("html").get_content(), encoding="utf-8")
    viewport(browser, 360, 740)
    browser.get(page.as_uri())
    assert browser.execute_script("return document.documentElement.clientWidth") == 360      # not zoomed out
    assert sideways(browser) <= 0
    browser.save_screenshot(str(SCREENS / "digest-360.png"))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
