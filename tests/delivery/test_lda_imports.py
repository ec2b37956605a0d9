"""The in-process LDA (lmtpd down) imports only what the delivery needs (issue 19, item 4).

Each message starts a Python process, so every import is paid per message. A child runs the
path `owlery-lda` takes when lmtpd is not there (python -I -S, sieve.delivery.lda_lmtp.main
falling back to in-process delivery), then reports sys.modules: a plain keep (no Sieve script)
must load neither the Sieve engine nor the extension registry, and a delivery of any kind
none of the modules only some deliveries or other programs use (syslog handlers, hashing,
the LMTP server, shutil's archive support, email parsing, metrics exporters, adapters).
Nor `site` (the package root is known: an import nothing else finds runs it, see
test_lda_lmtp.py), nor the state store for a script that tracks nothing, nor OpenSSL's
hashing when a script read as its owner (root, maildir_owner) is keyed by its SHA-256.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from sieve.delivery.lda_lmtp import main
status = main(sys.argv[3:])
modules = sorted(sys.modules)
dc = sys.modules.get("dataclasses")
users = sorted(n for n, m in list(sys.modules.items()) if dc is not None and getattr(m, "dataclasses", None) is dc)
import json     # after the snapshot: json loads re
with open(sys.argv[2], "w") as f:
    json.dump({"status": status, "modules": modules, "dataclasses_users": users}, f)
"""

# Loaded by no delivery the LDA makes in-process (each has a lazy import where it is needed).
NEVER = ("prometheus_client", "twisted", "dkim", "Milter", "redis", "ldap3",
         "logging.handlers", "hashlib", "_hashlib", "hmac", "shutil", "bz2", "lzma", "socket", "selectors",
         "email", "email.utils", "sieve.delivery.lmtp", "sieve.delivery.lmtpd", "sieve.managesieve",
         "owlery.directory.ldap", "pickle", "queue", "argparse", "site")
# Start-up weight no in-process delivery needs (issue 19): dataclasses (~11 ms with inspect, ast,
# dis; records are owlery.record), typing (~1.7 ms), tomllib for a flat settings file (~5 ms:
# owlery.settings.scan_flat reads it), ipaddress (network settings only).
# logging and what it loads (traceback, linecache, tokenize, textwrap, string, weakref) while its
# lines go nowhere (owlery.lazylog; the default: no lda_log_path, log_target = "stderr"), importlib
# (and warnings), base64 and struct (rare paths only), threading (_thread gives the locks),
# datetime (owlery.datetimes), contextlib (owlery.maildir._Fds); re (and enum) while no
# pattern is compiled (owlery.lazyre), collections and functools (_collections_abc's classes).
HEAVY = ("dataclasses", "inspect", "ast", "dis", "typing", "tomllib", "ipaddress", "logging", "traceback",
         "linecache", "tokenize", "textwrap", "string", "importlib", "warnings", "base64", "struct", "threading", "datetime", "contextlib",
         # re with enum, and the collections package with functools: ~22 M instructions of a ~105 M delivery
         "re", "enum", "collections", "functools")
# The modules that still import dataclasses on a script's path (sieve.result's Result: to be an
# owlery.record too; then this is empty and HEAVY holds for every delivery).
DATACLASSES_LEFT: set[str] = set()
# The Sieve engine: only when a script runs.
ENGINE = ("sieve.parser", "sieve.lexer", "sieve.validator", "sieve.interpreter", "sieve.actions",
          "sieve.outgoing", "sieve.api", "sieve.extensions.core", "sieve.extensions.vacation")


def deliver(tmp_path, user="alice", script=None, owner=None, extra=""):
    home = tmp_path / "mail" / "example.org" / user
    home.mkdir(parents=True, exist_ok=True)
    if script is not None:
        (home / "sieve").mkdir(exist_ok=True)
        (home / "sieve" / "active.sieve").write_text(script)
    if owner is not None:     # as lmtpd and the LDA run as root: the user's files belong to `owner`
        os.chmod(tmp_path, 0o755)
        pw = pwd.getpwnam(owner)
        for d, dirs, names in os.walk(tmp_path / "mail"):
            for path in [d] + [os.path.join(d, n) for n in dirs + names]:
                os.chown(path, pw.pw_uid, pw.pw_gid)
        extra += f'\nmaildir_owner = "{owner}"'
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_sqlite_path = "{tmp_path}/state.sqlite"
delivery_use_directory = false
lda_lmtp_handoff = false
{extra}
""")
    out = tmp_path / "modules.json"
    r = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, str(ROOT), str(out), "-c", str(conf),
                        "-f", "bob@remote.test", "-d", f"{user}@example.org"],
                       input=b"From: bob@remote.test\nSubject: hello\n\nhi\n", capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["status"] == 0, r.stderr
    stored = [p for p in (home / "Maildir").rglob("*") if p.is_file() and p.parent.name in ("new", "cur")]
    modules = Loaded(result["modules"])
    modules.dataclasses_users = set(result["dataclasses_users"])
    return modules, stored


class Loaded(set):
    """The child's sys.modules, and `dataclasses_users`: the modules that imported dataclasses."""

    dataclasses_users: set


