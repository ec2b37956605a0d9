"""`owlery web` in headless Chromium: recipients and admins release through real Postfix into the Maildir.

Real Postfix -> `owlery milter` (spam + quarantine, real spamd) quarantines GTUBE messages;
`owlery web` (files_passwords logins, the same quarantine directory, releases to Postfix's
re-injection port) serves them; Selenium drives Debian's chromium + chromium-driver, one
browser for the module. A recipient logs in and releases one of hers -> Postfix -> `owlery
lmtpd` -> her Maildir; a digest link (signed with the key file) is confirmed and released; an
admin searches, releases two in bulk, deletes one and reads the audit log; forged and expired
links are refused; a POST without the CSRF token (from our page, and from another site's
page) is refused with 403. A screenshot of each page lands in a temp dir the test prints.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import pytest

from owlery.directory.auth import sha_crypt
from owlery.quarantine.tokenkey import read_key
from owlery.quarantine.tokens import sign
from tests.delivery.daemon import maildir_lmtpd
from tests.e2e.quarantine_stack import GTUBE, SENDER, milter_postfix, reinject_release, spam_milter_config
from tests.harness.browser import headless_chromium
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until
from tests.web.server import WebServer, token_key_file

from selenium.webdriver.common.by import By  # noqa: E402  (a test dependency: scripts/install-deps --test installs it)
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

USERS = {"dave@deliver.test": "dave-secret", "erin@deliver.test": "erin-secret",
         "admin@deliver.test": "admin-secret"}
SCREENS = Path(tempfile.mkdtemp(prefix="owlery-web-screens-"))


def maildir_new(work, user):
    d = work / "mail" / "deliver.test" / user / "Maildir" / "new"
    return sorted(d.iterdir()) if d.is_dir() else []


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, spamd):
    workdir = harness_dirs("web-owlery")
    with maildir_lmtpd("owlery-web-e2e-") as (work, lmtpd), \
            milter_postfix(postfix_factory, workdir, "web-postfix", spam_milter_config(spamd),
                           transports={"deliver.test": f"lmtp:inet:127.0.0.1:{lmtpd.port}"}) as (pf, _):
        passwd = workdir / "passwd"
        passwd.write_text("".join(f"{u}:{{SHA512-CRYPT}}{sha_crypt(p.encode(), '$6$owlerytest$')}\n"
                                  for u, p in USERS.items()))
        key_file = token_key_file(workdir)
        web = WebServer(workdir, f'quarantine_directory = "{workdir / "quarantine"}"\n' + reinject_release(pf)
                        + f'quarantine_token_key_file = "{key_file}"\nfiles_passwords = "{passwd}"\n'
                        'web_admins = ["admin@deliver.test"]\n')
        try:
            web.start()
            sent = {}
            for name, rcpt in (("dave-1", "dave"), ("dave-2", "dave"), ("dave-link", "dave"), ("erin-1", "erin"),
                               ("erin-2", "erin")):
                msg = build_message(sender=SENDER, to=f"{rcpt}@deliver.test", subject=f"cheap watches {name}",
                                    body=GTUBE + "\n")
                result = pf.send(SENDER, [f"{rcpt}@deliver.test"], msg)
                assert result.data[0] == 250
                sent[name] = result.queue_id
            for qid in sent.values():
                pf.wait_for_log(r"%s: milter-discard" % qid)
            yield pf, work, web, read_key(str(key_file))
        finally:
            web.stop()


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium(1100, 760)
    print(f"\nweb screenshots in {SCREENS}")
    yield driver
    driver.quit()


def shot(driver, name):
    driver.save_screenshot(str(SCREENS / f"{name}.png"))


def click_through(driver, element, timeout=15):
    """Click what submits a form or follows a link, and wait until the next page has loaded:
    reading the page right after click() may find the old page's elements (stale).

    The old page is marked in its window object, which a navigation replaces; no element of it
    is asked about (asking about one mid-navigation, Chromium answers with errors other than
    "stale element", e.g. "Node with given id does not belong to the document")."""
    driver.execute_script("window.__owleryOldPage = true;")
    element.click()
    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.__owleryOldPage && document.readyState === 'complete';"))


def login(driver, web, user):
    driver.delete_all_cookies()
    driver.get(web.url + "/login")
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(USERS[user])
    click_through(driver, driver.find_element(By.CSS_SELECTOR, "form.login button"))
    wait_until(lambda: driver.current_url.endswith("/list"), 10, f"{user} logged in")


def row_ids(driver, subject_part):
    return [row.find_element(By.NAME, "id").get_attribute("value")
            for row in driver.find_elements(By.CSS_SELECTOR, "table.messages tbody tr") if subject_part in row.text]


def test_recipient_logs_in_and_releases_one_into_her_maildir(stack, browser):
    pf, work, web, _ = stack
    browser.get(web.url + "/login")
    shot(browser, "01-login")
    login(browser, web, "dave@deliver.test")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "cheap watches dave-1" in text and "cheap watches erin-1" not in text
    shot(browser, "02-recipient-list")
    [mail_id] = row_ids(browser, "dave-1")
    click_through(browser, browser.find_element(By.LINK_TEXT, "cheap watches dave-1"))
    assert "XJS*C4JDBQADN1" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "03-message")
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Release to my mailbox']"))
    wait_until(lambda: maildir_new(work, "dave"), 30, "released message in dave's Maildir")
    [path] = maildir_new(work, "dave")
    delivered = path.read_bytes()
    assert b"Subject: cheap watches dave-1" in delivered and f"id={mail_id}".encode() in delivered
    assert b"X-Quarantine-Released: by dave@deliver.test" in delivered
    assert "released to dave@deliver.test" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "04-released")


def test_digest_link_confirms_then_releases(stack, browser):
    pf, work, web, key = stack
    browser.delete_all_cookies()
    before = len(maildir_new(work, "dave"))
    login(browser, web, "dave@deliver.test")
    [mail_id] = row_ids(browser, "dave-link")
    browser.delete_all_cookies()
    token = sign(key, "release", mail_id, "dave@deliver.test", int(time.time()) + 3600)
    browser.get(f"{web.url}/r/{token}")
    assert "Release this message" in browser.page_source and "dave-link" in browser.page_source
    shot(browser, "05-link-confirm")
    assert len(maildir_new(work, "dave")) == before                  # the GET released nothing
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Release to my mailbox']"))
    assert "on its way" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "06-link-released")
    wait_until(lambda: len(maildir_new(work, "dave")) == before + 1, 30, "link-released message in the Maildir")


def test_forged_and_expired_links_are_refused(stack, browser):
    pf, work, web, key = stack
    forged = sign(b"f" * 32, "release", "abcdefghijkmnpq", "dave@deliver.test", int(time.time()) + 3600)
    expired = sign(key, "release", "abcdefghijkmnpq", "dave@deliver.test", int(time.time()) - 10)
    browser.get(f"{web.url}/r/{forged}")
    assert "Link refused" in browser.title and "not valid" in browser.page_source
    shot(browser, "07-forged-link")
    browser.get(f"{web.url}/r/{expired}")
    assert "Link refused" in browser.title and "expired" in browser.page_source
    shot(browser, "08-expired-link")


def test_post_without_csrf_token_is_refused(stack, browser):
    pf, work, web, _ = stack
    login(browser, web, "erin@deliver.test")
    [mail_id] = row_ids(browser, "erin-1")
    # same site, token removed from the form (WebDriver scripts are not bound by our CSP)
    browser.execute_script("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    browser.find_element(By.NAME, "id").click()
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Release selected']"))
    assert browser.title.startswith("Refused")
    shot(browser, "09-csrf-refused")
    # another site's page posting to us: no token, and SameSite=Strict keeps the cookie home
    evil = SCREENS / "evil.html"
    evil.write_text(f'<form method="post" action="{web.url}/action"><input name="action" value="release">'
                    f'<input name="id" value="{mail_id}"><button id="go">win a prize</button></form>')
    browser.get(evil.as_uri())
    click_through(browser, browser.find_element(By.ID, "go"))
    wait_until(lambda: browser.current_url.startswith(web.url), 10, "cross-site post answered")
    assert browser.title.startswith("Refused")
    assert not maildir_new(work, "erin")
    assert re.search(r"web: refused: .*reason=csrf", web.log())


def test_admin_searches_bulk_releases_deletes_and_reads_the_audit(stack, browser):
    pf, work, web, _ = stack
    login(browser, web, "admin@deliver.test")
    browser.get(web.url + "/list")
    search = browser.find_element(By.NAME, "subject")
    search.send_keys("erin")
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Search']"))
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "erin-1" in text and "erin-2" in text and "dave-2" not in text
    shot(browser, "10-admin-search")
    for box in browser.find_elements(By.NAME, "id"):
        box.click()
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Release selected']"))
    wait_until(lambda: len(maildir_new(work, "erin")) == 2, 30, "two released messages in erin's Maildir")
    [dave2] = (browser.get(web.url + "/list"), row_ids(browser, "dave-2"))[1]
    browser.find_element(By.CSS_SELECTOR, f"input[name=id][value='{dave2}']").click()
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Delete selected']"))
    assert f"{dave2}: deleted" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "11-admin-deleted")
    click_through(browser, browser.find_element(By.LINK_TEXT, "Audit log"))
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
    assert any("admin@deliver.test delete " + dave2 in r for r in rows), rows
    assert sum("admin@deliver.test release" in r for r in rows) == 2, rows
    assert any("dave@deliver.test release" in r for r in rows) and any("link:dave@deliver.test" in r for r in rows)
    shot(browser, "12-audit")


def test_screenshots_were_kept():
    names = sorted(p.name for p in SCREENS.glob("*.png"))
    assert len(names) >= 12, names
    print(f"\nweb screenshots: {SCREENS}")


def teardown_module(module):
    # keep the screenshots (the artifact); only the hostile page goes
    (SCREENS / "evil.html").unlink(missing_ok=True)
