"""owlery.digests.sha256 gives hashlib's digests, and loading it loads no OpenSSL."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from owlery.digests import sha256

ROOT = Path(__file__).resolve().parents[2]


def test_same_digests_as_hashlib():
    for data in (b"", b"abc", bytes(range(256)) * 1000):
        assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
        assert sha256(data).digest() == hashlib.sha256(data).digest()


def test_loads_no_openssl():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from owlery.digests import sha256; sha256(b'x').hexdigest(); "
            "print(sorted(m for m in ('hashlib', '_hashlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
