"""The per-message fast paths of the inbound milter give exactly what they replace.

dkimpy's relaxed canonicalisation, its b= removal, its RSA verification and its message parse
(milters.stages.dkim_verify.speed_up_dkimpy, dkimpy_parts), against dkimpy's own code loaded
afresh; the stage resolver's answer memo (milters.adapter.AnswerMemo); the Public Suffix
List's remembered organizational domains.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random

import pytest

from milters.session import MilterSession
from milters.stages.dkim_verify import dkimpy_parts, speed_up_dkimpy
from milters.testing import split_message
from tests.milters.conftest import make_settings
from tests.milters.session_driver import FixedPipeline


def _fresh(module: str, name: str):
    """A new copy of a dkimpy module, untouched by speed_up_dkimpy."""
    spec = importlib.util.find_spec(module)
    fresh = importlib.util.spec_from_file_location(name, spec.origin)
    mod = importlib.util.module_from_spec(fresh)
    fresh.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dkimpy_original():
    speed_up_dkimpy()
    return _fresh("dkim.canonicalization", "_dkim_canonicalization_original")


def _texts(seed: int, count: int = 400) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = [b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r", b"a", b"b=", b";", b"x", b"=", b"/+"]
    return [b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(count)] + [
        b"", b" ", b"\t", b"The quick brown fox.\r\n" * 3, b"two  spaces \r\n", b"tab\there\t\r\n"]


def test_relaxed_canonicalisation_is_dkimpys(dkimpy_original):
    import dkim.canonicalization as patched
    for text in _texts(1):
        assert patched.compress_whitespace(text) == dkimpy_original.compress_whitespace(text), text
        assert patched.strip_trailing_whitespace(text) == dkimpy_original.strip_trailing_whitespace(text), text
        assert patched.unfold_header_value(text) == dkimpy_original.unfold_header_value(text), text
        headers = [(b"Subject ", text), (b"X", b" " + text)]
        assert patched.Relaxed.canonicalize_headers(headers) == dkimpy_original.Relaxed.canonicalize_headers(headers)
        assert patched.Relaxed.canonicalize_body(text) == dkimpy_original.Relaxed.canonicalize_body(text), text


def test_btag_removal_is_dkimpys(dkimpy_original):
    import dkim
    original = _fresh("dkim", "_dkim_original").RE_BTAG
    rng = random.Random(2)
    pieces = [b" ", b"\t", b"\r\n", b"\r\n ", b"\n", b"b", b"=", b"b=", b";", b" b =", b"A", b"z9+/", b"=="]
    values = [b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30))) for _ in range(2000)]
    values.append(b" v=1; a=rsa-sha256; d=example.net; s=sel;\r\n b=abc/+=\r\n\t def==; bh=xyz=\r\n")
    for value in values:
        assert dkim.RE_BTAG.sub(b"\\1", value) == original.sub(b"\\1", value), value


def test_rsa_verification_is_dkimpys():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    import dkim
    import dkim.crypto
    speed_up_dkimpy()
    fast = dkim.crypto.RSASSA_PKCS1_v1_5_verify
    python_verify = fast.python_verify
    assert dkim.RSASSA_PKCS1_v1_5_verify is fast
    key = rsa.generate_private_key(65537, 2048)
    numbers = key.public_key().public_numbers()
    pk = {"modulus": numbers.n, "publicExponent": numbers.e}
    signature = key.sign(b"signed data", padding.PKCS1v15(), hashes.SHA256())
    as_int = int.from_bytes(signature, "big")
    cases = [
        (b"signed data", signature),                                     # valid
        (b"other data", signature),                                      # wrong digest
        (b"signed data", signature[:-1] + bytes([signature[-1] ^ 1])),   # tampered
        (b"signed data", (as_int + numbers.n).to_bytes(257, "big")),     # >= n: dkimpy reduces it
        (b"signed data", signature[1:]),                                 # short
        (b"signed data", b""),
        (b"signed data", b"\x00" * 256),
        (b"signed data", (numbers.n - 1).to_bytes(256, "big")),
    ]
    sha1_signature = key.sign(b"old", padding.PKCS1v15(), hashes.SHA1())
    for data, sig in cases:
        for name in ("sha256", "sha1"):
            digest = hashlib.new(name, data)
            assert fast(digest, sig, pk) == python_verify(hashlib.new(name, data), sig, pk), (data, sig[:4], name)
    assert fast(hashlib.sha256(b"signed data"), signature, pk) is True
    assert fast(hashlib.sha1(b"old"), sha1_signature, pk) is True
    # A key OpenSSL will not take (an even exponent) still gets dkimpy's answer.
    odd = {"modulus": numbers.n, "publicExponent": 4}
    assert fast(hashlib.sha256(b"x"), signature, odd) == python_verify(hashlib.sha256(b"x"), signature, odd)


MESSAGES = [
    b"DKIM-Signature: v=1; a=rsa-sha256;\n b=abc\nFrom: a@example.net\nSubject: hi\n\nbody\nline two\n",
    b"From: a@example.net\nSubject: folded\n\twith a tab\n   and spaces\n\nbody  with  blanks \t\n\n\n",
    b"From: a@example.net\nX-Empty:\nX-Colon: a: b\n\n",
    b"From: a@example.net\n\n",
]


@pytest.mark.parametrize("raw", MESSAGES)
@pytest.mark.parametrize("body_extra", [b"", b"bare\nLF and\r\nCRLF\n", b"lone\rCR\r\n"])
def test_dkimpy_parts_are_rfc822_parse_of_the_message(raw, body_extra):
    import dkim
    session = MilterSession(make_settings(), FixedPipeline([]))
    session.connect("c.test", "192.0.2.1", {})
    session.mail_from("<a@example.net>", (), {})
    fields, body = split_message(raw)
    for name, value in fields:
        session.header(name, value)
    session.body(body + body_extra)
    message = session.message
    expected = dkim.rfc822_parse(message.as_bytes())
    assert dkimpy_parts(message) == (expected[0], expected[1])
    first = dkimpy_parts(message)
    first[0].reverse()              # dkimpy's ARC reorders its list: the next caller is unaffected
    assert dkimpy_parts(message) == (expected[0], expected[1])
    session.body(b"more\r\n")      # a change empties the shared views
    assert dkimpy_parts(message)[1] == dkim.rfc822_parse(message.as_bytes())[1]


def test_dkimpy_parts_fall_back_for_fields_dkimpy_reads_otherwise():
    import dkim
    session = MilterSession(make_settings(), FixedPipeline([]))
    session.mail_from("<a@example.net>", (), {})
    session.header("From", b" a@example.net")
    session.header("X-Odd Name", b" value")          # dkimpy refuses this field
    session.body(b"body\r\n")
    with pytest.raises(dkim.MessageFormatError):
        dkim.rfc822_parse(session.message.as_bytes())
    with pytest.raises(dkim.MessageFormatError):
        dkimpy_parts(session.message)


def test_dkim_verify_passes_with_the_shared_parse(milter_env, key_dir):
    import dkim

    from milters import dkimkeys
    run = milter_env(milter_inbound_stages=["dkim_verify", "arc_verify", "authres"])
    with open(dkimkeys.key_path(str(key_dir[0]), "example.net", "r1"), "rb") as f:
        private = f.read()
    message = (b"From: Alice <alice@example.net>\r\nTo: bob@example.test\r\nSubject: a  folded\r\n"
               b"\tsubject\r\n\r\nHello  world \t\r\nsecond line\r\n\r\n")
    for canonicalize in ((b"relaxed", b"relaxed"), (b"simple", b"simple")):
        signature = dkim.sign(message, b"r1", b"example.net", private, canonicalize=canonicalize,
                              include_headers=[b"from", b"to", b"subject"])
        code, ctx = run(signature + message, sender="<alice@example.net>")
        assert "dkim=pass" in ctx.header_value("Authentication-Results"), canonicalize


class _Answer:
    def __init__(self, expiration):
        self.expiration = expiration


class _Resolver:
    def __init__(self):
        self.calls = []
        self.port = 5353
        self.fail = False

    def resolve(self, qname, rdtype="A", *args, **kwargs):
        self.calls.append((qname, rdtype, kwargs))
        if self.fail:
            raise LookupError("NXDOMAIN")
        return _Answer(expiration=100.0)


def test_answer_memo_gives_the_same_answer_until_it_expires():
    from milters.adapter import AnswerMemo
    now = [50.0]
    resolver = _Resolver()
    memo = AnswerMemo(resolver, size=2, clock=lambda: now[0])
    first = memo.resolve("example.net", "TXT", raise_on_no_answer=False, lifetime=3)
    assert memo.resolve("example.net", "TXT", raise_on_no_answer=False, lifetime=9) is first
    assert len(resolver.calls) == 1
    memo.resolve("example.net", "TXT", raise_on_no_answer=True)      # other arguments: asked
    memo.resolve("example.net", "A", raise_on_no_answer=False)
    assert len(resolver.calls) == 3
    now[0] = 100.0                                                     # expired: asked again
    assert memo.resolve("example.net", "TXT", raise_on_no_answer=False) is not first
    assert len(resolver.calls) == 4
    resolver.fail = True                                               # errors are never remembered
    for _ in range(2):
        with pytest.raises(LookupError):
            memo.resolve("gone.example", "TXT")
    assert len(resolver.calls) == 6
    assert memo.port == 5353                                           # the resolver's attributes


def test_organizational_domains_are_remembered_and_unchanged():
    from milters import psl
    suffixes = psl.PublicSuffixList({"uk", "co.uk", "*.ck"}, {"www.ck"})
    for domain in ("mail.example.co.uk", "example.co.uk", "co.uk", "a.b.c.ck", "www.ck", "x.www.ck", "Mail.Example.CO.UK."):
        expected = suffixes._organizational_domain(domain)
        assert suffixes.organizational_domain(domain) == expected
        assert suffixes.organizational_domain(domain) == expected


def test_tag_values_are_tag_value_of_each_tag():
    from milters.stages.dkim_verify import tag_value, tag_values
    rng = random.Random(4)
    pieces = ["d", "s", "a", "b", "=", ";", " ", "\t", "x", "d=", " s =", "b=ab c", ";a=rsa"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 25)))
        found = tag_values(text, ("d", "s", "a", "b"))
        for tag in ("d", "s", "a", "b"):
            assert found.get(tag) == tag_value(text, tag), (text, tag)
