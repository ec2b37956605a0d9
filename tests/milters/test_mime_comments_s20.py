"""MIME fields with RFC 822 comments (RFC 2045 1: allowed in every MIME field but
Content-Disposition, ignored by readers) must not hide attachments from the banned stage:
"multipart/mixed (x)" is a multipart whose parts are walked, and "base64 (x)" a base64 body
that is decoded before its content is looked at (milters/mime_params.py uncommented, mechanism)."""

from __future__ import annotations

import base64

import pytest

from milters import mime_params
from milters.stages.banned import find_banned
from tests.milters.test_banned_hostile import HEAD
from tests.milters.test_content_banned import MZ, RULES, zip_of


def _message(ctype: str, cte: str, name: str, body: bytes) -> bytes:
    return (HEAD + f'Content-Type: {ctype}; boundary="b"\r\n\r\n--b\r\n'.encode()
            + f'Content-Type: application/octet-stream; name="{name}"\r\n'.encode()
            + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
            + base64.encodebytes(body) + b"\r\n--b--\r\n")


@pytest.mark.parametrize("ctype", ["multipart/mixed (a comment)", "multipart/mixed(x)", "(x) multipart/mixed",
                                   "multipart/mixed (x;y)"])
def test_a_commented_multipart_is_walked(ctype):
    found = [str(f) for f in find_banned(_message(ctype, "base64", "run.exe", MZ), RULES)]
    assert any("run.exe" in f for f in found), found


@pytest.mark.parametrize("cte", ["base64 (x)", "(x) base64", "base64(x)", "base64; y=z", "BASE64 (x)"])
def test_a_commented_base64_body_is_decoded(cte):
    # the name says .zip (allowed); only the decoded body shows the executable inside
    found = [str(f) for f in find_banned(_message("multipart/mixed", cte, "files.zip", zip_of(**{"a.exe": MZ})), RULES)]
    assert any("a.exe" in f for f in found), found


def test_mechanism_and_main_values():
    assert mime_params.mechanism("  Quoted-Printable (x) ") == "quoted-printable"
    assert mime_params.mechanism("(only a comment)") == ""
    assert mime_params.parse('text/plain (c); charset="a (b)"') == ("text/plain", [("charset", "a (b)")])
