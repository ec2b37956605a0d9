"""README.rst stays true: its Quick start, Postfix lines and command examples are the real ones."""

import os
import re
import shlex
from pathlib import Path

import pytest

from owlery.app import postfix
from owlery.app.cli import build_parser
from owlery.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.rst").read_text()


def section(title):
    m = re.search(rf"^{re.escape(title)}\n[=\-~]+\n(.*?)(?=^\S[^\n]*\n[=\-~]{{3,}}\n)", README + "\nEnd\n===\n",
                  re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def literal_blocks(text):
    """The indented blocks after `::` or a code-block directive."""
    blocks = []
    for m in re.finditer(r"(?:::|\.\. code-block:: \w+)\n\n((?:(?:    .*)?\n)+)", text):
        lines = [line[4:] for line in m.group(1).splitlines()]
        blocks.append("\n".join(lines).strip("\n"))
    return blocks


def test_quick_start_has_exactly_two_commands_that_exist():
    blocks = literal_blocks(section("Quick start"))
    assert len(blocks) == 2, blocks
    for block in blocks:
        assert len(block.splitlines()) == 1, block
        script = ROOT / shlex.split(block)[0]
        assert script.is_file() and os.access(script, os.X_OK), block


def test_ci_runs_the_readme_test_command():
    test_command = literal_blocks(section("Quick start"))[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^\s*(exec\s+)?{re.escape(test_command)}\s*$", ci, re.M), ci


def test_postfix_lines_are_the_rendered_ones():
    block = literal_blocks(section("Integration with Postfix"))[0]
    expected = postfix.render(Settings(), ["example.org"], command="/usr/local/bin/owlery")
    assert block == expected


def console_commands():
    cmds = []
    for m in re.finditer(r"\.\. code-block:: console\n\n((?:(?:    .*)?\n)+)", README):
        for line in m.group(1).splitlines():
            line = line.strip()
            if line.startswith("$ owlery "):
                cmds.append(line[2:])
    return cmds


@pytest.mark.parametrize("command", console_commands())
def test_console_examples_are_real_commands(command):
    build_parser().parse_args(shlex.split(command)[1:])


RUN_FOR_REAL = ("owlery config show -n", "owlery config show", "owlery config doc",
                "owlery sieve testsuite tests/sieve/svtest/")


@pytest.mark.parametrize("command", RUN_FOR_REAL)
def test_side_effect_free_examples_run(command):
    import subprocess
    import sys
    assert command in console_commands(), f"README no longer shows {command!r}"
    r = subprocess.run([sys.executable, "-m", "owlery.app.cli"] + shlex.split(command)[1:], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_logging_examples_are_what_format_decision_writes():
    from owlery.log import format_decision
    [block] = literal_blocks(section("Logging"))
    expected = [
        format_decision("policyd", None, "defer-if-permit", head="RCPT from mx.example[192.0.2.7]",
                        reply="DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds",
                        from_="a@example.net", to="bob@example.org", helo="<mx.example>", check="greylist",
                        instance="1970.6b14748e.d65ba.0", greylist="new", delay_left=300),
        format_decision("lmtpd", "4F3A21C", "delivered", reply="250 2.0.0 <bob@example.org> Saved",
                        from_="a@example.net", to="bob@example.org", detail="stored=INBOX", delay="0.037"),
    ]
    assert block.splitlines() == expected


def test_socketmap_lines_are_the_rendered_ones():
    """The back-end and relay lines are what owlery.app.postfix.socketmap_tables gives (the
    lines tests/socketmap/test_postfix_tables.py loads into a real Postfix)."""
    from owlery.app.postfix import socketmap_tables
    blocks = literal_blocks(section("An LDAP directory: ``owlery socketmap``"))
    expected = ["\n".join(f"{n} = {v}".rstrip() for n, v in socketmap_tables(Settings(), role))
                for role in ("backend", "relay")]
    assert blocks == expected


def test_imapsieve_configuration_is_the_shipped_and_tested_one():
    """The README's block is contrib/dovecot/90-owlery-imapsieve.conf without its comments and
    blank lines (the file tests/e2e/test_spam_learn_imapsieve.py runs)."""
    [block] = literal_blocks(section("Mailbox upkeep"))[-1:]
    shipped = (ROOT / "contrib" / "dovecot" / "90-owlery-imapsieve.conf").read_text()
    lines = [line for line in shipped.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    expected = "\n".join(line if line.startswith(("protocol", "plugin", "}")) else "  " + line.strip()
                         for line in lines)
    assert block == expected
