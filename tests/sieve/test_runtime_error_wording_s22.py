"""Runtime errors of action limits and conflicts worded as Pigeonhole words them (sieve/result.py),
with the line each is reported at: `test_error :contains` in Pigeonhole's testsuite and a
postmaster comparing logs read these texts. Recorded from Debian's sieve-test 0.5.19
(`sieve-test -e -o plugin/sieve_max_redirects=4 -o plugin/sieve_max_actions=32 SCRIPT MSG`, run
as nobody), and checked against it live by test_the_texts_are_sieve_tests.

Before: "reject action conflicts with earlier fileinto action", "duplicate vacation action not
allowed" with no place, "(sieve_max_redirects 4)", and a reject's conflict with a later store
reported at the store's line (Pigeonhole reports it at the reject's, naming the store's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from owlery.settings import Settings
from sieve.api import Envelope, compile_script, run

SETTINGS = Settings().replace(sieve_max_redirects=4, sieve_max_actions=32)
MESSAGE = b"From: a@b.example\nTo: c@d.example\nSubject: x\n\nbody\n"
ENVELOPE = Envelope(mail_from="a@b.example", rcpt_to="c@d.example", orig_rcpt="c@d.example", auth_user=None)
SIEVE_TEST = shutil.which("sieve-test") or "/usr/bin/sieve-test"

# name: (script, line reported, text with NAME for the script's name)
CASES = {
    "redirects": ("".join(f'redirect "{c}@x.example";\n' for c in "abcde"), 5,
                  "number of redirect actions exceeds policy limit (5 > 4)"),
    "actions": ('require ["fileinto"];\n' + "".join(f'fileinto "F{i}";\n' for i in range(40)), 34,
                "total number of actions exceeds policy limit (33 > 32)"),
    "vacations": ('require ["vacation"];\nvacation "a";\nvacation "b";\n', 3,
                  "duplicate vacation action not allowed (previously triggered one was here: NAME: line 2)"),
    "handles": ('require ["vacation"];\nvacation :handle "a" "a";\nvacation :handle "b" "b";\n', 3,
                "duplicate vacation action not allowed (previously triggered one was here: NAME: line 2)"),
    "rejects": ('require ["reject"];\nreject "no";\nreject "again";\n', 3,
                "duplicate reject/ereject action not allowed (previously triggered one was here: NAME: line 2)"),
    "store-reject": ('require ["reject","fileinto"];\nfileinto "X";\nreject "no";\n', 3,
                     "reject/ereject action conflicts with other action: the store action (NAME: line 2) "
                     "tries to deliver the message"),
    "reject-store": ('require ["reject","fileinto"];\nreject "no";\nfileinto "X";\n', 2,
                     "reject/ereject action conflicts with other action: the store action (NAME: line 3) "
                     "tries to deliver the message"),
    "keep-reject": ('require ["reject"];\nkeep;\nreject "no";\n', 3,
                    "reject/ereject action conflicts with other action: the store action (NAME: line 2) "
                    "tries to deliver the message"),
    "reject-keep": ('require ["reject"];\nreject "no";\nkeep;\n', 2,
                    "reject/ereject action conflicts with other action: the store action (NAME: line 3) "
                    "tries to deliver the message"),
    "redirect-reject": ('require ["reject"];\nredirect "a@x.example";\nreject "no";\n', 3,
                        "reject/ereject action conflicts with other action: the redirect action (NAME: line 2) "
                        "tries to deliver the message"),
    "reject-redirect": ('require ["reject"];\nreject "no";\nredirect "a@x.example";\n', 2,
                        "reject/ereject action conflicts with other action: the redirect action (NAME: line 3) "
                        "tries to deliver the message"),
    "reject-vacation": ('require ["reject","vacation"];\nreject "no";\nvacation "x";\n', 3,
                        "vacation action conflicts with other action: the reject action (NAME: line 2) "
                        "also sends a response back to the sender"),
    "vacation-reject": ('require ["reject","vacation"];\nvacation "x";\nreject "no";\n', 3,
                        "reject/ereject action conflicts with other action: the vacation action (NAME: line 2) "
                        "also sends a response to the sender"),
}


def _owlery(name: str, source: str) -> str:
    result = run(compile_script(source.encode(), name=name, settings=SETTINGS), MESSAGE, ENVELOPE, settings=SETTINGS)
    assert result.status in ("error", "resource_limit") and len(result.errors) == 1, result
    return result.errors[0]


@pytest.mark.parametrize("name", CASES)
def test_the_error_reads_as_pigeonholes(name):
    source, line, text = CASES[name]
    assert _owlery(name, source) == f"line {line}: " + text.replace("NAME", name)


def test_the_texts_are_sieve_tests():
    """Each recorded text is what sieve-test prints now (the line and the text, with its name)."""
    work = tempfile.mkdtemp(prefix="owlery-rt-wording-")
    try:
        os.chmod(work, 0o777)
        msg = os.path.join(work, "m.eml")
        with open(msg, "wb") as f:
            f.write(MESSAGE)
        differ = []
        for name, (source, line, text) in CASES.items():
            path = os.path.join(work, f"{name}.sieve")
            with open(path, "w") as f:
                f.write(source)
            argv = [SIEVE_TEST, "-e", "-o", "plugin/sieve_max_redirects=4", "-o", "plugin/sieve_max_actions=32",
                    path, msg]
            if os.geteuid() == 0:
                argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=work,
                                 env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work})
            want = f"{name}: line {line}: error: {text.replace('NAME', name)}."
            if want not in out.stdout + out.stderr:
                differ.append(f"{name}: want {want!r}\n{out.stdout}{out.stderr}")
        assert not differ, "\n".join(differ)
    finally:
        shutil.rmtree(work, ignore_errors=True)
