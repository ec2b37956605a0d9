"""Walking skeleton: real Postfix asks `owlery policyd`, runs `owlery milter`, delivers to `owlery lmtpd`.

Mail goes in with smtplib; the test finds it in the Maildir the LMTP server wrote, with
the header the milter added. The Postfix lines come from owlery.app.postfix, the same
function that renders the README's *Integration with Postfix* block.
"""

import email
import email.policy

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until

DOMAIN = "skeleton.test"


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs):
    workdir = harness_dirs("skeleton-owlery")
    mail_root = workdir / "mail"
    daemons = OwleryDaemons(workdir, extra_config=(
        f'maildir_path_template = "{mail_root}/{{domain}}/{{localpart}}/Maildir"\n'
        # No directory: the LMTP server accepts every address of the domain.
        'delivery_use_directory = false\n'
        'log_level = "debug"\n'))
    daemons.start()
    try:
        main_cf = daemons.main_cf([DOMAIN])
        # Postfix's own relay_domains default in the harness lists example.test; our
        # domain is a virtual mailbox domain, delivered by virtual_transport (LMTP).
        pf = postfix_factory(main_cf=main_cf, name="skeleton-postfix")
        yield pf, daemons, mail_root
        pf.stop()        # Postfix first: it holds policy and LMTP connections open
    finally:
        daemons.stop()


def delivered(mail_root, localpart):
    new = mail_root / DOMAIN / localpart / "Maildir" / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def test_mail_flows_through_policy_milter_and_lmtp_into_maildir(stack):
    pf, daemons, mail_root = stack
    msg = build_message(sender="someone@example.net", to=f"alice@{DOMAIN}", subject="walking skeleton")
    result = pf.send("someone@example.net", [f"alice@{DOMAIN}"], msg)
    assert result.accepted == [f"alice@{DOMAIN}"], result.rcpt
    files = wait_until(lambda: delivered(mail_root, "alice"), 30, "delivery into Maildir")
    assert len(files) == 1
    raw = files[0].read_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert parsed["Subject"] == "walking skeleton"
    # The milter's header, inserted at the top of the message.
    assert parsed["Authentication-Results"] is not None, raw[:800]
    assert parsed["Return-Path"] == "<someone@example.net>"
    assert parsed["Delivered-To"] == f"alice@{DOMAIN}"
    # Postfix delivered over LMTP and the queue is empty.
    pf.wait_for_log(r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent" % daemons.ports["lmtpd"], timeout=15)
    pf.wait_queue_empty(timeout=15)
    # Every daemon logged its decision for this message (the policy daemon said DUNNO).
    daemons.wait_log("policyd", f"dunno: RCPT from localhost[127.0.0.1]: from=<someone@example.net> "
                                f"to=<alice@{DOMAIN}>")
    daemons.wait_log("milter", "accept: END-OF-MESSAGE")
    daemons.wait_log("lmtpd", f"delivered: 250 2.0.0 <alice@{DOMAIN}>")
