"""The deprecated imapflags (draft-melnikov-sieve-imapflags-03) and notify
(draft-martin-sieve-notify-01) extensions, against Pigeonhole 0.5.19 with both enabled.

(a) compile: each script is compiled by Owlery and by sievec; both must agree on whether it
    compiles and on the number of errors (conflicts with imap4flags and enotify, also through
    ihave; wrong arguments; :method; :options addresses; denotify's match types);
(b) run: each script runs in Owlery and in `sieve-test -e`; both must store the same messages
    with the same flags and send the same notifications (recipient, Subject, text, priority);
(c) both are off by default, as in Pigeonhole: refused by require, false for ihave, and left
    out of the capability list (`owlery sieve extensions`, ManageSieve's SIEVE capability).
Where Pigeonhole departs from the draft, Owlery follows the draft: ALLOWED gives each case and
its reason, and checks that Pigeonhole still differs (so a stale entry is noticed).
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.policy
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from owlery.settings import Settings
from sieve.actions import FileInto, Keep, Notify
from sieve.api import Envelope, MemoryHost, compile_script, extensions_available, run
from sieve.errors import SieveCompileError
from tests.sieve.differential import pigeonhole
from tests.sieve.test_compile_errors_generated import FINAL, Sievec, owlery_settings, private_sievec

_ENABLE = " +imapflags +notify"
FOLDERS = ("Junk", "Lists")
MAIL_FROM, RCPT = "alice@example.org", "bob@example.net"
MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Hello there\r\n"
       b"Message-ID: <m1@example.org>\r\nDate: Mon, 7 Dec 2026 08:00:00 +0000\r\n\r\n"
       b"Body line one\r\nline two is here\r\n")


def enabled_settings() -> Settings:
    return owlery_settings().replace(sieve_extensions_disabled=[])


def owlery_errors(src: str, settings: Settings | None = None) -> tuple[bool, list[str]]:
    try:
        compile_script(src, name="t", settings=settings or enabled_settings())
    except SieveCompileError as e:
        return False, [d.message for d in e.diagnostics if d.severity == "error" and d.message not in FINAL]
    return True, []


# --- (a) compile: Owlery and sievec agree on the verdict and the number of errors -------------

N = '"notify"'
COMPILE_CASES = [
    # imapflags
    'require "imapflags";\nsetflag "\\\\Seen";\naddflag ["a", "b c"];\nremoveflag "a";\nmark;\nunmark;\nkeep;',
    'require ["imapflags", "fileinto"];\nmark;\nfileinto "Junk";',
    'require "imapflags";\nsetflag "x" "y";',                   # no variable name argument
    'require ["imapflags", "variables"];\nsetflag "v" "y";',
    'require "imapflags";\nsetflag;',
    'require "imapflags";\nsetflag 1;',
    'require "imapflags";\nmark "x";',
    'require "imapflags";\nunmark :x;',
    'require "imapflags";\nif hasflag "x" { keep; }',           # imapflags has no hasflag
    'require "imapflags";\nkeep :flags "x";',                   # nor :flags
    'require "imapflags";\nmark;\nmark;\nfrop;',
    # conflicts with imap4flags, however the two come together
    'require ["imapflags", "imap4flags"];\nkeep;',
    'require ["imap4flags", "imapflags"];\nsetflag "x";',
    'require "imapflags";\nrequire "imap4flags";\nmark;',
    'require ["imapflags", "imap4flags"];\nif true { stop; }',
    'require ["imapflags", "ihave"];\nif ihave "imap4flags" { keep; }',
    'require ["imapflags", "ihave"];\nif ihave "imap4flags" { keep; }\nif ihave "imap4flags" { keep; }',
    'require ["imap4flags", "ihave"];\nif ihave "imapflags" { mark; }',
    'require ["imapflags", "ihave"];\nif ihave "enotify" { keep; }',      # no conflict
    'require ["imapflags", "imap4flags"];\nfrop;\nsetflag "x" "y";',
    'require ["imapflags", "imap4flags"];',                        # the require alone
    'require ["notify", "enotify"];',
    'require ["imap4flags", "imapflags", "ihave"];\nif ihave "imapflags" { keep; }',
    # notify
    f'require {N};\nnotify :method "mailto" :id "i" :options ["a@example.com", "Joe <j@example.com>"] '
    f':low :message "$from$ $subject$";',
    f'require {N};\nnotify;',
    f'require {N};\nnotify :options "a@example.com";\nnotify :high :options "b@example.com";',
    f'require {N};\nnotify :method "xmpp" :options "a@example.com";',
    f'require {N};\nnotify :method "mailto:a@example.com";',
    f'require {N};\nnotify :method "";',
    f'require {N};\nnotify :method "MAILTO" :options "a@example.com";',
    'require ["notify", "variables"];\nnotify :method "${m}";',
    f'require {N};\nnotify :options "not an address";',
    f'require {N};\nnotify :options ["a@example.com", "bad@"];',
    f'require {N};\nnotify :options "";',
    f'require {N};\nnotify :options "a@example.com,b@example.com";',
    f'require {N};\nnotify :options "<a@example.com>";',
    'require ["notify", "variables"];\nset "a" "x@example.com";\nnotify :options "${a}";',
    f'require {N};\nnotify :options "a@example.com" :low :high;',
    f'require {N};\nnotify :id ["a", "b"];',
    f'require {N};\nnotify :message ["a"];',
    f'require {N};\nnotify :message "x" :message "y";',
    f'require {N};\nnotify "a@example.com";',
    f'require {N};\nnotify :importance "1";',                 # enotify's tags are not notify's
    f'require {N};\nnotify :from "a@example.com";',
    f'require {N};\nif valid_notify_method "mailto:" {{ keep; }}',
    # denotify with each match type
    f'require {N};\ndenotify;',
    f'require {N};\ndenotify :is "x";',
    f'require {N};\ndenotify :contains "x" :normal;',
    f'require {N};\ndenotify :matches "x*" :low;',
    f'require {N};\ndenotify :low :is "x";',
    f'require {N};\ndenotify :high;',
    f'require {N};\ndenotify :regex "x";',                    # :regex needs regex
    'require ["notify", "regex"];\ndenotify :regex "^x.*";',
    'require ["notify", "regex"];\ndenotify :regex "x(";',
    'require ["notify", "regex"];\ndenotify :regex ["x"];',
    f'require {N};\ndenotify :count "eq" "1";',               # :count and :value need relational
    'require ["notify", "relational"];\ndenotify :count "eq" "1";',
    'require ["notify", "relational"];\ndenotify :value "gt" "x";',
    'require ["notify", "relational"];\ndenotify :value "gt" "x" :low;',
    'require ["notify", "relational"];\ndenotify :value "xx" "x";',
    f'require {N};\ndenotify :is ["a", "b"];',
    f'require {N};\ndenotify :is;',
    f'require {N};\ndenotify :is 1;',
    f'require {N};\ndenotify :is :low;',
    f'require {N};\ndenotify "x";',
    f'require {N};\ndenotify :is "x" :contains "y";',
    f'require {N};\ndenotify :is "x" :is "y";',
    f'require {N};\ndenotify :low :high;',
    f'require {N};\ndenotify :comparator "i;octet" :is "x";',
    # conflicts with enotify
    'require ["notify", "enotify"];\nkeep;',
    'require ["enotify", "notify"];\nnotify :options "a@example.com";',
    'require ["notify", "enotify"];\nnotify "mailto:a@example.com";',
    'require "enotify";\nrequire "notify";\ndenotify;',
    'require ["notify", "ihave"];\nif ihave "enotify" { keep; }',
    'require ["enotify", "ihave"];\nif ihave "notify" { keep; }',
    # both deprecated extensions together are fine
    'require ["notify", "imapflags"];\nmark;\nnotify :options "a@example.com";',
]

# script -> why Owlery's verdict or error count differs from sievec's (each follows the draft
# or is a limit of the validator's hooks, written down where it stands)
COMPILE_ALLOWED = {
    'require ["imapflags", "variables"];\nsetflag "v" "y";':
        "draft-melnikov-sieve-imapflags-03 3: setflag/addflag/removeflag take the list of flags "
        "only; sievec lets imapflags take imap4flags' variable name too (RFC 5232 3)",
    'require ["notify", "relational"];\ndenotify :value "gt" "x" :low;':
        "Owlery's validator binds :count/:value's key as a positional argument, so a priority "
        "tag must come before them (`denotify :low :value \"gt\" \"x\"`); sievec takes it after",
}


@pytest.fixture(scope="module")
def sievec():
    yield from private_sievec("owlery-sievec-deprecated-", _ENABLE)


@pytest.mark.parametrize("src", COMPILE_CASES)
def test_compile_verdict_and_error_count_as_sievec(sievec, src):
    theirs = sievec.errors(src)
    assert theirs is not None, "sievec crashed"
    their_ok, their_errors = theirs
    their_ok = their_ok and not their_errors
    ours_ok, our_errors = owlery_errors(src)
    same = (ours_ok, len(our_errors)) == (their_ok, len(their_errors))
    if src in COMPILE_ALLOWED:
        assert not same, f"allow-listed but sievec agrees now: {COMPILE_ALLOWED[src]}"
    else:
        assert same, (our_errors, their_errors)


def test_conflicts_are_refused_whatever_the_order():
    for src in ('require ["imapflags", "imap4flags"];\nkeep;', 'require ["imap4flags", "imapflags"];\ndiscard;',
                'require ["notify", "enotify"];\nstop;', 'require ["enotify", "notify"];\nkeep;'):
        ok, errors = owlery_errors(src)
        assert not ok and len(errors) == 1 and "(deprecated)" in errors[0] and "cannot be used together" in errors[0]


# --- (b) run: Owlery and sieve-test store and send the same -------------------------------------

def _sys_flag(f: str) -> str:
    return f.lower() if f.startswith("\\") else f


def _text(msg) -> str:
    body = msg.get_payload(decode=True) or b""
    return body.decode(msg.get_content_charset() or "utf-8", "replace").replace("\r\n", "\n").rstrip()


def _notification(recipient: str, raw: bytes) -> tuple:
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = str(email.header.make_header(email.header.decode_header(m.get("Subject", ""))))
    prio = (m.get("X-Priority") or "").split()[:1]
    return (recipient.lower(), subject, _text(m), prio[0] if prio else "")


def run_owlery(script: str, message: bytes = MSG, settings: Settings | None = None):
    settings = settings or enabled_settings()
    compiled = compile_script(script, name="script", settings=settings)
    result = run(compiled, message, Envelope(mail_from=MAIL_FROM, rcpt_to=RCPT, orig_rcpt=RCPT),
                 host=MemoryHost(mailboxes=("INBOX",) + FOLDERS), settings=settings, environment={},
                 now=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc))
    stored, sent = [], []
    for a in result.effective_actions():
        if isinstance(a, (Keep, FileInto)):
            stored.append((a.mailbox, tuple(sorted(_sys_flag(f) for f in a.flags))))
        elif isinstance(a, Notify) and a.message:
            sent += [_notification(r, a.message) for r in a.recipients]
    return result.status, sorted(stored), sorted(sent), result


@pytest.fixture(scope="module")
def sieve_test():
    if not os.path.exists(pigeonhole.SIEVE_TEST):
        pytest.fail("sieve-test (Debian dovecot-sieve) is not installed: scripts/install-deps --test installs it")
    home = Path(tempfile.mkdtemp(prefix="owlery-sieve-test-deprecated-"))
    try:
        os.chmod(home, 0o755)        # sieve-test runs as nobody when the tests run as root
        ph = pigeonhole.Pigeonhole(home / "h", FOLDERS)
        conf = ph.home / "dovecot.conf"
        conf.write_text(pigeonhole.CONF.format(home=ph.home, hostname=pigeonhole.HOSTNAME,
                                               postmaster=pigeonhole.POSTMASTER,
                                               extensions=pigeonhole._EXTRA_EXTENSIONS + _ENABLE))
        if ph.uid is not None:
            os.chown(conf, ph.uid, ph.gid)
        ph.env = ph._config_env()
        yield ph
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_pigeonhole(ph, script: str, message: bytes = MSG):
    raw = ph.run(script.encode(), message, MAIL_FROM, RCPT, RCPT)
    stored = sorted((box, tuple(sorted(_sys_flag(f) for f in flags))) for box, flags, _ in raw.stored)
    sent = sorted(_notification(r, m) for kind, _, r, m in raw.sent if kind == "notify")
    return raw.status, stored, sent


NOTIFY = 'require "notify";\n'
EXEC_CASES = {
    "flags on keep and fileinto as they stand": 'require ["imapflags", "fileinto"];\nsetflag "\\\\Seen";\n'
        'addflag ["foo", "bar baz"];\nmark;\nfileinto "Junk";\nremoveflag "foo";\nunmark;\nkeep;',
    "implicit keep takes the current flags": 'require "imapflags";\naddflag "\\\\Seen";\nmark;',
    "setflag replaces": 'require "imapflags";\nsetflag "a";\nsetflag ["\\\\Answered", "b"];\nkeep;',
    "unusable flags are ignored": 'require "imapflags";\nsetflag ["\\\\Recent", "ok", "\\\\Bogus", "x(y"];\nkeep;',
    "removeflag without case": 'require "imapflags";\naddflag ["Foo", "\\\\SEEN"];\nremoveflag ["foo", "\\\\seen"];\n'
        'addflag "bar";',
    "unmark": 'require ["imapflags", "fileinto"];\nmark;\nfileinto "Lists";\nunmark;',
    "notify default message": NOTIFY + 'notify :options "carol@example.com" :normal;',
    "notify priorities": NOTIFY + 'notify :low :options "a@example.com";\nnotify :normal :options "b@example.com";\n'
        'notify :high :options "c@example.com";',
    "message variables": NOTIFY + 'notify :options "g@example.com" :normal :message '
        '"$from$|$env-from$|$subject$|$text[5]$|$TEXT$|$From$|$foo$|$$|$text[x]$";',
    "several recipients": NOTIFY + 'notify :normal :options ["carol@example.com", "Dave <dave@example.com>"];',
    "one notification per recipient": NOTIFY + 'notify :normal :options "g@example.com";\n'
        'notify :normal :options ["g@example.com", "h@example.com"] :message "second";',
    "denotify all": NOTIFY + 'notify :normal :options "g@example.com";\nnotify :low :options "h@example.com";\n'
        'denotify;\nnotify :high :options "i@example.com";',
    "denotify by priority": NOTIFY + 'notify :id "a" :low :options "f@example.com";\n'
        'notify :id "b" :normal :options "g@example.com";\ndenotify :low;',
    "notify with variables": 'require ["notify", "variables"];\nset "a" "x@example.com";\n'
        'notify :normal :options "${a}" :message "to ${a}";',
    "notify and fileinto": 'require ["notify", "fileinto", "imapflags"];\nmark;\n'
        'notify :normal :options "g@example.com";\nfileinto "Junk";',
    # departures (ALLOWED)
    "no priority is :normal": NOTIFY + 'notify :options "g@example.com";',
    "denotify :is by id": NOTIFY + 'notify :id "three" :low :options "f@example.com";\ndenotify :is "three";',
    "denotify :matches by id, two notifications": NOTIFY + 'notify :id "one" :options "e@example.com" :normal;\n'
        'notify :id "two" :options "f@example.com" :normal;\ndenotify :matches "t*";',
}
AUTO = MSG.replace(b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:")

EXEC_ALLOWED = {
    "denotify all":
        "draft 3.2: denotify cancels the notifications asked for before it; sieve-test sends the "
        "ones it cancelled all the same once a later notify (with a priority tag) comes",
    "no priority is :normal":
        "draft-martin-sieve-notify-01 3.1: without :low/:normal/:high the priority is :normal; "
        "Pigeonhole sends it as High (X-Priority 1)",
    "denotify :is by id":
        "draft 3.2: denotify with a match type cancels the notifications whose :id matches; "
        "Pigeonhole cancels none",
    "denotify :matches by id, two notifications":
        "draft 3.2 (as above); sieve-test crashes (SIGSEGV) on denotify with a match type once "
        "two notifications are pending",
}


@pytest.mark.parametrize("name", sorted(EXEC_CASES))
def test_run_as_sieve_test(sieve_test, name):
    script = EXEC_CASES[name]
    status, stored, sent, _ = run_owlery(script)
    theirs = run_pigeonhole(sieve_test, script)
    assert status == "ok"
    if name in EXEC_ALLOWED:
        assert theirs != ("ok", stored, sent), f"allow-listed but sieve-test agrees now: {EXEC_ALLOWED[name]}"
    else:
        assert ("ok", stored, sent) == theirs


def test_no_notification_about_auto_submitted_mail_as_sieve_test(sieve_test):
    script = NOTIFY + 'notify :normal :options "g@example.com";'
    status, stored, sent, _ = run_owlery(script, AUTO)
    assert (status, stored, sent) == ("ok", [("INBOX", ())], [])
    assert run_pigeonhole(sieve_test, script, AUTO) == ("ok", stored, sent)


# Owlery's side of the departures: what the draft says
def test_no_priority_is_normal():
    _, _, sent, _ = run_owlery(EXEC_CASES["no priority is :normal"])
    assert [s[3] for s in sent] == ["3"]


def test_denotify_cancels_by_id_with_each_match_type():
    base = (NOTIFY + 'notify :id "alpha" :low :options "a@example.com";\n'
            'notify :id "beta" :high :options "b@example.com";\nnotify :options "c@example.com";\n')
    cases = {
        'denotify :is "ALPHA";': ["b", "c"],
        'denotify :contains "et";': ["a", "c"],
        'denotify :matches "*a";': ["c"],
        'denotify :matches "*" :high;': ["a", "c"],
        'denotify :is "alpha" :high;': ["a", "b", "c"],
        'denotify :normal;': ["a", "b"],
        'denotify;': [],
    }
    for tail, left in cases.items():
        _, _, sent, _ = run_owlery(base + tail)
        assert [s[0][0] for s in sent] == left, tail
    regex = 'require ["notify", "regex", "relational"];\n' + base[len(NOTIFY):]
    _, _, sent, _ = run_owlery(regex + 'denotify :regex "^b.t";')
    assert [s[0][0] for s in sent] == ["a", "c"]
    _, _, sent, _ = run_owlery(regex + 'denotify :low :value "lt" "b";')
    assert [s[0][0] for s in sent] == ["b", "c"]
    # a notify after denotify stands
    _, _, sent, _ = run_owlery(base + 'denotify;\nnotify :options "d@example.com";')
    assert [s[0][0] for s in sent] == ["d"]


def test_notify_bounds():
    settings = enabled_settings().replace(sieve_notify_mailto_max_recipients=2, sieve_max_notifications=2)
    many = ", ".join(f'"u{i}@example.com"' for i in range(5))
    _, _, sent, _ = run_owlery(NOTIFY + f"notify :options [{many}];", settings=settings)
    assert [s[0] for s in sent] == ["u0@example.com", "u1@example.com"]
    status, _, _, result = run_owlery(NOTIFY + "".join(f'notify :options "n{i}@example.com";\n' for i in range(3)),
                                      settings=settings)
    assert status == "resource_limit"
    assert [a for a in result.effective_actions() if isinstance(a, Notify)] == []
    # a text may hold anything: it goes into the body; the Subject is fixed
    evil = MSG.replace(b"Subject: Hello there", b"Subject: =?utf-8?q?Hi=0D=0ABcc:_x@evil.example?=")
    _, _, sent, result = run_owlery(NOTIFY + 'notify :options "g@example.com" :message "$subject$";', evil)
    (n,) = [a for a in result.actions if isinstance(a, Notify)]
    head = n.message.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"evil" not in head and n.recipients == ("g@example.com",)
    # an invalid address a variable built is skipped
    _, _, sent, _ = run_owlery('require ["notify", "variables"];\nset "a" "x@";\n'
                               'notify :options ["${a}", "ok@example.com"];')
    assert [s[0] for s in sent] == ["ok@example.com"]
    # $text$ is bounded
    big = MSG.replace(b"Body line one", b"x" * 100_000)
    _, _, sent, _ = run_owlery(NOTIFY + 'notify :options "g@example.com" :message "$text$$text$";', big)
    assert len(sent[0][2]) <= 2 * 4096


# --- (c) off by default ---------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["imapflags", "notify"])
def test_off_by_default(ext):
    settings = Settings()
    assert ext in settings.sieve_extensions_disabled
    ok, errors = owlery_errors(f'require "{ext}";\nkeep;', settings)
    assert not ok and errors == [f"require command: unknown Sieve capability `{ext}'"]
    # ihave is false: the block is not run
    _, stored, _, result = run_owlery(f'require "ihave";\nif ihave "{ext}" {{ discard; }}', settings=settings)
    assert stored == [("INBOX", ())]
    assert ext not in extensions_available(settings)
    assert ext in extensions_available(settings.replace(sieve_extensions_disabled=[]))
    from sieve.managesieve.settings import SessionConfig
    assert ext not in SessionConfig.from_settings(settings).sieve_extensions
    assert ext in SessionConfig.from_settings(settings.replace(sieve_extensions_disabled=[])).sieve_extensions


def test_sievec_refuses_them_without_sieve_extensions():
    # the reference: Pigeonhole's default configuration does not enable them either
    home = tempfile.mkdtemp(prefix="owlery-sievec-default-")
    try:
        s = Sievec(home)
        for ext in ("imapflags", "notify"):
            ok, errors = s.errors(f'require "{ext}";\nkeep;')
            assert not ok and len(errors) == 1 and "unknown Sieve capability" in errors[0]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_notifications_leave_through_the_delivery_as_enotify_ones():
    # the actions are the same sieve.actions.Notify the delivery planner sends (one SendStep
    # each, from sieve_notify_envelope_from's address), flags reach the store step
    from tests.delivery.test_planner import P
    from tests.delivery.test_planner import run as deliver
    _, _, _, result = run_owlery('require ["notify", "imapflags"];\nmark;\n'
                                 'notify :options ["a@example.com", "B <b@example.com>"];\n'
                                 'notify :options ["a@example.com", "c@example.com"];')
    notes = [a for a in result.actions if isinstance(a, Notify)]
    assert [n.envelope_from for n in notes] == [pigeonhole.POSTMASTER] * 2
    steps, verdict = deliver(P(*notes, keep=True, keep_flags=result.keep_flags))
    assert steps == ["store INBOX flags=\\Flagged", "send notification a@example.com,b@example.com",
                     "send notification c@example.com"], steps
    assert verdict.startswith("delivered")


def test_owlery_sieve_extensions_marks_them_disabled(capsys):
    from owlery.app.cli import main
    assert main(["sieve", "extensions"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:] if line.strip()}
    for ext in ("imapflags", "notify"):
        assert lines[ext].endswith("(disabled)") and "draft-" in lines[ext]


UTF8 = MSG.replace(b"Body line one", "été".encode()).replace(
    b"Subject: Hello", b"Content-Type: text/plain; charset=utf-8\r\nSubject: Hello")


def test_text_n_counts_bytes_without_cutting_a_character_as_sieve_test(sieve_test):
    script = NOTIFY + 'notify :normal :options "g@example.com" :message "[$text[2]$][$text[3]$]";'
    status, stored, sent, _ = run_owlery(script, UTF8)
    assert sent[0][2] == "[é][ét]"
    assert run_pigeonhole(sieve_test, script, UTF8) == (status, stored, sent)
    # one byte of a two-byte character: nothing (sieve-test sends the lone byte, not UTF-8)
    _, _, sent, _ = run_owlery(NOTIFY + 'notify :options "g@example.com" :message "[$text[1]$]";', UTF8)
    assert sent[0][2] == "[]"


def test_text_of_a_multipart_message_is_its_text_part():
    # (Pigeonhole joins every text part, the HTML one as it is: allow-listed in the module's
    # docstring; the draft says "the message body", which a reader sees as the text part)
    mp = (b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/alternative; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/html\r\n\r\n"
          b"<p>html</p>\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\nplain =C3=A9t=C3=A9\r\n--b--\r\n")
    _, _, sent, _ = run_owlery(NOTIFY + 'notify :options "g@example.com" :message "$text$";', mp)
    assert sent[0][2] == "plain été"
    html = mp.replace(b"text/plain; charset=utf-8", b"application/octet-stream")
    _, _, sent, _ = run_owlery(NOTIFY + 'notify :options "g@example.com" :message "$text$";', html)
    assert sent[0][2] == "html"


def test_the_conformance_harness_has_them(tmp_path):
    # (sieve/testsuite.py enables every extension; test_config_reload :extension knows them)
    from sieve.testsuite import run_file
    t = tmp_path / "t.svtest"
    t.write_text('require "vnd.dovecot.testsuite";\nrequire "imapflags";\nrequire "notify";\n'
                 'test_config_reload :extension "imapflags";\ntest_config_reload :extension "notify";\n'
                 'test "imapflags" {\n  mark;\n  keep;\n'
                 '  if not test_result_action :index 1 "keep" { test_fail "no keep"; }\n'
                 '  if not test_result_execute { test_fail "execute failed"; }\n}\n'
                 'test_result_reset;\n'
                 'test "notify" {\n  notify :options "a@example.com" :message "hi";\n'
                 '  if not test_result_action :index 1 "notify" { test_fail "no notify action"; }\n'
                 '  if not test_result_execute { test_fail "execute failed"; }\n'
                 '  test_message :smtp 0;\n'
                 '  if not header :is "subject" "[SIEVE] New mail notification" { test_fail "subject"; }\n}\n')
    rep = run_file(str(t))
    assert [(b.name, b.status) for b in rep.blocks] == [("imapflags", "PASS"), ("notify", "PASS")], rep.output
