"""A quarantined GTUBE message is announced: `owlery quarantine notify` mails a digest that lands in the recipient's Maildir.

Real Postfix -> `owlery milter` (inbound: spam + quarantine with real spamd; outbound, for
loopback clients as by default: dkim_sign) -> `owlery lmtpd`. The GTUBE message comes from
an outside client (XCLIENT 192.0.2.7) and is quarantined for dave@deliver.test. The notify
run sends the digest to Postfix's main port from 127.0.0.1, the way vacation replies leave
(submission_smtp_endpoint), so the milter treats it as outbound: it arrives DKIM-signed for
deliver.test and without spam headers; its release and show links carry tokens that
verify, with the key file `owlery quarantine token-key --generate` wrote, for that
message and for dave only. A second run sends nothing.
"""

from __future__ import annotations

import email
import email.policy
import re
import time

import dkim
import pytest

from milters import dkimkeys
from owlery.quarantine.tokenkey import read_key
from owlery.quarantine.tokens import BadToken, verify
from tests.delivery.daemon import maildir_lmtpd
from tests.e2e.quarantine_stack import GTUBE, SENDER, milter_postfix, owlery, quarantined
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until

RCPT = "dave@deliver.test"
WEB = "https://mail.deliver.test/quarantine"


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, spamd):
    workdir = harness_dirs("qnotify-owlery")
    keys = workdir / "dkim"
    keys.mkdir()
    key_path, _ = dkimkeys.generate("deliver.test", "q1", str(keys), algorithm="rsa")
    txt = dkimkeys.public_txt(dkimkeys.load_key(key_path, "deliver.test", "q1").key)
    with maildir_lmtpd("owlery-qnotify-") as (work, lmtpd), \
            milter_postfix(postfix_factory, workdir, "qnotify-postfix", (
                'milter_inbound_stages = ["spam", "quarantine"]\nmilter_outbound_stages = ["dkim_sign"]\n'
                f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\nspamd_timeout = "20s"\n'
                'spam_quarantine_level = 6.9\n'
                f'dkim_key_directory = "{keys}"\ndkim_sign_keys = {{ "deliver.test" = ["q1"] }}\n'),
                transports={"deliver.test": f"lmtp:inet:127.0.0.1:{lmtpd.port}"}) as (pf, _):
        cli_config = workdir / "cli.toml"
        cli_config.write_text(f'quarantine_directory = "{workdir / "quarantine"}"\n'
                              f'quarantine_web_url = "{WEB}"\n'
                              f'quarantine_token_key_file = "{workdir / "token.key"}"\n'
                              f'submission_smtp_endpoint = "tcp:127.0.0.1:{pf.port}"\n')
        yield pf, work, cli_config, workdir / "token.key", txt


def test_the_digest_of_a_quarantined_gtube_message_reaches_the_recipient(stack):
    pf, work, cli_config, key_file, txt = stack
    generated = owlery(cli_config, "quarantine", "token-key", "--generate")
    assert generated.returncode == 0, generated.stderr
    msg = build_message(sender=SENDER, to=RCPT, subject="=?utf-8?q?cheap_w=C3=A4tches?=", body=GTUBE + "\n")
    result = pf.send(SENDER, [RCPT], msg, xclient={"ADDR": "192.0.2.7", "NAME": "mx.sender.test"})
    assert result.data[0] == 250
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
    [rec] = quarantined(cli_config, "--recipient", RCPT)

    dry = owlery(cli_config, "quarantine", "notify", "--dry-run")
    assert dry.returncode == 0 and f"would send digest to <{RCPT}>: 1 message" in dry.stdout, dry.stderr
    sent = owlery(cli_config, "quarantine", "notify")
    assert sent.returncode == 0, sent.stderr
    assert f"sent digest to <{RCPT}>: 1 message" in sent.stdout

    new = work / "mail" / "deliver.test" / "dave" / "Maildir" / "new"
    wait_until(lambda: new.is_dir() and list(new.iterdir()), 30, "the digest in dave's Maildir")
    [path] = list(new.iterdir())
    raw = path.read_bytes()
    digest = email.message_from_bytes(raw, policy=email.policy.default)
    assert digest["X-Owlery-Notice"] == "digest" and digest["Auto-Submitted"] == "auto-generated"
    assert digest["From"] == "postmaster@deliver.test"
    assert not [h for h in digest.keys() if h.lower().startswith("x-spam")], "the outbound path scans nothing"
    signature = digest["DKIM-Signature"]
    assert signature and "d=deliver.test" in signature.replace(" ", "")
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: txt.encode()
                       if name in (b"q1._domainkey.deliver.test.", "q1._domainkey.deliver.test.") else None)
    text = digest.get_body("plain").get_content()
    assert "cheap wätches" in text and rec["mail_id"] in text and "Reason: spam" in text

    key = read_key(str(key_file))
    release = re.search(re.escape(WEB) + r"/r/([A-Za-z0-9_-]+)", text).group(1)
    show = re.search(re.escape(WEB) + r"/s/([A-Za-z0-9_-]+)", text).group(1)
    claims = verify(key, release, time.time(), "release")
    assert (claims.quarantine_id, claims.recipient) == (rec["mail_id"], RCPT)
    assert verify(key, show, time.time(), "show").quarantine_id == rec["mail_id"]
    with pytest.raises(BadToken):
        verify(key, show, time.time(), "release")

    again = owlery(cli_config, "quarantine", "notify")
    assert again.returncode == 0 and "sent" not in again.stdout, again.stdout
