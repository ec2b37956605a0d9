"""`owlery lda` as the MTA runs it: a process per message, options -f/-a/-d/-m, sysexits.

Every test runs both commands: `owlery lda` and `owlery-lda` (the pipe command `owlery postfix`
prints; Python without site), which must behave the same.
Includes the crash test: the LDA killed with SIGKILL at random moments during 200
deliveries never leaves a partial message in new/ or cur/, and retrying every failed
delivery (as Postfix does) gets every message delivered; for both commands in-process, and
for `owlery-lda` handing each message to a running lmtpd (killed mid-LMTP, lmtpd stores nothing
partial either).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")
COMMANDS = {"owlery lda": [OWLERY, "lda"], "owlery-lda": [OWLERY + "-lda"]}


def config(tmp_path, extra=""):
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_backend = "memory"
delivery_use_directory = false
{extra}
""")
    return str(conf)


@pytest.fixture(params=list(COMMANDS))
def lda(request):
    def run(conf, *args, message=b"Subject: t\n\nhello\n"):
        return subprocess.run([*COMMANDS[request.param], "-c", conf, *args], input=message,
                              capture_output=True, timeout=60)
    return run


def maildir_files(tmp_path, user="alice", folder=""):
    base = tmp_path / "mail/example.org" / user / "Maildir" / folder
    return [p for sub in ("new", "cur") if (base / sub).exists() for p in (base / sub).iterdir()]


def test_delivers_with_trace_headers(tmp_path, lda):
    conf = config(tmp_path)
    r = lda(conf, "-f", "bob@remote.test", "-a", "alice+x@example.org", "-d", "alice@example.org")
    assert r.returncode == 0, r.stderr
    [f] = maildir_files(tmp_path)
    assert f.read_bytes() == b"Return-Path: <bob@remote.test>\nDelivered-To: alice+x@example.org\nSubject: t\n\nhello\n"


def test_mta_trace_headers_are_not_doubled_and_crlf_is_stored_as_lf(tmp_path, lda):
    conf = config(tmp_path)
    msg = b"Delivered-To: alice@example.org\r\nReturn-Path: <b@r.test>\r\nSubject: t\r\n\r\nx\r\n"
    assert lda(conf, "-f", "b@r.test", "-d", "alice@example.org", message=msg).returncode == 0
    [f] = maildir_files(tmp_path)
    assert f.read_bytes() == msg.replace(b"\r\n", b"\n")


def test_default_mailbox_option(tmp_path, lda):
    conf = config(tmp_path)
    assert lda(conf, "-f", "", "-d", "alice@example.org", "-m", "Archive/2026").returncode == 0
    assert len(maildir_files(tmp_path, folder=".Archive.2026")) == 1


def test_unknown_user_exits_67(tmp_path, lda):
    (tmp_path / "mailboxes").write_text("alice@example.org\n")
    conf = config(tmp_path, f'files_mailboxes = "{tmp_path}/mailboxes"').replace(
        "delivery_use_directory = false", "")
    Path(conf).write_text(Path(conf).read_text().replace("delivery_use_directory = false", ""))
    r = lda(conf, "-f", "b@r.test", "-d", "zz@example.org")
    assert r.returncode == 67 and r.stderr.startswith(b"5.1.1"), r.stderr
    assert lda(conf, "-f", "b@r.test", "-d", "alice@example.org").returncode == 0


def test_over_quota_exits_77_or_75(tmp_path, lda):
    conf = config(tmp_path, "delivery_quota_size = 10")
    r = lda(conf, "-f", "b@r.test", "-d", "alice@example.org")
    assert r.returncode == 77 and r.stderr.startswith(b"5.2.2"), r.stderr
    conf = config(tmp_path, "delivery_quota_size = 10\ndelivery_quota_full_tempfail = true")
    r = lda(conf, "-f", "b@r.test", "-d", "alice@example.org")
    assert r.returncode == 75 and r.stderr.startswith(b"4.2.2"), r.stderr


def test_unwritable_mail_store_exits_75(tmp_path, lda):
    conf = config(tmp_path)
    (tmp_path / "mail").write_text("a file where a directory should be")
    r = lda(conf, "-f", "b@r.test", "-d", "alice@example.org")
    assert r.returncode == 75 and r.stderr.startswith(b"4."), r.stderr


def test_bad_config_exits_75(tmp_path, lda):
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_setting = 1\n")
    r = lda(str(bad), "-f", "b@r.test", "-d", "alice@example.org")
    assert r.returncode == 75 and b"no_such_setting" in r.stderr


def test_usage_errors_are_temporary_failures(tmp_path, lda):
    """A wrong master.cf argv keeps the mail queued (75); argparse's 2 or EX_USAGE would bounce it."""
    conf = config(tmp_path)
    for args in (["-f", "b@r.test"], ["-f", "b@r.test", "-d", "alice@example.org", "--bogus"], ["-d"]):
        r = lda(conf, *args)
        assert r.returncode == 75 and r.stderr.startswith(b"4.3.5 owlery lda:"), (args, r.stderr)
    assert not maildir_files(tmp_path)


def test_unexpected_error_is_a_temporary_failure(tmp_path, lda):
    conf = config(tmp_path, f'lda_log_path = "{tmp_path}"')       # a directory: opening it raises
    r = lda(conf, "-f", "b@r.test", "-d", "alice@example.org")
    assert r.returncode == 75 and r.stderr.startswith(b"4.3.0 owlery lda: internal error"), r.stderr
    assert not maildir_files(tmp_path)