def loaded(modules, names):
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


def test_plain_keep_loads_no_sieve_engine_and_nothing_unneeded(tmp_path):
    modules, stored = deliver(tmp_path)
    assert len(stored) == 1
    assert loaded(modules, NEVER) == []
    assert loaded(modules, ENGINE) == []
    assert loaded(modules, HEAVY) == []
    assert "sieve.delivery.executor" in modules      # the test ran the in-process path


def test_with_a_log_file_the_delivery_line_is_written(tmp_path):
    # the lazy loggers still write where the postmaster asked
    log = tmp_path / "lda.log"
    modules, stored = deliver(tmp_path, extra=f'lda_log_path = "{log}"\nlog_level = "info"')
    assert len(stored) == 1 and "logging" in modules
    assert "owlery-lda[" in log.read_text() and " lda: delivered: 250 2.0.0 <alice@example.org>" in log.read_text()


def test_script_loads_only_the_extensions_it_requires(tmp_path):
    modules, stored = deliver(tmp_path, script='require ["fileinto", "mailbox"];\n'
                                               'if header :contains "subject" "hello" { fileinto :create "Hi"; }\n')
    assert [p.parent.parent.name for p in stored] == [".Hi"]
    assert loaded(modules, NEVER) == []
    assert "sieve.interpreter" in modules and "sieve.extensions.fileinto" in modules
    assert loaded(modules, [m for m in HEAVY if m not in ("dataclasses", "inspect", "ast", "dis")]) == []
    assert modules.dataclasses_users <= DATACLASSES_LEFT
    if not modules.dataclasses_users:
        assert loaded(modules, HEAVY) == []
    assert loaded(modules, ("sieve.extensions.vacation", "sieve.extensions.enotify", "sieve.extensions.mime",
                            "sieve.extensions.editheader", "sieve.extensions.date", "sieve.outgoing",
                            "sieve.html_text", "html")) == []


STATE = ("sqlite3", "owlery.state.sqlite_store")
SCRIPT = 'require ["fileinto", "mailbox"];\nif header :contains "subject" "hello" { fileinto :create "Hi"; }\n'


def test_a_script_that_tracks_nothing_opens_no_state_store(tmp_path):
    modules, stored = deliver(tmp_path, script=SCRIPT)
    assert [p.parent.parent.name for p in stored] == [".Hi"]
    assert loaded(modules, STATE) == [] and not (tmp_path / "state.sqlite").exists()
    # ...and one that does opens it (when it asks, not before)
    modules, stored = deliver(tmp_path, user="bob", script='require "duplicate";\nif duplicate :uniqueid "u1" { discard; }\n')
    assert len(stored) == 1 and loaded(modules, STATE) == sorted(STATE)
    assert (tmp_path / "state.sqlite").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="reads the script as its owner: needs root")
def test_a_script_read_as_its_owner_is_hashed_without_openssl(tmp_path):
    modules, stored = deliver(tmp_path, script=SCRIPT, owner="nobody")
    assert [p.parent.parent.name for p in stored] == [".Hi"]
    assert loaded(modules, NEVER) == []


def test_plain_options_read_as_argparse_reads_them():
    from sieve.delivery import cli
    from sieve.delivery.lda_lmtp import parse_args
    argvs = [["-f", "s@r.test", "-d", "u@example.org"], ["-c", "/x.toml", "-a", "a@x", "-d", "u@x", "-m", "Lists/A"],
             ["--config=/y.toml", "-fs@r", "-du@x"], ["-f", "", "-d", "u@x", "-o", "maildir_fsync=\"never\""],
             ["--config", "/z", "-f", "<>", "-a", "a@x"], ["-f", "-x", "-d", "u@x"], ["-c=/a", "-d", "u@x"],
             ["-d", "a@x", "-d", "b@x"], ["--conf", "/q", "-d", "u@x"],
             ["-e", "-k", "-d", "u@x", "-p", "/m.eml", "-r", "r@x"], ["-ek", "-d", "u@x"], ["-m", "", "-d", "u@x"]]
    fast = 0
    for argv in argvs:
        opts = parse_args(argv)
        plain = cli._plain_lda_args(opts) if opts is not None else None
        if plain is None:
            continue
        fast += 1
        want = vars(cli._lda_parser().parse_args(argv))
        assert vars(plain) == want, argv
    assert fast == 7


