"""ManageSieve end to end: Debian's `sieve-connect` against a real `owlery managesieve`, and mail
through real Postfix, `owlery milter` with a real spamd, and `owlery lmtpd`.

- GTUBE mail for a user without a script lands in SPAM through the global before-script
  (delivery_sieve_before) that files X-Spam-Flag: YES;
- a user uploads a script with sieve-connect and activates it: the next message is filed by it
  (the one before it was not);
- a user without a script gets the site's default script (delivery_sieve_default); once they
  activate their own over ManageSieve, theirs files the next message instead of the default;
- a vacation script set over ManageSieve answers a sender once, not for the second message;
- CHECKSCRIPT of a broken script is NO with the line; a wrong password is refused (and logged);
- STARTTLS works with a test certificate (sieve-connect verifies it against the test CA);
- the fourth PUTSCRIPT of a user allowed three gets NO (QUOTA/MAXSCRIPTS).
The ManageSieve server runs as `nobody` (daemon_user, the mail owner here, as vmail would be) on
passwords Dovecot's `doveadm pw` hashed; lmtpd delivers as root for maildir_owner nobody.
"""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import subprocess

import pytest

from tests.delivery.daemon import Lmtpd, remove_workdir, shared_workdir
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until
from tests.managesieve.helpers import Client, ManageSieveDaemon, make_certificate

SIEVE_CONNECT = shutil.which("sieve-connect") or "/usr/bin/sieve-connect"
PASSWORD = "correct horse"
SCHEMES = {"alice": "SHA512-CRYPT", "bob": "ARGON2ID", "carol": "BLF-CRYPT", "dora": "SHA256-CRYPT",
           "erin": "SHA512-CRYPT", "fred": "SHA512-CRYPT"}
DOMAIN = "example.org"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
OUTSIDE = {"ADDR": "192.0.2.7", "NAME": "mx.sender.test"}
MILTER_KEYS = ("smtpd_milters", "non_smtpd_milters", "milter_default_action", "milter_connect_macros",
               "milter_mail_macros")
SPAM_SCRIPT = 'require "fileinto";\nif header :is "X-Spam-Flag" "YES" { fileinto "SPAM"; }\n'
# Acts only on its own subjects, so the other users' mail (all without a script at first) is unchanged.
DEFAULT_SCRIPT = 'require "fileinto";\nif header :contains "subject" "[site]" { fileinto "Default"; }\n'


@pytest.fixture(scope="module")
def stack(postfix_factory, spamd):
    work = shared_workdir("owlery-managesieve-e2e-")
    nobody = pwd.getpwnam("nobody")
    ca, cert, key = make_certificate(work / "tls")
    os.chown(key, nobody.pw_uid, nobody.pw_gid)          # read by the server after it became nobody
    mail = work / "mail"
    mail.mkdir(mode=0o755)
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    (work / "state").mkdir()
    (work / "global").mkdir()
    (work / "global" / "spam.sieve").write_text(SPAM_SCRIPT)
    (work / "default.sieve").write_text(DEFAULT_SCRIPT)
    lines = []
    for user, scheme in SCHEMES.items():
        hashed = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", PASSWORD], capture_output=True, text=True,
                                check=True, timeout=30).stdout.strip()
        lines.append(f"{user}@{DOMAIN}:{hashed}::::\n")
    (work / "passwd").write_text("".join(lines))
    (work / "mailboxes").write_text("".join(f"{u}@{DOMAIN} {DOMAIN}/{u}/Maildir\n" for u in SCHEMES))
    common = f"""
files_passwords = "{work}/passwd"
files_mailboxes = "{work}/mailboxes"
files_maildir_base = "{mail}"
maildir_path_template = "{mail}/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{mail}/{{domain}}/{{localpart}}/sieve/active.sieve"
delivery_sieve_before = ["{work}/global"]
delivery_sieve_default = "{work}/default.sieve"
maildir_owner = "nobody"
state_sqlite_path = "{work}/state/state.sqlite"
"""
    daemons = OwleryDaemons(work / "milter", which=("milter",), extra_config=(
        'milter_inbound_stages = ["spam"]\n'
        f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\n'
        'spamd_timeout = "20s"\n'
        "spam_tag2_level = 5.0\n"
        "spam_quarantine_level = 100000.0\n")).start()
    managesieve = lmtpd = pf = None
    try:
        wiring = {k: v for k, v in daemons.main_cf([DOMAIN]).items() if k in MILTER_KEYS}
        pf = postfix_factory(main_cf=wiring, name="managesieve-postfix")
        lmtpd = Lmtpd(work, common + f'submission_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n').start()
        pf.configure(transports={DOMAIN: f"lmtp:inet:127.0.0.1:{lmtpd.port}"})
        managesieve = ManageSieveDaemon(work, common + f"""
daemon_user = "nobody"
managesieve_tls_cert_file = "{cert}"
managesieve_tls_key_file = "{key}"
managesieve_login_failure_delay = 0.5
managesieve_max_scripts = 3
""").start()
        yield {"work": work, "pf": pf, "lmtpd": lmtpd, "ms": managesieve, "ca": ca}
    finally:
        for server in (managesieve, lmtpd, pf):
            if server is not None:
                server.stop()
        daemons.stop()
        remove_workdir(work)


