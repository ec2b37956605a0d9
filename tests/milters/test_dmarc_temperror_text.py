"""DMARC temperror in Authentication-Results says what failed for which name, never which DNS server.

RFC 7489 11.2 / RFC 8601 2.3: dmarc=temperror with a comment. The comment reaches whoever
reads the message; dnspython's exception texts name our DNS server and port ("Server
Do53:127.0.0.1@5353 answered SERVFAIL"), so the comment uses owlery.dns.failure_text, the
wording SPF's temperror reply uses ("DNS timeout for NAME", "DNS server failure for NAME");
the log line keeps dnspython's detail for the operator. DNS stub: tests/harness/dns.py.
"""

from __future__ import annotations

import logging

import Milter
import pytest

from owlery.dns import failure_text
from tests.milters.conftest import make_settings
from tests.milters.test_auth_stages import MSG, ar

IN = dict(sender="<alice@example.net>", client=("mail.example.net", "192.0.2.10"), helo="mail.example.net")


@pytest.fixture
def verify(dns, key_dir):
    """run(raw, **drive) -> (code, ctx) through the auth stages, DNS time per lookup 0.5 s."""
    from milters.adapter import make_factory
    from milters.stages import Services, StagePipeline
    from milters.testing import FakeMilterContext, drive
    from owlery.dns import build_resolver

    settings = make_settings(
        key_dir[0], dns_nameservers=["127.0.0.1"], dns_port=dns.port, dns_timeout=0.5, milter_spf_source="none"
    )
    cls = make_factory(settings, StagePipeline(settings, Services(resolver=build_resolver(settings))))

    def run(raw, **kw):
        ctx = FakeMilterContext()
        return drive(cls(), ctx, raw, **kw), ctx

    return run


def _no_server(text: str, port: int) -> None:
    assert "127.0.0.1" not in text and str(port) not in text and "Do53" not in text, text


def test_servfail_names_the_record_not_the_server(verify, dns, caplog):
    dns.fail("_dmarc.example.net")
    with caplog.at_level(logging.INFO, logger="owlery.milter"):
        code, ctx = verify(MSG, **IN)
    assert code == Milter.ACCEPT
    assert "dmarc=temperror (DNS server failure for _dmarc.example.net) header.from=example.net" in ar(ctx)
    _no_server(ar(ctx), dns.port)
    # the operator's log keeps dnspython's detail
    assert any("_dmarc.example.net" in r.getMessage() and "SERVFAIL" in r.getMessage() for r in caplog.records)


def test_timeout_names_the_record_not_the_server(verify, dns):
    dns.drop("_dmarc.example.net")
    code, ctx = verify(MSG, **IN)
    assert code == Milter.ACCEPT
    assert "dmarc=temperror (DNS timeout for _dmarc.example.net) header.from=example.net" in ar(ctx)
    _no_server(ar(ctx), dns.port)


def test_organizational_domain_failure_names_that_record(verify, dns):
    """No record of the subdomain's own, the organizational domain's lookup fails: that name."""
    dns.fail("_dmarc.example.net")
    raw = MSG.replace(b"From: Alice <alice@example.net>", b"From: Alice <alice@news.example.net>")
    _, ctx = verify(raw, **IN)
    assert "dmarc=temperror (DNS server failure for _dmarc.example.net) header.from=news.example.net" in ar(ctx)
    _no_server(ar(ctx), dns.port)


def test_failure_text_reads_through_a_wrapping_exception():
    import dns.exception
    import dns.resolver

    def wrapped(error):
        try:
            try:
                raise error
            except dns.exception.DNSException as e:
                raise RuntimeError(f"wrapped: {e}") from None
        except RuntimeError as outer:
            return outer

    server = "Server Do53:192.0.2.53@53 answered SERVFAIL"
    cases = [
        (dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]), "DNS timeout for x.example"),
        (dns.exception.Timeout(), "DNS timeout for x.example"),
        (dns.resolver.NoNameservers(server), "DNS server failure for x.example"),
        (dns.exception.SyntaxError(server), "DNS error for x.example"),
        (ValueError(server), "DNS error for x.example"),
        (None, "DNS error for x.example"),
    ]
    for error, text in cases:
        assert failure_text("x.example", error) == text
        if isinstance(error, dns.exception.DNSException):
            assert failure_text("x.example", wrapped(error)) == text


def test_dkim_key_failure_names_the_key_record_not_the_server(milter_env, dns):
    """The DKIM (and ARC, same lookup) temperror comment comes from milters.dns.DnsTempError,
    whose text is failure_text's: the key record, never the server that failed."""
    from tests.milters.test_auth_stages import OUT, signed_copy

    _, ctx = milter_env(dkim_sign_keys={"example.net": ["r1"]})(MSG, **OUT)
    dns.fail("r1._domainkey.example.net")
    code, ctx2 = milter_env(dmarc_reject_enforce=True)(signed_copy(ctx, MSG), **IN)
    assert code == Milter.ACCEPT
    assert "dkim=temperror (DNS server failure for r1._domainkey.example.net)" in ar(ctx2)
    _no_server(ar(ctx2), dns.port)