def test_an_ordinary_filter_script_compiles_no_regular_expression(tmp_path):
    # envelope and address tests, flags and folders: the engine's own checks are str
    # operations, so `re` (with enum) and collections stay unloaded
    script = ('require ["fileinto", "envelope", "imap4flags", "mailbox"];\n'
              'if envelope :domain :is "from" "remote.test" { addflag "\\\\Flagged"; }\n'
              'if address :is "from" "bob@remote.test" { fileinto :create "Bob"; stop; }\n')
    modules, stored = deliver(tmp_path, script=script)
    assert [p.parent.parent.name for p in stored] == [".Bob"]
    assert "sieve.extensions.envelope" in modules
    assert loaded(modules, ("re", "enum", "collections", "functools", "operator", "bisect", "_socket")) == []
    # sending (redirect, vacation) and the state store's interface load only when used; the
    # settings file names state_sqlite_path, whose declaration is in owlery.state, not its base
    assert loaded(modules, ("sieve.delivery.submission", "owlery.state.base", "sieve.extensions.regex")) == []


EXIT_CHILD = """
import atexit, gc, sys
sys.path.insert(0, sys.argv[1])
def report():
    with open(sys.argv[2], "w") as f:
        f.write(repr(gc.get_threshold()) + " " + repr(gc.isenabled()))
atexit.register(report)          # exit_now runs the atexit hooks before posix._exit
from sieve.delivery.lda_lmtp import main
main(sys.argv[3:], fast_exit=True)
"""


def test_the_one_message_process_collects_cycles_less_often_but_still_does(tmp_path):
    # owlery-lda's own process (fast_exit): gen-0 collections every 20,000 allocations, so loading
    # the engine does not run ~14 collections that free nothing; the collector stays enabled
    home = tmp_path / "mail" / "example.org" / "alice"
    home.mkdir(parents=True)
    conf = tmp_path / "owlery.toml"
    conf.write_text(f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n'
                    f'delivery_sieve_script_template = "{tmp_path}/none/{{localpart}}.sieve"\n'
                    f'state_sqlite_path = "{tmp_path}/state.sqlite"\n'
                    'delivery_use_directory = false\nlda_lmtp_handoff = false\n')
    out = tmp_path / "gc.txt"
    r = subprocess.run([sys.executable, "-I", "-S", "-c", EXIT_CHILD, str(ROOT), str(out), "-c", str(conf),
                        "-f", "bob@remote.test", "-d", "alice@example.org"],
                       input=b"Subject: hi\n\nhi\n", capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "(20000, 10, 10) True"
    assert len(list((home / "Maildir" / "new").iterdir())) == 1


def test_requiring_vacation_loads_no_mail_builder_until_a_reply_is_made(tmp_path):
    # filter UIs put `require "vacation"` in scripts whose vacation rule is off or does not
    # fire: building a reply's modules (email.utils, quopri, hashing, logging) wait for one
    script = ('require ["fileinto", "vacation"];\n'
              'if header :contains "subject" "out of office test" { vacation :days 3 "Away."; }\n'
              'if header :contains "subject" "hello" { fileinto "Hi"; }\n')
    modules, stored = deliver(tmp_path, script=script)
    assert [p.parent.parent.name for p in stored] == [".Hi"]
    assert "sieve.extensions.vacation" in modules and "sieve.outgoing" in modules
    assert loaded(modules, ("email", "quopri", "base64", "hashlib", "_hashlib", "logging", "re", "functools")) == []


def test_a_logged_line_break_forges_no_line_in_the_lda_log(tmp_path):
    # lda_log_path's handler formats each record as one line and its indented continuations
    log = tmp_path / "lda.log"
    code = ("import sys, logging; sys.path.insert(0, sys.argv[1]); from owlery.settings import Settings; "
            "from sieve.delivery.lda import _setup_logging; "
            "_setup_logging(Settings({'lda_log_path': sys.argv[2], 'log_level': 'info'})); "
            "logging.getLogger('owlery.sieve').warning('one %s', 'x\\r\\nJan  1 00:00:00 forged: line')")
    subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT), str(log)], check=True, timeout=60)
    lines = log.read_text().splitlines()
    assert lines[0].endswith("one x?")        # the CR made printable
    assert len(lines) == 2 and lines[1].startswith("\t")          # never a line of its own
