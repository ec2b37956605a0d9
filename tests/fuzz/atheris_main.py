"""Coverage-guided fuzzing of one tests/fuzz target with atheris (libFuzzer), for long runs by hand.

Usage: python -m tests.fuzz.atheris_main TARGET WORKDIR [SECONDS] [libFuzzer options...]
(scripts/fuzz --atheris does this). The target's seeds (tests/fuzz/corpus/, shaped into the
input its `fuzz_one` reads) are copied to WORKDIR/corpus, which libFuzzer then grows; an input
that breaks a property (AssertionError) or crashes is saved as WORKDIR/crash-<sha1>. Turn one
into an explicit example of the target's test file. atheris is not a dependency of the
project: install it by hand (`.venv/bin/pip install atheris`); nothing in CI imports this.
Tests: tests/fuzz/test_policyd_protocol.py, tests/fuzz/test_lmtp.py, tests/fuzz/test_milter_session.py,
tests/fuzz/test_sieve.py, tests/fuzz/test_banned.py, tests/fuzz/test_maildirsize.py, tests/fuzz/test_socketmap.py,
tests/fuzz/test_managesieve.py, tests/fuzz/test_web_http.py, tests/fuzz/test_sieve_message.py,
tests/fuzz/test_amavis_conf.py, tests/fuzz/test_bounded_http.py, tests/fuzz/test_managesieve_auth.py (each has `fuzz_one`)
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys

from tests.fuzz.fuzzlib import corpus, corpus_files

FIRST_MESSAGE = corpus("milter", ".eml")[0]

# target -> (corpus folder, file suffix, seed file -> fuzz_one input)
TARGETS = {
    "policyd_protocol": ("policyd", "", lambda s: b"\x00\xff" + s),     # limits 0, reads of 256 bytes
    "lmtp": ("lmtp", "", lambda s: b"\x3f" + s),                         # reads of 64 bytes
    "milter_session": ("milter", ".eml", lambda s: s),
    "sieve": ("sieve", ".sieve", lambda s: s + b"\0" + FIRST_MESSAGE),   # script NUL message
    "banned": ("banned", "", lambda s: s),
    "maildirsize": ("maildirsize", "", lambda s: s),
    "socketmap": ("socketmap", "", lambda s: b"\x80\x0f" + s),         # the adapter too, reads of 16 bytes
    "managesieve": ("managesieve", "", lambda s: b"\x00\x1f" + s),     # before login, reads of 32 bytes
    "web_http": ("web_http", "", lambda s: b"\x00" + s),
    "sieve_message": ("sieve_message", ".eml", lambda s: s),
    "amavis_conf": ("amavis_conf", ".conf", lambda s: s),
    "bounded_http": ("web_http", "", lambda s: b"\x00" + s),
    "managesieve_auth": ("managesieve", "", lambda s: b"\x00" + s),          # local client, one read
}

# libFuzzer's per-input time limit, seconds. sieve_message's doubling check reads a ~64 KiB and a
# ~128 KiB message up to 16 times under atheris' instrumentation: 30 s was exceeded on a loaded
# machine by an input that reads in linear time (its ratio check is what finds a slow input).
TIMEOUTS = {"sieve_message": 120}


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in TARGETS:
        print(__doc__.split("\n\n")[1], f"\nTargets: {' '.join(TARGETS)}", file=sys.stderr)
        return 2
    import atheris
    target, work = argv[1], argv[2]
    seconds = argv[3] if len(argv) > 3 and argv[3].isdigit() else "600"
    extra = argv[4:] if len(argv) > 3 and argv[3].isdigit() else argv[3:]
    folder, suffix, shape = TARGETS[target]
    seeds = os.path.join(work, "corpus")
    os.makedirs(seeds, exist_ok=True)
    for path in corpus_files(folder, suffix):
        data = shape(path.read_bytes())
        with open(os.path.join(seeds, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    with atheris.instrument_imports(include=["policyd", "milters", "sieve", "owlery", "socketmap", "web", "twisted.web"]):
        module = importlib.import_module(f"tests.fuzz.test_{target}")
    atheris.Setup([argv[0], f"-max_total_time={seconds}", f"-artifact_prefix={work}/", f"-timeout={TIMEOUTS.get(target, 30)}",
                   *extra, seeds], module.fuzz_one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
