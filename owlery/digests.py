"""SHA-256 without loading OpenSSL where Python has its own.

`hashlib` loads OpenSSL's libcrypto (~3 ms, paid by every in-process LDA run that hashes: the
script cache key, vacation and duplicate tracking, include's cache, generated message ids);
CPython's built-in `_sha256` gives the same digests. Builds without it fall back to hashlib.
Tests: tests/core/test_digests.py
"""

from __future__ import annotations

try:
    from _sha256 import sha256
except ImportError:         # a build without the built-in module
    from hashlib import sha256

__all__ = ["sha256"]
