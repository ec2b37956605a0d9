"""Local parts with leading, trailing or doubled dots (Japanese mobile addresses such as
`taro..yamada.@docomo.ne.jp`) are addresses, as Pigeonhole reads them; their domain stays strict.

Before: every address test skipped such an address as invalid (RFC 5228 2.7.4: only :all
matched, with the raw field), and `redirect ".japanese@example.com"` or `vacation :from
".x@example.com"` did not compile, though the conformance corpus's own
compile/errors/out-address.sieve lists those redirects under "Ok". Now :localpart and :domain
match, :all gives the addr-spec with the local part quoted (`"a..b."@example.com`, as
Pigeonhole's :all shows it), and redirect sends to that quoted form (sieve-test says the same).
The probes run through sieve-test as well: every :all/:localpart/:domain value agrees.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sieve.actions import Redirect
from sieve.address import AddressError, parse_address_list
from sieve.extensions.core import valid_redirect_address
from tests.sieve.differential import pigeonhole
from tests.sieve.test_differential_fixes_s12 import _run

PROBE = ('require ["fileinto", "mailbox", "variables"];\n'
         'if address :matches :all "to" "*" { fileinto :create "all=${1}"; }\n'
         'if address :matches :localpart "to" "*" { fileinto :create "lp=${1}"; }\n'
         'if address :matches :domain "to" "*" { fileinto :create "dom=${1}"; }\n')

# (To: field, the folders the probe files into), each as sieve-test 0.5.19 gives them
CASES = [
    ("a..b.@example.com", ['all="a..b."@example.com', "lp=a..b.", "dom=example.com"]),
    ("Name <a..b.@example.com>", ['all="a..b."@example.com', "lp=a..b.", "dom=example.com"]),
    ("<.x@example.com>", ['all=".x"@example.com', "lp=.x", "dom=example.com"]),
    (".x@example.com, y.@example.com", ['all=".x"@example.com', "lp=.x", "dom=example.com"]),
    ("..@example.com", ['all=".."@example.com', "lp=..", "dom=example.com"]),
    (".@example.com", ['all="."@example.com', "lp=.", "dom=example.com"]),
    ("a.@b", ['all="a."@b', "lp=a.", "dom=b"]),
    ('"a..b"@example.com', ['all="a..b"@example.com', "lp=a..b", "dom=example.com"]),
    ("plain.dots@example.com", ["all=plain.dots@example.com", "lp=plain.dots", "dom=example.com"]),
    # the domain stays strict: not an address, only :all matches (the raw field)
    ("x@example.com.", ["all=x@example.com."]),
    ("x@.example.com", ["all=x@.example.com"]),
    ("x@exa..mple.com", ["all=x@exa..mple.com"]),
    ("@example.com", ["all=@example.com"]),
]


def _message(to: str) -> bytes:
    return f"From: a@example.org\r\nTo: {to}\r\nSubject: x\r\n\r\nbody\r\n".encode()


def _folders(result) -> list[str]:
    return sorted(a.mailbox for a in result.effective_actions() if hasattr(a, "mailbox") and a.mailbox != "INBOX")


@pytest.mark.parametrize(("to", "folders"), CASES)
def test_address_parts_of_lax_dot_local_parts(to, folders):
    assert _folders(_run(PROBE, _message(to))) == sorted(folders)


def test_the_parser_keeps_the_dots_and_refuses_a_bad_domain():
    (addr,) = parse_address_list("Taro <taro..yamada.@docomo.ne.jp>")
    assert (addr.local, addr.domain) == ("taro..yamada.", "docomo.ne.jp")
    for bad in ("x@example..com", "x@.example.com", "x@example.com.", "@example.com", "a b@example.com"):
        with pytest.raises(AddressError):
            parse_address_list(bad)


@pytest.mark.parametrize("text", [".japanese@example.com", "japanese.@example.com",
                                  "japanese...localpart@example.com", "..japanese...localpart..@example.com",
                                  "Name <..j.@example.com>"])
def test_redirect_to_a_lax_dot_address_compiles_and_sends_the_quoted_form(text):
    local = text.rsplit("<", 1)[-1].split("@")[0]
    assert valid_redirect_address(text) == f'"{local}"@example.com'
    result = _run(f'redirect "{text}";')
    assert [a.address for a in result.effective_actions() if isinstance(a, Redirect)] == [f'"{local}"@example.com']


@pytest.mark.parametrize("text", ["@wrong.example.com", "error@", "Stephan Bosch error@example.org",
                                  " more error @  example.com  ", "Error <stephan@", "x@exa..mple.com"])
def test_what_out_address_sieve_calls_errors_still_are(text):
    assert valid_redirect_address(text) is None


def test_vacation_from_a_lax_dot_address_compiles():
    result = _run('require "vacation";\nvacation :from ".x@example.com" "hi";')
    assert result.status == "ok"


@pytest.fixture(scope="module")
def peer():
    if shutil.which("sieve-test") is None:
        pytest.fail("sieve-test (Debian dovecot-sieve) is not installed: scripts/install-deps --test installs it")
    home = Path(tempfile.mkdtemp(prefix="owlery-laxdots-"))
    try:
        yield pigeonhole.Pigeonhole(home, ("INBOX",))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _sieve_test_folders(peer, to: str) -> list[str]:
    """The folders sieve-test's result names for the probe (its result, not stored: a dot is a
    hierarchy separator, so Dovecot would refuse to store into most of these names)."""
    script = peer._write("probe.sieve", PROBE.encode())
    message = peer._write("probe.eml", _message(to))
    proc = subprocess.run([pigeonhole.SIEVE_TEST, "-c", str(peer.home / "dovecot.conf"), "-C", str(script),
                           str(message)], capture_output=True, timeout=20, env=peer.env, cwd=peer.home,
                          user=peer.uid, group=peer.gid, extra_groups=[] if peer.uid is not None else None)
    out = proc.stdout.decode("utf-8", "replace")
    assert "final result: success" in proc.stderr.decode("utf-8", "replace"), (out, proc.stderr)
    return sorted(m.group(1) for m in re.finditer(r"store message in folder: (.*)", out) if m.group(1) != "INBOX")


def test_sieve_test_gives_the_same_parts(peer):
    """The CASES table is what sieve-test's result holds for each probe."""
    got = {to: _sieve_test_folders(peer, to) for to, _ in CASES}
    assert got == {to: sorted(folders) for to, folders in CASES}
