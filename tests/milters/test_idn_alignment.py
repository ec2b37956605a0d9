"""SMTPUTF8 mail from an internationalised domain: SPF checks the A-label (RFC 8616 section 4),
DMARC looks up _dmarc under the A-label and compares domains in one form (RFC 8616 section 6,
RFC 7489 3.1), so a U-label From domain aligns with its own A-label SPF and DKIM domains.
DNS answers come from the harness DNS stub.
"""

import Milter

ALABEL = "xn--bcher-kva.example"
MSG = ("From: Anna <anna@bücher.example>\r\nTo: bob@example.com\r\nSubject: hallo\r\n"
       "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@xn--bcher-kva.example>\r\n\r\n"
       "Hallo Bob\r\n").encode()


def ar(ctx):
    return ctx.header_value("Authentication-Results")


def test_u_label_from_aligns_with_the_a_label_spf_pass(milter_env, dns):
    dns.set(ALABEL, "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns.set("_dmarc." + ALABEL, "TXT", "v=DMARC1; p=reject")
    code, ctx = milter_env(dmarc_reject_enforce=True)(
        MSG, sender="<anna@bücher.example>", client=("mail.example.net", "192.0.2.10"))
    assert "spf=pass" in ar(ctx), ar(ctx)
    assert "dmarc=pass" in ar(ctx), ar(ctx)
    assert code == Milter.ACCEPT


def test_u_label_from_with_a_label_sender_aligns_too(milter_env, dns):
    dns.set(ALABEL, "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns.set("_dmarc." + ALABEL, "TXT", "v=DMARC1; p=reject")
    code, ctx = milter_env(dmarc_reject_enforce=True)(
        MSG, sender=f"<anna@{ALABEL}>", client=("mail.example.net", "192.0.2.10"))
    assert "spf=pass" in ar(ctx) and "dmarc=pass" in ar(ctx), ar(ctx)


def test_u_label_from_is_rejected_by_its_a_label_policy(milter_env, dns):
    """The policy is found under the A-label: a failing message from the U-label domain is refused."""
    dns.set(ALABEL, "TXT", "v=spf1 -all")
    dns.set("_dmarc." + ALABEL, "TXT", "v=DMARC1; p=reject")
    code, ctx = milter_env(dmarc_reject_enforce=True)(
        MSG, sender="<anna@bücher.example>", client=("mail.example.net", "192.0.2.10"))
    assert code == Milter.REJECT, ar(ctx)


def test_author_domain_forms():
    from milters.stages.dmarc import BadFrom, _parse_from
    import pytest
    assert _parse_from("Anna <anna@Bücher.Example>") == ALABEL
    assert _parse_from(f"anna@{ALABEL}") == ALABEL
    assert _parse_from("x@i\u2764.ws") == "xn--i-7iq.ws"        # IDNA 2003 only (a symbol): as dnspython looks it up
    with pytest.raises(BadFrom):
        _parse_from("x@a\ufffdb.example")
