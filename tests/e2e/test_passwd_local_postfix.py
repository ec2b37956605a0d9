"""Local Unix accounts end to end: the lines `owlery postfix` prints for directory_backend =
"passwd", loaded into a real Postfix, whose local(8) runs `owlery-lda` as each account.

A real account (useradd, home in the test's directory, userdel afterwards) receives mail sent to
its name, to a +detail, through an aliases(5) alias and in a second domain; the LDA runs as the
account (local(8) EXTERNAL COMMAND DELIVERY), so the Maildir and its files are the account's;
its ~/.dovecot.sieve runs, and its vacation reply goes out through Postfix once, the reply
remembered in the account's own state file (passwd_state_sqlite_template), which is not
world-readable. Unknown names, root and system accounts are refused at RCPT by the policy
daemon's recipient check (`owlery policyd` on the same directory, through the printed
smtpd_recipient_restrictions) and Postfix's local_recipient_maps, never accepted and bounced.
Needs root (useradd, Postfix's local(8)), as the suite runs in CI.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from owlery.app import postfix
from tests.delivery.daemon import remove_workdir, shared_workdir
from tests.harness.accounts import temporary_account
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")
SCRIPT = ('require ["fileinto", "vacation", "envelope", "subaddress"];\n'
          'if header :contains "subject" "work" { fileinto "Work"; stop; }\n'
          'if envelope :detail "to" "lists" { fileinto "Lists"; stop; }\n'
          'if header :contains "subject" "holiday" { vacation :days 1 :subject "Away" "Back soon."; }\n')
LOCAL_LINES = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions", "mydestination",
               "local_recipient_maps", "alias_maps", "alias_database", "recipient_delimiter", "mailbox_command")


@pytest.fixture(scope="module")
def stack(postfix_factory):
    if os.geteuid() != 0:
        pytest.fail("local(8) delivery to a real account needs root (useradd, Postfix's local(8))")
    work = shared_workdir("owlery-passwd-local8-")
    os.chmod(work, 0o755)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(remove_workdir, work)
        account = cleanup.enter_context(temporary_account(work / "home", "owlp"))
        name, home = account.pw_name, Path(account.pw_dir)
        home.mkdir(parents=True)
        os.chmod(work / "home", 0o755)
        (home / ".dovecot.sieve").write_text(SCRIPT)
        for p in (home, home / ".dovecot.sieve"):
            os.chown(p, account.pw_uid, account.pw_gid)
        home.chmod(0o700)
        aliases = work / "aliases"
        aliases.write_text(f"postmaster: {name}\nteam: {name}\n")
        # the policy daemon's recipient check on the same directory, as the printed lines call it
        daemons = OwleryDaemons(work / "owlery", which=("policyd",), extra_config=(
            'directory_backend = "passwd"\npasswd_domains = ["local.test", "other.test"]\n'
            f'passwd_aliases = "{aliases}"\nlda_lmtp_handoff = false\nlda_log_path = "{work}/lda.log"\n'
            'policyd_checks = { RCPT = ["recipient"] }\n'))
        conf = daemons.config_path
        os.chmod(work / "owlery", 0o755)
        conf.chmod(0o644)          # the LDA reads it as the account
        (work / "lda.log").touch()
        (work / "lda.log").chmod(0o666)
        cleanup.enter_context(daemons)               # started; stopped at the end
        printed = dict(postfix.main_cf(daemons.settings, ["local.test", "other.test"], command=OWLERY))
        assert "virtual_mailbox_domains" not in printed and "virtual_transport" not in printed
        main_cf = {key: printed[key] for key in LOCAL_LINES}
        # (built before smtpd starts: a process that found no .db keeps failing its lookups;
        # postalias needs a main.cf, any will do for an explicit hash: table)
        (work / "postalias").mkdir()
        (work / "postalias" / "main.cf").write_text("")
        subprocess.run(["postalias", "-c", str(work / "postalias"), f"hash:{aliases}"], check=True, timeout=30)
        pf = postfix_factory(name="passwd-local8", main_cf={**main_cf, "local_transport": "local"})
        cleanup.callback(pf.stop)
        # the vacation reply goes back into this Postfix (its smtpd without restrictions)
        with conf.open("a") as f:
            f.write(f'submission_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n')
        yield pf, work, account


def stored(home: Path, folder: str = "") -> list[Path]:
    base = home / "Maildir" / folder
    return [f for sub in ("new", "cur") if (base / sub).is_dir() for f in (base / sub).iterdir()]


def debug(pf, work) -> str:
    return f"--- lda ---\n{(work / 'lda.log').read_text()[-2000:]}\n--- maillog ---\n{pf.maillog()[-3000:]}"


def one_message(pf, work, home: Path, folder: str, subject: str) -> Path:
    try:
        found = wait_until(lambda: [f for f in stored(home, folder) if f"Subject: {subject}\n".encode() in f.read_bytes()],
                           30, f"{subject!r} in {folder or 'INBOX'}")
    except Exception:  # noqa: BLE001  show the stack's state, whatever went wrong
        pytest.fail(debug(pf, work))
    assert len(found) == 1
    return found[0]


def test_mail_for_an_account_lands_in_its_home_as_the_account(stack):
    pf, work, account = stack
    home = Path(account.pw_dir)
    to = f"{account.pw_name}@local.test"
    assert pf.send("ann@remote.test", [to], build_message(sender="ann@remote.test", to=to, subject="hello")).accepted
    path = one_message(pf, work, home, "", "hello")
    for p in (path, home / "Maildir"):
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (account.pw_uid, account.pw_gid), p
    data = path.read_bytes()
    assert data.startswith(b"Return-Path: <ann@remote.test>\n") and data.count(b"Delivered-To:") == 1, data[:300]
    pf.wait_for_log(rf"to=<{account.pw_name}@local\.test>.*status=sent \(delivered to command")

    to = f"{account.pw_name}@other.test"       # the second domain; the script's fileinto
    assert pf.send("ann@remote.test", [to], build_message(sender="ann@remote.test", to=to, subject="work plan")).accepted
    one_message(pf, work, home, ".Work", "work plan")

    to = f"{account.pw_name}+lists@local.test"  # envelope :detail from -a "$RECIPIENT"
    assert pf.send("ann@remote.test", [to], build_message(sender="ann@remote.test", to=to, subject="digest")).accepted
    one_message(pf, work, home, ".Lists", "digest")


def test_an_alias_reaches_the_account(stack):
    pf, work, account = stack
    home = Path(account.pw_dir)
    msg = build_message(sender="bob@remote.test", to="postmaster@local.test", subject="to the postmaster")
    assert pf.send("bob@remote.test", ["postmaster@local.test"], msg).accepted
    one_message(pf, work, home, "", "to the postmaster")


def test_vacation_replies_once_from_the_accounts_own_state(stack):
    pf, work, account = stack
    home = Path(account.pw_dir)
    to = f"{account.pw_name}@local.test"
    pf.clear_sent()
    for n in (1, 2):
        msg = build_message(sender="gus@remote.test", to=to, subject=f"holiday {n}")
        assert pf.send("gus@remote.test", [to], msg).accepted
        one_message(pf, work, home, "", f"holiday {n}")
    try:
        replies = [m for m in pf.wait_sent(1, timeout=30) if m.rcpts == ["gus@remote.test"]]
    except Exception:  # noqa: BLE001
        pytest.fail(debug(pf, work))
    assert len(replies) == 1 and replies[0]["Subject"] == "Away", debug(pf, work)
    state = home / ".owlery-state.sqlite"
    st = state.stat()
    assert st.st_uid == account.pw_uid and not st.st_mode & stat.S_IROTH, oct(st.st_mode)


@pytest.mark.parametrize("local", ["root", "nobody", "daemon", "zz-no-such-owlery", "../etc"])
def test_what_is_no_mailbox_is_refused_at_rcpt(stack, local):
    """System accounts pass Postfix's own passwd.byname table; the policy daemon's recipient
    check (the printed smtpd_recipient_restrictions) refuses them at RCPT, never a bounce later
    (backscatter) and never a system account's mailbox; names no account has are refused too."""
    pf, work, account = stack
    msg = build_message(sender="eve@remote.test", to=f"{local}@local.test", subject="who")
    result = pf.send("eve@remote.test", [f"{local}@local.test"], msg, check=False)
    code, text = result.rcpt[f"{local}@local.test"]
    assert not result.accepted and code == 550 and "5.1.1" in text, (code, text)
