"""Charset labels a sender chose, turned into the name of one of Python's codecs, safely.

Python caches every name codecs.lookup is asked for, found or not (encodings._cache and the
codec registry's cache), for the life of the process: sender-chosen labels ("x-1", "x-2", ...,
"utf--8") would grow a daemon's memory without bound. codec_name() answers from the list of
Python's own codec modules and its alias table, so only real names reach codecs.lookup.
Used by the Sieve MIME reader, the milter's MIME parameters, the web's message view (part
charsets, RFC 2231 file names) and the quarantine notices (RFC 2047 words: decode_header_text).
Tests: tests/fuzz/test_sieve_message.py::test_regression_charset_labels_do_not_pile_up,
tests/core/test_charsets.py.
"""

from __future__ import annotations

import encodings
import encodings.aliases
import os


def codec_name(charset: str) -> str | None:
    """The name of the module of Python's `encodings` package that `charset` names, as Python's
    codec search finds it (normalized, through the aliases), or None when there is none. Only
    these names reach codecs.lookup: Python caches every name it is asked for, found or not
    (encodings._cache, the codec registry's cache), for the life of the process, so sender-
    chosen labels ("x-1", "x-2", ..., "utf--8", "utf---8") would grow it without bound."""
    if "\0" in charset:
        return None                     # (codecs.lookup refuses it)
    norm = encodings.normalize_encoding(charset.lower())
    aliases = encodings.aliases.aliases
    name = aliases.get(norm) or aliases.get(norm.replace(".", "_")) or norm
    return name if name in _codec_modules() else None


def _codec_modules() -> frozenset[str]:
    """The modules of the `encodings` package (listed once, when a message first names a
    charset: pkgutil would cost the LDA ~3 ms of imports on every delivery; kept here, not in
    functools.cache, whose module costs it more)."""
    if _CODEC_MODULES:
        return _CODEC_MODULES[0]
    names = set()
    for folder in encodings.__path__:
        try:
            names.update(n.split(".", 1)[0] for n in os.listdir(folder) if n.endswith((".py", ".pyc")))
        except OSError:
            pass
    if not names:                       # (not plain files: a zip or frozen build)
        import pkgutil
        names.update(m.name for m in pkgutil.iter_modules(encodings.__path__))
    _CODEC_MODULES.append(frozenset(names - {"__init__", "aliases"}))
    return _CODEC_MODULES[0]


_CODEC_MODULES: list[frozenset[str]] = []


def decode_header_text(raw: str) -> str:
    """A header value with its RFC 2047 encoded words decoded, as email.header's
    decode_header + make_header give it, but with each charset label asked of Python's codecs
    only under its real codec name (see codec_name). Raises what they raise on words that do
    not decode (ValueError, UnicodeError, email.errors.HeaderParseError) and LookupError for a
    label that names no codec, so callers keep their fallback. (The milter's banned-file check
    has its own, more lenient decoder: milters/mime_params.py decode_words.)"""
    import email.header
    pairs = []
    for text, charset in email.header.decode_header(raw):
        if charset and charset != "unknown-8bit":     # (email reads these two without a codec)
            name = codec_name(charset)
            if name is None:
                raise LookupError(f"no codec for charset {charset[:40]!r}")
            charset = name
        pairs.append((text, charset))
    return str(email.header.make_header(pairs))