@pytest.fixture
def lmtpd_for(tmp_path):
    """Start an `owlery lmtpd` storing where config(tmp_path) does; yields its endpoint line."""
    from tests.delivery.daemon import Lmtpd
    started = []

    def start(conf_text):
        started.append(Lmtpd(tmp_path, conf_text).start())
        return f'lda_lmtp_endpoint = "tcp:127.0.0.1:{started[-1].port}"'
    yield start
    for d in started:
        d.stop()


@pytest.mark.parametrize("command,via", [("owlery lda", None), ("owlery-lda", None), ("owlery-lda", "lmtpd")])
def test_killed_at_random_points_leaves_no_partial_message(tmp_path, command, via, lmtpd_for):
    """200 deliveries, each LDA SIGKILLed after a random delay; failures retried until delivered."""
    conf = config(tmp_path, 'maildir_fsync = "optimized"')
    if via == "lmtpd":
        endpoint = lmtpd_for(Path(conf).read_text())
        conf = config(tmp_path, 'maildir_fsync = "optimized"\n' + endpoint)
    rng = random.Random(8)
    # Big enough (~100 KB) that a kill often lands while the file is being written.
    body = b"".join(b"line %06d " % i + b"x" * 60 + b"\n" for i in range(1500))
    pending = list(range(200))
    kills = attempts = 0
    runtimes = [0.15]
    # A bound on a broken LDA, not a speed target: a loaded 2-core CI machine needs a few
    # hundred ms per in-process run (the kills adapt to the median runtime).
    deadline = time.monotonic() + 240
    while pending and time.monotonic() < deadline:
        batch, pending = pending[:4], pending[4:]
        typical = sorted(runtimes)[len(runtimes) // 2]
        procs = []
        for n in batch:
            msg = b"Subject: crash %d\nX-N: %d\n\n" % (n, n) + body
            p = subprocess.Popen([*COMMANDS[command], "-c", conf, "-f", "b@r.test", "-d", "alice@example.org"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started = time.monotonic()
            # Most kills aim at the end of a run, where the message is written and renamed.
            kill_at = started + rng.uniform(0.4, 1.0) * typical if rng.random() < 0.7 else None
            procs.append([n, p, kill_at, started])
            try:
                p.stdin.write(msg)
                p.stdin.close()
            except BrokenPipeError:
                pass
        while procs:
            now = time.monotonic()
            for entry in list(procs):
                n, p, kill_at, started = entry
                rc = p.poll()
                if rc is None and kill_at is not None and now >= kill_at:
                    p.send_signal(signal.SIGKILL)
                    kills += 1
                    rc = p.wait()
                if rc is None:
                    continue
                procs.remove(entry)
                attempts += 1
                if rc == 0 and kill_at is None:
                    runtimes.append(now - started)
                if rc != 0:
                    pending.append(n)        # what Postfix does: retry later
            time.sleep(0.002)
    assert not pending, f"undelivered after retries: {pending}"
    seen: dict[int, int] = {}
    for f in maildir_files(tmp_path):
        data = f.read_bytes()
        size = int(f.name.split(",S=")[1].split(",")[0].split(":")[0])
        assert len(data) == size, f"partial message {f.name}"
        head, _, rest = data.partition(b"\n\n")
        assert rest == body, f"damaged body in {f.name}"
        n = int(head.split(b"X-N: ")[1].split(b"\n")[0])
        seen[n] = seen.get(n, 0) + 1
    assert sorted(seen) == list(range(200))
    print(f"\n{command} {via or 'in-process'}: {attempts} LDA runs, {kills} killed, {sum(seen.values()) - 200} duplicates "
          f"(killed after the rename, before exit)")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_fileinto_specialuse_picks_the_folder_with_that_use(tmp_path, command):
    """RFC 8579: an existing folder with the special use (delivery_special_use_folders, by
    default Dovecot's names: Junk, Trash, Sent, Drafts, Archive) wins over the named one."""
    script = tmp_path / "mail/example.org/alice/sieve/active.sieve"
    script.parent.mkdir(parents=True)
    script.write_text('require ["fileinto", "special-use", "mailbox"];\n'
                      'if specialuse_exists "\\\\Junk" { fileinto "Found"; }\n'
                      'fileinto :specialuse "\\\\Junk" :create "Spam";\n')

    def deliver(conf):
        r = subprocess.run([*COMMANDS[command], "-c", conf, "-f", "b@r.test", "-d", "alice@example.org"],
                           input=b"Subject: t\n\nhello\n", capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr

    conf = config(tmp_path)
    deliver(conf)                 # no Junk folder yet: the named one, created
    assert len(maildir_files(tmp_path, folder=".Spam")) == 1
    assert not maildir_files(tmp_path, folder=".Found")
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "mail/example.org/alice/Maildir/.Junk" / sub).mkdir(parents=True)
    deliver(conf)                 # Junk exists: it has \Junk
    assert len(maildir_files(tmp_path, folder=".Junk")) == 1
    assert len(maildir_files(tmp_path, folder=".Found")) == 1
    assert len(maildir_files(tmp_path, folder=".Spam")) == 1
    # A site whose Dovecot names its junk folder otherwise.
    conf = config(tmp_path, 'delivery_special_use_folders = { Junk = ["Quarantaine", "Spam"] }')
    deliver(conf)                 # Quarantaine missing, Spam exists
    assert len(maildir_files(tmp_path, folder=".Spam")) == 2
    assert len(maildir_files(tmp_path, folder=".Junk")) == 1
    assert len(maildir_files(tmp_path, folder=".Found")) == 2
