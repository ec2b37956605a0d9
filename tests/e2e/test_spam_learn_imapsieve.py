"""Learn-on-move: a user moves mail into Junk (and back out) over real Dovecot IMAP, Dovecot's
imapsieve pipes it to `owlery spam learn --stdin`, and spamd's Bayes counts rise.

The Dovecot configuration is the one README "Spam learning" shows (imap_sieve plugin,
sieve_imapsieve + sieve_extprograms, two small Sieve scripts and a one-line pipe program).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.harness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
USER = "alice@example.org"

REPORT_SPAM = """require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
if environment :matches "imap.user" "*" { set "username" "${1}"; }
pipe :copy "owlery-learn" ["spam", "${username}"];
"""
REPORT_HAM = """require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
if environment :matches "imap.mailbox" "*" { set "mailbox" "${1}"; }
if string "${mailbox}" "Trash" { stop; }
if environment :matches "imap.user" "*" { set "username" "${1}"; }
pipe :copy "owlery-learn" ["ham", "${username}"];
"""
IMAPSIEVE_CONF = """
protocol imap {{
  mail_plugins = $mail_plugins imap_sieve
}}
plugin {{
  sieve_plugins = sieve_imapsieve sieve_extprograms
  imapsieve_mailbox1_name = Junk
  imapsieve_mailbox1_causes = COPY APPEND
  imapsieve_mailbox1_before = file:{d}/report-spam.sieve
  imapsieve_mailbox2_name = *
  imapsieve_mailbox2_from = Junk
  imapsieve_mailbox2_causes = COPY
  imapsieve_mailbox2_before = file:{d}/report-ham.sieve
  sieve_pipe_bin_dir = {d}/bin
  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment
}}
"""


def _bayes_counts(spamd) -> tuple[int, int]:
    out = subprocess.run(["sa-learn", "--dbpath", str(spamd.bayes_dir), "--dump", "magic"], capture_output=True,
                         text=True, check=False, user="debian-spamd", timeout=60).stdout
    counts = dict((m.group(2), int(m.group(1))) for m in re.finditer(r"^\S+\s+\S+\s+(\d+)\s+\S+\s+non-token data: (nspam|nham)$",
                                                                     out, re.M))
    return counts.get("nspam", 0), counts.get("nham", 0)


def _msg(tag: str) -> bytes:
    t = secrets.token_hex(8)
    return (f"From: offers@spam.test\r\nTo: {USER}\r\nSubject: {tag} {t}\r\nMessage-ID: <{t}@spam.test>\r\n\r\n"
            f"Amazing {tag} deal {t} click here now\r\n").encode()


def _wait(predicate, what, dovecot):
    from tests.harness.procs import HarnessError
    try:
        wait_until(predicate, 60, what, None, interval=0.2)
    except HarnessError as e:
        raise AssertionError(f"{e}\n{dovecot.log()}") from None


@pytest.fixture
def setup(spamd):
    work = Path(tempfile.mkdtemp(prefix="owlery-imapsieve-"))
    os.chmod(work, 0o755)
    nobody = pwd.getpwnam("nobody")
    home = work / "home"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    sieve_dir = work / "sieve"
    (sieve_dir / "bin").mkdir(parents=True)
    (sieve_dir / "report-spam.sieve").write_text(REPORT_SPAM)
    (sieve_dir / "report-ham.sieve").write_text(REPORT_HAM)
    cfg = work / "owlery.toml"
    # The mail user runs the pipe: its memory lives where it can write, the spamd is the harness's.
    state = work / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    cfg.write_text(f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\nstate_sqlite_path = "{state}/state.sqlite"\n'
                   'spamd_user = "debian-spamd"\n')
    os.chmod(cfg, 0o644)
    learn = sieve_dir / "bin/owlery-learn"
    learn.write_text(f'#!/bin/sh\nexec {ROOT}/.venv/bin/owlery spam learn -c {cfg} --stdin --"$1" >/dev/null\n')
    learn.chmod(0o755)
    yield work, home, sieve_dir
    subprocess.run(["rm", "-rf", str(work)], check=False)


def test_moving_into_junk_teaches_spam_and_out_of_it_teaches_ham(setup, spamd):
    from tests.harness.dovecot import DovecotInstance
    work, home, sieve_dir = setup
    spam0, ham0 = _bayes_counts(spamd)
    with DovecotInstance(work / "dovecot", {USER: str(home)},
                         extra_conf=IMAPSIEVE_CONF.format(d=sieve_dir)) as dovecot:
        for sub in ("report-spam", "report-ham"):      # precompiled: the mail user cannot write here
            subprocess.run(["sievec", "-c", str(dovecot.conf_path), str(sieve_dir / f"{sub}.sieve")],
                           check=True, capture_output=True, timeout=60)
        imap = dovecot.imap(USER)
        assert imap.create("Junk")[0] == "OK"
        for tag in ("first", "second"):
            assert imap.append("INBOX", None, None, _msg(tag))[0] == "OK"
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        assert len(uids) == 2
        for uid in uids:
            typ, got = imap.uid("MOVE", uid.decode(), "Junk")
            assert typ == "OK", got
        _wait(lambda: _bayes_counts(spamd)[0] >= spam0 + 2, "spamd learned the moved spam", dovecot)
        imap.select("Junk")
        typ, data = imap.uid("SEARCH", None, "ALL")
        typ, got = imap.uid("MOVE", data[0].split()[0].decode(), "INBOX")    # not spam after all
        assert typ == "OK", got
        # SpamAssassin relearns the message moved back: one spam fewer, one ham more. Its
        # forget and learn are two steps: wait for both counts, not only the first to move.
        _wait(lambda: _bayes_counts(spamd) == (spam0 + 1, ham0 + 1), "spamd relearned it as ham", dovecot)
        imap.logout()
    assert _bayes_counts(spamd) == (spam0 + 1, ham0 + 1), dovecot.log()
