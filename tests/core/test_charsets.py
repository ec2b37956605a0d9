"""owlery.charsets: sender-chosen charset labels never reach Python's codec caches unless they
name a real codec, in every reader that decodes them (the Sieve MIME reader has its own test:
tests/fuzz/test_sieve_message.py::test_regression_charset_labels_do_not_pile_up)."""

from __future__ import annotations

import encodings

import pytest

from milters import mime_params
from owlery.charsets import codec_name


@pytest.mark.parametrize("label, name", [
    ("utf-8", "utf_8"), ("UTF8", "utf_8"), ("latin1", "latin_1"), ("iso-8859-15", "iso8859_15"),
    ("x-unknown", None), ("utf--8", "utf_8"), ("base64", "base64_codec"), ("a\0b", None), ("", None),
])
def test_codec_name(label, name):
    assert codec_name(label) == name


def _cached_misses() -> set:
    return {k for k, v in encodings._cache.items() if v is None}


def test_milter_mime_parameters_do_not_cache_unknown_labels():
    before = _cached_misses()
    for i in range(200):
        assert mime_params.decode_words(f"=?x-owlery-{i}?Q?caf=C3=A9?=") == "caf\u00e9"
        assert mime_params.values(mime_params.parse(f"attachment; filename*=x-owlery2-{i}''a%C3%A9")[1],
                                  "filename") == ["a\u00e9"]
    assert _cached_misses() - before == set()


def test_web_view_does_not_cache_unknown_labels():
    from web.mailview import view
    before = _cached_misses()
    for i in range(200):
        msg = (f"Subject: x\nContent-Type: text/plain; charset=x-owlery-web-{i}\n\ncaf\u00e9\n").encode()
        assert "caf\u00e9" in view(msg).parts[0].text
    assert _cached_misses() - before == set()
