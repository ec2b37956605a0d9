"""Hostile header fields against the auth stages: DMARC's Author Domain (RFC 7489 6.6.1), forged A-R (RFC 8601 5).

Through the adapter and a fake context (tests/milters/conftest.py's milter_env, DNS stub),
plus unit tables for milters.stages.dmarc.author_domain and milters.stages.authres.is_ours.
"""

import Milter
import pytest

from milters.session import Header
from milters.stages.authres import is_ours, normalise_authserv_id, parse_authserv_id
from milters.stages.dmarc import BadFrom, author_domain

REST = (b"To: bob@example.com\r\nSubject: hello\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
        b"Message-ID: <1@example.net>\r\n\r\nHello Bob\r\n")
IN = dict(sender="<alice@example.net>", client=("mail.example.net", "192.0.2.10"))
OURS = "mx.owlery.test"          # tests/milters/conftest.py's milter_authserv_id


def ar(ctx):
    return ctx.header_value("Authentication-Results")


@pytest.fixture
def verifier(milter_env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    return milter_env()


# ---- DMARC: the From field -----------------------------------------------------------------

BAD_FROMS = [
    (b"", "no From header field"),
    (b"From: alice@example.net\r\nFrom: alice@example.net\r\n", "more than one From header field"),
    (b"From: alice@example.net\r\nfrom: eve@example.org\r\n", "more than one From header field"),
    (b"From: alice@example.net, bob@example.org\r\n", "more than one address"),
    (b"From: Friends: alice@example.net, bob@example.org;\r\n", "more than one address"),
    (b"From: Undisclosed:;\r\n", "no address"),
    (b"From: \r\n", "no address"),
    (b"From: alice@example.net bob@example.org\r\n", "cannot be parsed"),
    (b"From: <alice@example.net> junk\r\n", "cannot be parsed"),
    (b"From: a@b@example.net\r\n", "cannot be parsed"),
    (b"From: Alice <alice@>\r\n", "cannot be parsed"),
    (b"From: alice\r\n", "cannot be parsed"),
    (b"From: <>\r\n", "cannot be parsed"),
    (b"From: alice@[192.0.2.1]\r\n", "not a domain name"),
    (b"From: alice@exa$mple.net\r\n", "not a domain name"),
    (b"From: " + b"(" * 3000 + b"alice@example.net\r\n", "cannot be parsed"),
    (b"From: " + b"x" * 5000 + b"@example.net\r\n", "too long"),
]


@pytest.mark.parametrize("from_fields,why", BAD_FROMS)
def test_from_without_one_author_domain_is_rejected(verifier, from_fields, why):
    code, ctx = verifier(from_fields + REST, **IN)
    assert code == Milter.REJECT
    [(rcode, xcode, text)] = ctx.replies
    assert (rcode, xcode) == ("550", "5.7.1")
    assert why in text and "From" in text


GOOD_FROMS = [
    b"From: alice@example.net\r\n",
    b"From: Alice <alice@example.net>\r\n",
    b"From: \"Smith, Alice\" <alice@example.net>\r\n",
    b"From: \"bob@example.org\" <alice@example.net>\r\n",
    b"From: alice@example.net (Alice)\r\n",
    b"From: (c) Alice (x) <alice(y)@(z)EXAMPLE.NET> (w)\r\n",
    b"From: Friends: Alice <alice@example.net>;\r\n",
    b"From: =?utf-8?q?J=C3=B6rg?= <alice@example.net>\r\n",
    b"From: Alice\r\n <alice@example.net>\r\n",                      # folded
    b"From: Alice <@relay.example:alice@example.net>\r\n",          # obsolete route, still one address
]


@pytest.mark.parametrize("from_field", GOOD_FROMS)
def test_one_author_domain_is_evaluated(verifier, from_field):
    code, ctx = verifier(from_field + REST, **IN)
    assert code == Milter.ACCEPT, ctx.replies
    assert "dmarc=fail" in ar(ctx) and "header.from=example.net" in ar(ctx)


def message_with(*froms):
    class Msg:
        headers = [Header("From", b" " + v) for v in froms]

        def get_all(self, name):
            return [h for h in self.headers if h.name.lower() == name.lower()]
    return Msg()


@pytest.mark.parametrize("value,domain", [
    (b"alice@Example.NET", "example.net"),
    ("Jörg <jörg@bücher.example>".encode(), "xn--bcher-kva.example"),   # its A-label (RFC 8616)
    (b"a@sub_domain.example.net", "sub_domain.example.net"),
])
def test_author_domain(value, domain):
    assert author_domain(message_with(value)) == domain


@pytest.mark.parametrize("value", [
    b"alice@example.net\xff",                 # not UTF-8: Header.text makes it U+FFFD
    b"alice@" + b"a" * 64 + b".example",      # label over 63 octets
    b"alice@example..net",
    b"alice@.",
])
def test_author_domain_refuses(value):
    with pytest.raises(BadFrom):
        author_domain(message_with(value))


# ---- forged Authentication-Results ----------------------------------------------------------

FORGED = [
    'mx.owlery.test; dkim=pass header.d=example.net',
    '"mx.owlery.test"; dkim=pass header.d=example.net',
    'mx.owlery.test.; dkim=pass header.d=example.net',
    '"MX.Owlery.Test."; dkim=pass header.d=example.net',
    'MX.OWLERY.TEST; dkim=pass header.d=example.net',
    'mx.owlery.test 1; dkim=pass header.d=example.net',
    '(forged) mx.owlery.test; dkim=pass header.d=example.net',
    '(a; "b" (nested \\) )) "mx.owlery.test" (x) 1 (y); dmarc=pass',
    'mx.owlery.test(c);dkim=pass',
    'mx.owlery.test; garbage !!! ;;',                      # too broken for any parser
    'mx.owlery.test',
    ' mx.owlery.test\r\n\t1 ; spf=pass',                   # folded
]
FOREIGN = [
    'other.example; spf=pass',
    'mx.owlery.test.evil.example; dkim=pass',
    'evil.mx.owlery.test; dkim=pass',
    '"mx.owlery.test x"; dkim=pass',
    '(unclosed mx.owlery.test; dkim=pass',                 # all comment: no authserv-id at all
    '',
]


@pytest.mark.parametrize("value", FORGED)
def test_forged_header_with_our_id_is_removed(verifier, value):
    raw = (b"Authentication-Results: other.example; spf=pass\r\n"
           + b"Authentication-Results: " + value.encode() + b"\r\n"
           + b"From: Alice <alice@example.net>\r\n" + REST)
    code, ctx = verifier(raw, **IN)
    assert code == Milter.ACCEPT
    assert ctx.changed == [("Authentication-Results", 2, None)]


def test_only_ours_removed_among_many(verifier):
    raw = b"".join(b"Authentication-Results: " + v.encode() + b"\r\n" for v in FOREIGN[:4] + FORGED[:4])
    code, ctx = verifier(raw + b"From: alice@example.net\r\n" + REST, **IN)
    assert code == Milter.ACCEPT
    assert ctx.changed == [("Authentication-Results", i, None) for i in (8, 7, 6, 5)]


@pytest.mark.parametrize("value", FORGED)
def test_is_ours(value):
    assert is_ours(value.replace("\r\n", ""), OURS)
    assert is_ours(value.replace("\r\n", ""), OURS.upper() + ".")


@pytest.mark.parametrize("value", FOREIGN)
def test_is_not_ours(value):
    assert not is_ours(value, OURS)


@pytest.mark.parametrize("value,authserv", [
    ('"mx.example.org"; none', "mx.example.org"),
    ('"mx.ex\\"ample"; none', 'mx.ex"ample'),
    ("(a(b)c) mx.example.org.; none", "mx.example.org."),
    ('"unclosed', "unclosed"),
    ("((((", ""),
])
def test_parse_authserv_id_as_written(value, authserv):
    assert parse_authserv_id(value) == authserv


def test_normalise_and_empty_ours():
    assert normalise_authserv_id(" MX.Example.Org. ") == "mx.example.org"
    assert not is_ours("; none", "")                   # an unset id matches nothing, not every header
