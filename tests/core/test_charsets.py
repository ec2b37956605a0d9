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


HEADER_VALUES = [
    "plain text", "=?utf-8?Q?caf=C3=A9?=", "=?UTF-8?B?Y2Fmw6k=?= =?iso-8859-1?q?_=E9t=E9?=",
    "before =?latin1?Q?x=E9?= after", "=?utf-8?Q?bad=FF?=", "=?utf-8?B?!!!?=", "=?koi8-r?B?8NLJ18XU?=",
    "=?utf-8?Q?a?=\n =?utf-8?Q?b?=", "=?unknown-8bit?Q?a=E9?=", "=?utf-8*en?Q?lang?=", "=??Q?x?=",
]


@pytest.mark.parametrize("raw", HEADER_VALUES)
def test_header_text_is_what_email_gives_for_known_charsets(raw):
    import email.header

    from owlery.charsets import decode_header_text

    def outcome(fn):
        try:
            return fn(raw)
        except Exception as e:  # noqa: BLE001 - the type is what is compared
            return type(e)
    assert outcome(decode_header_text) == outcome(lambda r: str(email.header.make_header(email.header.decode_header(r))))


def test_quarantine_notices_and_web_file_names_do_not_cache_unknown_labels():
    from owlery.quarantine.digest import display
    from web.mailview import view
    before = _cached_misses()
    for i in range(200):
        words = f"=?x-owlery-notice-{i}?Q?caf=C3=A9?="
        assert display(f"{words} =?utf-8?Q?ok?=") == f"{words} =?utf-8?Q?ok?="    # shown undecoded, as before
        msg = (f"Content-Type: text/plain\nContent-Disposition: attachment; "
               f"filename*=x-owlery-name-{i}''a%C3%A9.txt\n\nx\n").encode()
        assert view(msg).parts[0].filename == "a\u00e9.txt"          # read as UTF-8, as text parts are
    assert _cached_misses() - before == set()
    msg = b"Content-Type: text/plain\nContent-Disposition: attachment; filename*=utf-8''%E2%82%AC.txt\n\nx\n"
    assert view(msg).parts[0].filename == "\u20ac.txt"
