"""Learn-on-move: a user moves mail into Junk (and back out) over real Dovecot IMAP, Dovecot's
imapsieve pipes it to `owlery spam learn --stdin --for USER`, and spamd's Bayes counts rise.

The Dovecot configuration, the two Sieve scripts and the pipe program are the files shipped
in contrib/dovecot/, read from there: only their /etc paths are pointed at this test's
directories. With spam_learn_per_user the lessons are the moving user's (the learn memory
in the state store is keyed by that user).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.harness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
USER = "alice@example.org"

CONTRIB = ROOT / "contrib" / "dovecot"


def _contrib(name: str, replacements: dict[str, str]) -> str:
    """A shipped file with its installed paths pointed elsewhere (each must be in the file)."""
    text = (CONTRIB / name).read_text()
    for old, new in replacements.items():
        assert old in text, f"contrib/dovecot/{name} no longer says {old!r}"
        text = text.replace(old, new)
    return text


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
    for script in ("report-spam.sieve", "report-ham.sieve"):
        (sieve_dir / script).write_text(_contrib(script, {}))
    cfg = work / "owlery.toml"
    # The mail user runs the pipe: its memory lives where it can write, the spamd is the harness's.
    state = work / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    cfg.write_text(f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\nstate_sqlite_path = "{state}/state.sqlite"\n'
                   'spamd_user = "debian-spamd"\nspam_learn_per_user = true\n')
    os.chmod(cfg, 0o644)
    learn = sieve_dir / "bin/owlery-learn"
    learn.write_text(_contrib("owlery-learn", {"OWLERY=/usr/local/bin/owlery\n": f"OWLERY={ROOT}/.venv/bin/owlery\n",
                                               "OWLERY_CONFIG=/etc/owlery/owlery.toml\n": f"OWLERY_CONFIG={cfg}\n"}))
    learn.chmod(0o755)
    yield work, home, sieve_dir
    subprocess.run(["rm", "-rf", str(work)], check=False)


def test_moving_into_junk_teaches_spam_and_out_of_it_teaches_ham(setup, spamd):
    from tests.harness.dovecot import DovecotInstance
    work, home, sieve_dir = setup
    spam0, ham0 = _bayes_counts(spamd)
    conf = _contrib("90-owlery-imapsieve.conf", {"/etc/dovecot/sieve/": f"{sieve_dir}/"})
    with DovecotInstance(work / "dovecot", {USER: str(home)}, extra_conf=conf) as dovecot:
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
    # The pipe named the user (imap.user) and the per-user lessons were remembered as theirs.
    with sqlite3.connect(work / "state" / "state.sqlite") as db:
        users = {key.split(":")[1] for (key,) in db.execute("SELECT key FROM kv WHERE key LIKE 'spamlearn:%'")}
    assert users == {USER}, users
