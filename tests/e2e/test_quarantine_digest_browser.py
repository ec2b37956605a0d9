"""The whole quarantine path in a real browser: GTUBE held, digest mailed, its link followed, message delivered, audit shown.

Real Postfix -> `owlery milter` (inbound spam + quarantine with real spamd, outbound DKIM
signing: the stack of tests/e2e/test_quarantine_notify_e2e.py, imported) -> `owlery lmtpd`.
A GTUBE message from an outside client is quarantined for dave@deliver.test; `owlery
quarantine notify`, its quarantine_web_url pointing at this test's `owlery web`, mails the
digest through Postfix into dave's Maildir. The test takes the release link from the
digest's text/plain part and finds the same link in its HTML part; headless Chromium (the
browser of tests/e2e/test_web_browser.py) follows it: the GET shows a confirmation page and
releases nothing (the Maildir still lacks the message), the POST releases it through
Postfix's re-injection port and lmtpd into dave's Maildir. Then the admin logs in and the
audit page lists the link's release of that message. Each page is kept as a screenshot in
a temp dir the test prints.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from owlery.directory.auth import sha_crypt
from tests.e2e.quarantine_stack import GTUBE, SENDER, owlery
from tests.e2e.test_quarantine_notify_e2e import RCPT, WEB, stack  # noqa: F401  (the mail stack fixture)
from tests.e2e.test_web_browser import USERS, browser, click_through, login, maildir_new  # noqa: F401  (browser: a fixture)
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until
from tests.web.server import WebServer

from selenium.webdriver.common.by import By  # noqa: E402,I001  (test_web_browser skips without selenium)

SCREENS = Path(tempfile.mkdtemp(prefix="owlery-digest-screens-"))
SUBJECT = "cheap watches, the digest path"


def shot(driver, name):
    driver.save_screenshot(str(SCREENS / f"{name}.png"))


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href"]


def hrefs(html_text):
    parser = _Links()
    parser.feed(html_text)
    return parser.hrefs


def held_copies(work):
    """Files in dave's Maildir that are the quarantined message itself (the digest is not)."""
    return [p for p in maildir_new(work, "dave") if GTUBE.encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def site(stack, harness_dirs):  # noqa: F811
    """(postfix, lmtpd's work dir, `owlery web`, the notify config naming that web's URL)."""
    pf, work, cli_config, key_file, _ = stack
    generated = owlery(cli_config, "quarantine", "token-key", "--generate")
    assert generated.returncode == 0, generated.stderr
    workdir = harness_dirs("qdigest-web")
    passwd = workdir / "passwd"
    passwd.write_text("".join(f"{u}:{{SHA512-CRYPT}}{sha_crypt(p.encode(), '$6$owlerytest$')}\n"
                              for u, p in USERS.items()))
    web = WebServer(workdir, f'quarantine_directory = "{cli_config.parent / "quarantine"}"\n'
                             f'quarantine_release_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n'
                             f'quarantine_token_key_file = "{key_file}"\nfiles_passwords = "{passwd}"\n'
                             'web_admins = ["admin@deliver.test"]\n').start()
    try:
        # the notify stack's CLI settings (store, key, submission to Postfix), links to our web
        settings = cli_config.read_text()
        assert f'quarantine_web_url = "{WEB}"' in settings
        notify_config = workdir / "notify.toml"
        notify_config.write_text(settings.replace(f'quarantine_web_url = "{WEB}"',
                                                  f'quarantine_web_url = "{web.url}"'))
        yield pf, work, web, notify_config
    finally:
        web.stop()


def test_digest_link_releases_into_the_maildir_and_the_admin_sees_the_audit(site, browser):  # noqa: F811
    pf, work, web, config = site
    msg = build_message(sender=SENDER, to=RCPT, subject=SUBJECT, body=GTUBE + "\n")
    result = pf.send(SENDER, [RCPT], msg, xclient={"ADDR": "192.0.2.7", "NAME": "mx.sender.test"})
    assert result.data[0] == 250
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
    listed = owlery(config, "quarantine", "list", "--recipient", RCPT, "--json")
    [mail_id] = [json.loads(line)["mail_id"] for line in listed.stdout.splitlines()]

    sent = owlery(config, "quarantine", "notify")
    assert sent.returncode == 0 and f"sent digest to <{RCPT}>: 1 message" in sent.stdout, sent.stderr
    wait_until(lambda: maildir_new(work, "dave"), 30, "the digest in dave's Maildir")
    [digest_file] = maildir_new(work, "dave")
    digest = email.message_from_bytes(digest_file.read_bytes(), policy=email.policy.default)
    assert digest["X-Owlery-Notice"] == "digest"
    text = digest.get_body("plain").get_content()
    html_text = digest.get_body("html").get_content()
    assert SUBJECT in text and mail_id in text
    release = re.search(re.escape(web.url) + r"/r/[A-Za-z0-9_-]+", text).group(0)
    assert release in hrefs(html_text), "the HTML part offers the same release link"

    print(f"\ndigest path screenshots in {SCREENS}")
    page = SCREENS / "digest.html"
    page.write_text(html_text, encoding="utf-8")
    browser.get(page.as_uri())
    assert SUBJECT in browser.find_element(By.TAG_NAME, "body").text
    shot(browser, "01-digest")

    browser.delete_all_cookies()
    browser.get(release)
    assert "Release this message" in browser.page_source and SUBJECT in browser.page_source
    shot(browser, "02-link-confirm")
    assert not held_copies(work), "following the link (GET) released nothing"
    click_through(browser, browser.find_element(By.XPATH, "//button[text()='Release to my mailbox']"))
    assert "on its way" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "03-link-released")
    wait_until(lambda: held_copies(work), 30, "the released message in dave's Maildir")
    [released] = held_copies(work)
    delivered = email.message_from_bytes(released.read_bytes(), policy=email.policy.default)
    assert delivered["Subject"] == SUBJECT
    assert f"by link:{RCPT} " in delivered["X-Quarantine-Released"] and f"id={mail_id}" in \
        delivered["X-Quarantine-Released"]
    # lmtpd's delivery fields: the original envelope survived the re-injection
    assert (delivered["Return-Path"], delivered["Delivered-To"]) == (f"<{SENDER}>", RCPT)

    login(browser, web, "admin@deliver.test")
    assert mail_id in browser.page_source
    shot(browser, "04-admin-list")
    click_through(browser, browser.find_element(By.LINK_TEXT, "Audit log"))
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
    assert any(f"link:{RCPT} release {mail_id} to={RCPT}" in r for r in rows), rows
    shot(browser, "05-audit")
    assert sorted(p.name for p in SCREENS.glob("*.png")) == [
        "01-digest.png", "02-link-confirm.png", "03-link-released.png", "04-admin-list.png", "05-audit.png"]