def sieve_connect(stack, user: str, *args: str, password: str = PASSWORD, tls: bool = False):
    """Run sieve-connect for user@example.org; the password goes through a pipe (--passwordfd)."""
    r, w = os.pipe()
    os.write(w, password.encode() + b"\n")
    os.close(w)
    argv = [SIEVE_CONNECT, "-s", "127.0.0.1", "-p", str(stack["ms"].port), "-u", f"{user}@{DOMAIN}",
            "--passwordfd", str(r)]
    # sieve-connect always takes STARTTLS when offered (verifying against the test CA);
    # tls=True also forbids going on without it.
    argv += ["--tlscafile", str(stack["ca"]), "--tlshostname", "localhost"]
    argv += ["--noclearchan"] if tls else ["--clearchan"]
    try:
        return subprocess.run(argv + list(args), pass_fds=(r,), capture_output=True, text=True, timeout=60,
                              cwd=stack["work"])
    finally:
        os.close(r)


def upload(stack, user: str, name: str, script: str, activate: bool = True):
    path = stack["work"] / f"{user}-{name}.sieve"
    path.write_text(script)
    out = sieve_connect(stack, user, "--localsieve", str(path), "--remotesieve", name, "--upload")
    assert out.returncode == 0, out.stdout + out.stderr
    if activate:
        out = sieve_connect(stack, user, "--remotesieve", name, "--activate")
        assert out.returncode == 0, out.stdout + out.stderr


def folder(stack, user: str, name: str = "") -> list:
    base = stack["work"] / "mail" / DOMAIN / user / "Maildir" / (f".{name}" if name else "")
    return [p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir()]


def send(stack, user: str, subject: str, body: str = "Hello.\n", sender: str = "friend@remote.test"):
    msg = build_message(sender=sender, to=f"{user}@{DOMAIN}", subject=subject, body=body)
    result = stack["pf"].send(sender, [f"{user}@{DOMAIN}"], msg, xclient=OUTSIDE)
    assert result.accepted, result


def debug(stack) -> str:
    return (f"--- managesieve ---\n{stack['ms'].log()[-2000:]}\n--- lmtpd ---\n{stack['lmtpd'].log()[-3000:]}\n"
            f"--- maillog ---\n{stack['pf'].maillog()[-3000:]}")


def test_gtube_lands_in_spam_through_the_global_before_script(stack):
    send(stack, "dora", "cheap pills", body=f"{GTUBE}\n")
    send(stack, "dora", "lunch?")
    wait_until(lambda: len(folder(stack, "dora", "SPAM")) == 1 and len(folder(stack, "dora")) == 1, 60,
               "GTUBE in SPAM, the other in INBOX\n" + debug(stack))
    spam = folder(stack, "dora", "SPAM")[0].read_bytes()
    assert b"X-Spam-Flag: YES" in spam and b"cheap pills" in spam


