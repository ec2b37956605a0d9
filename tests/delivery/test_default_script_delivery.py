"""delivery_sieve_default through real delivery (`owlery lda`): a user without an active script
gets the site's default; once they activate their own (the link ManageSieve writes), theirs
runs instead; the global before-script runs in both cases."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")


def _deliver(conf: Path, subject: str) -> None:
    r = subprocess.run([OWLERY, "lda", "-c", str(conf), "-f", "bob@remote.test", "-d", "alice@example.org"],
                       input=f"Subject: {subject}\n\nhello\n".encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _folders(home: Path) -> dict[str, int]:
    md = home / "Maildir"
    out = {}
    for d in [md] + [p for p in md.iterdir() if p.name.startswith(".") and p.is_dir()]:
        n = sum(1 for sub in ("new", "cur") if (d / sub).exists() for _ in (d / sub).iterdir())
        if n:
            out["INBOX" if d == md else d.name[1:]] = n
    return out


def test_default_until_the_user_activates_a_script(tmp_path):
    home = tmp_path / "mail/example.org/alice"
    site = tmp_path / "site"
    site.mkdir()
    (site / "before.sieve").write_text('require ["fileinto"];\nif header :contains "subject" "[list]" '
                                       '{ fileinto "Lists"; stop; }\n')
    (site / "default.sieve").write_text('require ["fileinto"];\nif header :contains "subject" "offer" '
                                        '{ fileinto "Junk"; }\n')
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
delivery_sieve_before = ["{site}/before.sieve"]
delivery_sieve_default = "{site}/default.sieve"
state_backend = "memory"
delivery_use_directory = false
""")
    _deliver(conf, "special offer")
    _deliver(conf, "[list] news")
    assert _folders(home) == {"Junk": 1, "Lists": 1}
    # The user activates a script of their own (ManageSieve's layout: active.sieve -> NAME.sieve).
    (home / "sieve").mkdir()
    (home / "sieve/mine.sieve").write_text('require ["fileinto"];\nif header :contains "subject" "offer" '
                                           '{ fileinto "Deals"; }\n')
    os.symlink("mine.sieve", home / "sieve/active.sieve")
    _deliver(conf, "another offer")
    _deliver(conf, "[list] more")
    assert _folders(home) == {"Junk": 1, "Lists": 2, "Deals": 1}
    # Deactivated (the link removed): the default again.
    (home / "sieve/active.sieve").unlink()
    _deliver(conf, "last offer")
    assert _folders(home) == {"Junk": 2, "Lists": 2, "Deals": 1}


def test_each_store_gets_the_header_as_it_stood_when_the_script_asked(tmp_path):
    """RFC 5293 7: fileinto/keep store the message as edited at the time of the action."""
    home = tmp_path / "mail/example.org/alice"
    (home / "sieve").mkdir(parents=True)
    (home / "sieve/active.sieve").write_text(
        'require ["fileinto", "editheader"];\n'
        'addheader "X-Step" "one";\n'
        'fileinto "First";\n'
        'addheader "X-Step" "two";\n'
        'keep;\n')
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_backend = "memory"
delivery_use_directory = false
""")
    _deliver(conf, "edits")
    [first] = list((home / "Maildir/.First/new").iterdir())
    [kept] = [p for sub in ("new", "cur") for p in (home / "Maildir" / sub).iterdir()]
    assert first.read_bytes().count(b"X-Step:") == 1
    assert kept.read_bytes().count(b"X-Step:") == 2


def _stored(folder: Path) -> list[str]:
    return sorted(p.name for sub in ("new", "cur") if (folder / sub).exists() for p in (folder / sub).iterdir())


def test_flags_a_global_before_script_sets_apply_to_the_users_stores(tmp_path):
    """imap4flags' internal variable belongs to the message: set in a before script, it flags the
    user script's fileinto and the implicit keep (Pigeonhole's multiscript; its testsuite's
    imap4flags/multiscript.svtest), though the user's script does not require imap4flags."""
    home = tmp_path / "mail/example.org/alice"
    site = tmp_path / "site"
    site.mkdir()
    (site / "before.sieve").write_text('require ["imap4flags"];\n'
                                       'if header :contains "subject" "offer" { addflag ["$Junk", "\\\\Seen"]; }\n')
    (home / "sieve").mkdir(parents=True)
    (home / "sieve/active.sieve").write_text('require ["fileinto"];\n'
                                             'if header :contains "subject" "offer" { fileinto "Junk"; }\n')
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
delivery_sieve_before = ["{site}/before.sieve"]
state_backend = "memory"
delivery_use_directory = false
""")
    _deliver(conf, "special offer")
    _deliver(conf, "hello")
    junk = home / "Maildir/.Junk"
    [name] = _stored(junk)
    assert name.endswith(":2,Sa"), name                 # \Seen, and keyword 0 ...
    assert (junk / "dovecot-keywords").read_text().split() == ["0", "$Junk"]   # ... is $Junk
    [plain] = _stored(home / "Maildir")
    assert not plain.endswith("S") and "a" not in plain.partition(":2,")[2]   # the other one: no flags
