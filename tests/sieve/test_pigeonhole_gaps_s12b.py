"""Small gaps to Pigeonhole closed in session 12b, each pinned here (and, where sieve-test can
show it, checked against Debian's sieve-test 0.5.19):

(a) sieve_max_header_size (Pigeonhole's sieve_editheader_max_header_size) has Pigeonhole's
    minimum of 1024 bytes: a smaller value is a configuration error (Pigeonhole 2.4 refuses it;
    0.5 ignored it with a warning), sieve/limits.py.
(b) vacation periods must hold min <= default <= max when a maximum is set; otherwise all three
    fall back to their defaults with a warning (Pigeonhole 0.5's rule), sieve/extensions/vacation.py.
(c) X-Sieve-Redirected-From keeps naming the mailbox owner even with sieve_user_email set
    (Pigeonhole writes sieve_user_email there): sieve_user_email is one value for every user of
    an Owlery delivery, and the loop check compares the field with the user, so writing it would
    make every user look like the one who redirected (a redirect from one local user to another
    refused as a loop). Pinned, not changed.
(d) with vacation_envelope_from = recipient (Pigeonhole's sieve_vacation_send_from_recipient),
    the reply's MAIL FROM is the user's envelope address the answered message names (final or
    original recipient, sieve_user_email), else the original/final recipient, never a script's
    :addresses alias, as Pigeonhole; before, always the mailbox owner's address
    (sieve/delivery/vacation.py reply_envelope_from, sieve/delivery/executor.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from owlery.settings import Settings, SettingsError, parse_text
from owlery.state.memory_store import MemoryStore
from sieve.api import Envelope, SieveCompileError, compile_script, run
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser
from sieve.testsuite import run_file
from tests.sieve.differential import pigeonhole
from tests.sieve.test_outgoing_parity import Recorder, header_values, msg

# --- (a) editheader's minimum header size ---------------------------------------------------


@pytest.mark.parametrize("value", [100, "512", "1023"])
def test_max_header_size_below_1024_is_refused(value):
    with pytest.raises(SettingsError, match="minimum of 1024"):
        Settings().replace(sieve_max_header_size=value)


def test_max_header_size_1024_is_the_smallest_accepted():
    s = Settings().replace(sieve_max_header_size="1k")
    assert s.sieve_max_header_size == 1024
    compile_script(('require "editheader"; addheader "X-A" "' + "v" * 1024 + '";').encode(), settings=s)
    with pytest.raises(SieveCompileError, match="too large"):
        compile_script(('require "editheader"; addheader "X-A" "' + "v" * 1025 + '";').encode(), settings=s)


def test_harness_config_below_the_minimum_fails_the_reload(tmp_path):
    f = tmp_path / "small.svtest"
    f.write_text(
        'require "vnd.dovecot.testsuite";\n'
        'test_config_set "sieve_editheader_max_header_size" "512";\n'
        'test_config_reload :extension "editheader";\n'
        'test "never" { test_fail "reload should have failed"; }\n'
    )
    rep = run_file(str(f))
    assert not rep.passed and "minimum of 1024" in (rep.case_error or "")


# --- (b) vacation periods -------------------------------------------------------------------

VAC_MSG = msg()
USER = "user@example.net"


def _vacation_period(settings: Settings, script: str = 'require "vacation"; vacation "away";') -> float:
    env = Envelope(mail_from="sender@example.org", rcpt_to=USER)
    r = run(compile_script(script.encode(), settings=settings), VAC_MSG, env, settings=settings)
    [a] = [a for a in r.actions if a.name == "vacation"]
    return a.period


def test_inconsistent_vacation_periods_fall_back_to_the_defaults(caplog):
    s = Settings().replace(
        sieve_vacation_max_period="2d", sieve_vacation_default_period="7d", sieve_vacation_min_period="3d"
    )
    with caplog.at_level(logging.WARNING, logger="owlery.sieve"):
        assert _vacation_period(s) == 7 * 86400  # was 2d (min 3d clamped to max 2d)
        assert _vacation_period(s, 'require "vacation"; vacation :days 60 "away";') == 60 * 86400
    assert "violated sieve_vacation_min_period" in caplog.text


def test_consistent_vacation_periods_are_kept():
    s = Settings().replace(
        sieve_vacation_min_period="2d", sieve_vacation_default_period="3d", sieve_vacation_max_period="10d"
    )
    assert _vacation_period(s) == 3 * 86400
    assert _vacation_period(s, 'require "vacation"; vacation :days 1 "away";') == 2 * 86400
    assert _vacation_period(s, 'require "vacation"; vacation :days 30 "away";') == 10 * 86400
    # no maximum: no rule (as Pigeonhole), a default under the minimum is raised to it
    s = Settings().replace(sieve_vacation_max_period=0, sieve_vacation_default_period="1h")
    assert _vacation_period(s) == 86400


# --- delivery helpers -------------------------------------------------------------------------


def _deliver(
    tmp_path: Path,
    script: bytes,
    message: bytes,
    settings: str,
    *,
    recipient: str,
    owner: str = USER,
    orig: str | None = None,
):
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    (d / "user.sieve").write_bytes(script)
    rec = Recorder()
    ex = DeliveryExecutor(parse_text(settings), submitter=rec, state=MemoryStore(), program="test")
    outcome = ex.deliver(
        message,
        "sender@example.org",
        recipient,
        MailUser(owner, str(d / "Maildir"), str(d / "user.sieve")),
        original_recipient=orig,
    )
    assert outcome.ok, outcome
    return rec.sent


# --- (c) X-Sieve-Redirected-From --------------------------------------------------------------


def test_redirected_from_names_the_mailbox_owner_even_with_user_email(tmp_path):
    sent = _deliver(
        tmp_path, b'redirect "other@example.com";', msg(), 'sieve_user_email = "shared@example.net"\n', recipient=USER
    )
    [(_, _, m)] = sent
    assert header_values(m, "x-sieve-redirected-from") == [USER]


def test_a_copy_redirected_by_another_local_user_is_no_loop(tmp_path):
    # alice redirected it to bob; with one sieve_user_email for both, naming it would refuse bob
    first = _deliver(
        tmp_path,
        b'redirect "bob@example.net";',
        msg(),
        'sieve_user_email = "shared@example.net"\n',
        recipient="alice@example.net",
        owner="alice@example.net",
    )
    [(_, _, copy)] = first
    again = _deliver(
        tmp_path,
        b'redirect "carol@example.com";',
        copy,
        'sieve_user_email = "shared@example.net"\n',
        recipient="bob@example.net",
        owner="bob@example.net",
    )
    assert [r for _, r, _ in again] == [["carol@example.com"]]


# --- (d) vacation envelope sender with vacation_envelope_from = recipient ---------------------

SEND_FROM_RCPT = 'vacation_envelope_from = "recipient"\nsieve_vacation_use_original_recipient = true\n'
OWNER = "owner@example.net"
FINAL = "final@example.net"
ORIG = "orig@example.net"

# (name, script, To field) -> the MAIL FROM Pigeonhole uses (-r FINAL -a ORIG)
D_CASES = [
    ("final-named", 'require "vacation"; vacation "away";', FINAL, FINAL),
    ("orig-named", 'require "vacation"; vacation "away";', ORIG, ORIG),
    ("alias-named", 'require "vacation"; vacation :addresses "alias@example.net" "away";', "alias@example.net", ORIG),
]


@pytest.mark.parametrize("name,script,to,expected", D_CASES)
def test_vacation_envelope_is_the_address_the_sender_wrote_to(tmp_path, name, script, to, expected):
    sent = _deliver(tmp_path, script.encode(), msg(To=to), SEND_FROM_RCPT, recipient=FINAL, owner=OWNER, orig=ORIG)
    [(env_from, rcpts, _)] = sent
    assert (env_from, rcpts) == (expected, ["sender@example.org"])  # was OWNER


def test_vacation_envelope_without_original_recipient_is_the_final_recipient(tmp_path):
    settings = 'vacation_envelope_from = "recipient"\n'
    sent = _deliver(
        tmp_path,
        b'require "vacation"; vacation :addresses "alias@example.net" "away";',
        msg(To="alias@example.net"),
        settings,
        recipient=FINAL,
        owner=OWNER,
        orig=ORIG,
    )
    assert sent[0][0] == FINAL


def test_vacation_envelope_stays_null_by_default(tmp_path):
    sent = _deliver(tmp_path, b'require "vacation"; vacation "away";', msg(To=FINAL), "", recipient=FINAL, owner=OWNER)
    assert sent[0][0] == ""


def test_vacation_envelope_agrees_with_sieve_test():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    root = Path(tempfile.mkdtemp(prefix="sieve-gaps-"))
    os.chmod(root, 0o755)
    try:
        ph = pigeonhole.Pigeonhole(root / "ph", ())
        conf = ph.home / "dovecot.conf"
        conf.write_text(
            conf.read_text().replace(
                "plugin {\n",
                "plugin {\n  sieve_vacation_send_from_recipient = yes\n  sieve_vacation_use_original_recipient = yes\n",
                1,
            )
        )
        ph.env = ph._config_env()
        for name, script, to, expected in D_CASES:
            ph._cleanup()
            sp = ph._write("script.sieve", script.encode())
            mp = ph._write("message.eml", msg(To=to))
            proc = subprocess.run(
                [
                    pigeonhole.SIEVE_TEST,
                    "-c",
                    str(conf),
                    "-C",
                    "-e",
                    "-f",
                    "sender@example.org",
                    "-r",
                    FINAL,
                    "-a",
                    ORIG,
                    str(sp),
                    str(mp),
                ],
                capture_output=True,
                timeout=30,
                env=ph.env,
                cwd=ph.home,
                user=ph.uid,
                group=ph.gid,
                extra_groups=[] if ph.uid is not None else None,
            )
            log = proc.stderr.decode("utf-8", "replace")
            assert f"sending message from <{expected}>:" in log, (name, log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