def test_uploaded_script_files_the_next_message(stack):
    send(stack, "alice", "owl sighting 1")
    wait_until(lambda: len(folder(stack, "alice")) == 1, 30, "first owl in INBOX\n" + debug(stack))
    upload(stack, "alice", "owls", 'require "fileinto";\nif header :contains "subject" "owl" { fileinto "Owls"; }\n')
    listing = sieve_connect(stack, "alice", "--list")
    assert listing.returncode == 0 and '"owls" ACTIVE' in listing.stdout + listing.stderr, listing
    link = stack["work"] / "mail" / DOMAIN / "alice" / "sieve" / "active.sieve"
    assert os.readlink(link) == "owls.sieve"
    assert os.lstat(link).st_uid == pwd.getpwnam("nobody").pw_uid
    send(stack, "alice", "owl sighting 2")
    wait_until(lambda: len(folder(stack, "alice", "Owls")) == 1, 30, "second owl filed\n" + debug(stack))
    assert len(folder(stack, "alice")) == 1
    assert b"owl sighting 2" in folder(stack, "alice", "Owls")[0].read_bytes()
    # The global before-script still runs first: spam is not filed by the user's script.
    send(stack, "alice", "owl pills", body=f"{GTUBE}\n")
    wait_until(lambda: len(folder(stack, "alice", "SPAM")) == 1, 60, "GTUBE to SPAM\n" + debug(stack))
    # Download gives back what was uploaded.
    out = sieve_connect(stack, "alice", "--remotesieve", "owls", "--download", "--localsieve",
                        str(stack["work"] / "owls-back.sieve"))
    assert out.returncode == 0 and "fileinto \"Owls\"" in (stack["work"] / "owls-back.sieve").read_text()


def test_default_script_until_the_user_activates_one(stack):
    send(stack, "fred", "[site] owl 1")
    wait_until(lambda: len(folder(stack, "fred", "Default")) == 1, 30, "filed by the default\n" + debug(stack))
    assert folder(stack, "fred") == []
    upload(stack, "fred", "mine", 'require "fileinto";\nif header :contains "subject" "owl" { fileinto "Mine"; }\n')
    send(stack, "fred", "[site] owl 2")
    wait_until(lambda: len(folder(stack, "fred", "Mine")) == 1, 30, "filed by the user's script\n" + debug(stack))
    assert b"owl 2" in folder(stack, "fred", "Mine")[0].read_bytes()
    # Theirs replaces the default (not both): the second message is not in Default, nor a copy in INBOX.
    assert len(folder(stack, "fred", "Default")) == 1 and folder(stack, "fred") == []


def test_vacation_set_over_managesieve_answers_once(stack):
    upload(stack, "carol", "away", 'require "vacation";\nvacation :days 1 :subject "Away" "I am away until Monday.";\n')
    pf = stack["pf"]
    pf.clear_sent()
    send(stack, "carol", "are you there?", sender="pal@remote.test")
    replies = pf.wait_sent(1, timeout=60)
    assert replies[0].rcpts == ["pal@remote.test"] and replies[0].message["Subject"] == "Away"
    send(stack, "carol", "still there?", sender="pal@remote.test")
    wait_until(lambda: len(folder(stack, "carol")) == 2, 30, "both messages in INBOX\n" + debug(stack))
    pf.wait_queue_empty(timeout=30)
    assert len([m for m in pf.sent_messages() if "pal@remote.test" in m.rcpts]) == 1


def test_checkscript_error_is_no_with_the_line(stack):
    path = stack["work"] / "broken.sieve"
    path.write_text('require "fileinto";\nif header :contains "subject" "x" {\n  fileint "X";\n}\n')
    out = sieve_connect(stack, "alice", "--localsieve", str(path), "--checkscript")
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "script:3:3: error: unknown command 'fileint'" in text, text


def test_wrong_password_is_refused(stack):
    out = sieve_connect(stack, "erin", "--list", password="wrong horse")
    assert out.returncode != 0 and "Authentication failed" in out.stdout + out.stderr
    stack["ms"].wait_log("login failed: user=<erin@example.org> method=PLAIN rip=127.0.0.1")
    assert "wrong horse" not in stack["ms"].log()


def test_starttls_with_a_test_certificate(stack):
    out = sieve_connect(stack, "erin", "--list", tls=True)
    assert out.returncode == 0, out.stdout + out.stderr
    stack["ms"].wait_log("login: user=<erin@example.org> method=PLAIN rip=127.0.0.1 TLS")
    # Our own client: the certificate verifies for 127.0.0.1 too, and login works inside TLS only.
    c = Client("127.0.0.1", stack["ms"].port)
    assert "STARTTLS" in c.capabilities
    caps = c.starttls(str(stack["ca"]), hostname="127.0.0.1")
    assert caps.ok and "STARTTLS" not in c.capabilities
    assert c.login(f"erin@{DOMAIN}", PASSWORD).ok
    c.close()


def test_fourth_script_is_over_quota(stack):
    c = Client("127.0.0.1", stack["ms"].port)
    assert c.login(f"bob@{DOMAIN}", PASSWORD).ok
    for name in ("one", "two", "three"):
        assert c.putscript(name, "keep;\r\n").ok
    r = c.putscript("four", "keep;\r\n")
    assert (r.kind, r.code) == ("NO", "QUOTA/MAXSCRIPTS"), r
    assert c.putscript("three", "discard;\r\n").ok            # replacing one is fine
    c.close()
    path = stack["work"] / "five.sieve"
    path.write_text("keep;\n")
    out = sieve_connect(stack, "bob", "--localsieve", str(path), "--remotesieve", "five", "--upload")
    assert out.returncode != 0 and "QUOTA/MAXSCRIPTS" in out.stdout + out.stderr


def test_protocol_edge_cases_over_a_socket(stack):
    c = Client("127.0.0.1", stack["ms"].port)
    # Synchronizing literal {n}: the octets follow at once (no continuation in ManageSieve).
    r = c.command('AUTHENTICATE "PLAIN"', b"{%d}\r\n" % len(plain_b64(f"bob@{DOMAIN}", PASSWORD))
                  + plain_b64(f"bob@{DOMAIN}", PASSWORD))
    assert r.ok, r
    # Pipelined commands come back in order.
    c.send(b'NOOP "a"\r\nGETSCRIPT "one"\r\nNOOP "b"\r\n')
    first, second, third = c.read_response(), c.read_response(), c.read_response()
    assert (first.code, second.lines[0][0], third.code) == ('TAG "a"', b"keep;\r\n", 'TAG "b"')
    assert c.command("UNAUTHENTICATE").ok
    assert c.command("LISTSCRIPTS").kind == "NO"
    c.close()


def plain_b64(user: str, password: str) -> bytes:
    import base64
    return base64.b64encode(f"\0{user}\0{password}".encode())


def test_lmtp_direct_delivery_sees_activation_at_once(stack):
    """No reload or cache between ManageSieve and delivery: switching scripts takes effect on the next message."""
    upload(stack, "erin", "a", 'require "fileinto";\nfileinto "A";\n')
    upload(stack, "erin", "b", 'require "fileinto";\nfileinto "B";\n')
    for expected in ("B", "A", "B"):
        lmtp = smtplib.LMTP("127.0.0.1", stack["lmtpd"].port, timeout=30)
        lmtp.sendmail("x@remote.test", [f"erin@{DOMAIN}"], build_message(sender="x@remote.test", to=f"erin@{DOMAIN}",
                                                                           subject=f"to {expected}"))
        lmtp.quit()
        assert any(b"to " + expected.encode() in p.read_bytes() for p in folder(stack, "erin", expected))
        other = "A" if expected == "B" else "B"
        out = sieve_connect(stack, "erin", "--remotesieve", other.lower(), "--activate")
        assert out.returncode == 0, out.stdout + out.stderr
