"""DKIM sign/verify, DMARC, SPF, ARC and Authentication-Results through the adapter and a fake context.

DNS answers come from the harness DNS stub (keys published by conftest.dns).
"""

import Milter
import pytest

from milters.testing import split_message

MSG = (b"From: Alice <alice@example.net>\r\nTo: bob@example.com\r\nSubject: hello  there\r\n"
       b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\r\n"
       b"Hello Bob,\r\n\r\n  how are you?\r\n\r\n")
OUT = dict(sender="<alice@example.net>", mail_macros={"{auth_authen}": "alice"})
IN = dict(sender="<alice@example.net>", client=("mail.example.net", "192.0.2.10"))


def signed_copy(ctx, raw):
    """The message as the next hop sees it: our added headers on top (LF folds to CRLF)."""
    added = [(n, v) for n, v, idx in ctx.added if idx == 0]
    top = b"".join(f"{n}:{v}".replace("\n", "\r\n").encode() + b"\r\n" for n, v in reversed(added))
    return top + raw


def ar(ctx):
    return ctx.header_value("Authentication-Results")


@pytest.fixture
def signer(milter_env):
    return milter_env(dkim_sign_keys={"example.net": ["r1", "e1"]})


@pytest.fixture
def verifier(milter_env):
    return milter_env(dmarc_reject_enforce=True)


def test_outbound_is_dual_signed_and_verifies_inbound(signer, verifier, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=reject")
    code, ctx = signer(MSG, **OUT)
    assert code == Milter.ACCEPT
    sigs = [v for n, v, _ in ctx.added if n == "DKIM-Signature"]
    assert len(sigs) == 2
    assert "a=rsa-sha256" in sigs[0] + sigs[1] and "a=ed25519-sha256" in sigs[0] + sigs[1]
    assert all("h=from:from:subject:date:message-id:to" in s for s in sigs)  # From oversigned
    code, ctx2 = verifier(signed_copy(ctx, MSG), **IN)
    assert code == Milter.ACCEPT, ctx2.replies
    result = ar(ctx2)
    assert result.startswith("mx.owlery.test;")
    assert result.count("dkim=pass") == 2 and "dmarc=pass" in result
    assert "header.d=example.net" in result and "header.s=e1" in result


def test_tampered_body_fails_and_dmarc_reject_is_enforced(signer, verifier, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=reject")
    _, ctx = signer(MSG, **OUT)
    tampered = signed_copy(ctx, MSG.replace(b"how are you", b"send money"))
    code, ctx2 = verifier(tampered, **IN)
    assert code == Milter.REJECT
    assert ctx2.replies[-1][:2] == ("550", "5.7.1")


def test_dmarc_fail_scored_not_rejected_when_not_enforced(signer, milter_env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=reject")
    _, ctx = signer(MSG, **OUT)
    tampered = signed_copy(ctx, MSG.replace(b"how are you", b"send money"))
    code, ctx2 = milter_env(dmarc_reject_enforce=False)(tampered, **IN)
    assert code == Milter.ACCEPT
    assert "dkim=fail" in ar(ctx2) and "dmarc=fail (p=REJECT dis=NONE)" in ar(ctx2)
    assert "DMARC_POLICY_REJECT" in ctx2.header_value("X-Owlery-Score")


def test_adding_a_second_from_breaks_the_oversigned_signature(signer, verifier, milter_env, dns):
    _, ctx = signer(MSG, **OUT)
    forged = signed_copy(ctx, b"From: evil@example.org\r\n" + MSG)
    # DKIM on its own: with the dmarc stage two From fields are refused outright (RFC 7489 6.6.1)
    _, ctx2 = milter_env(milter_inbound_stages=["dkim_verify", "authres"])(forged, **IN)
    assert "dkim=fail" in ar(ctx2) and "dkim=pass" not in ar(ctx2)
    assert verifier(forged, **IN)[0] == Milter.REJECT


def test_no_key_for_the_from_domain_means_no_signature(signer):
    code, ctx = signer(MSG.replace(b"alice@example.net", b"alice@example.com"), **OUT)
    assert code == Milter.ACCEPT and not [n for n, _, _ in ctx.added if n == "DKIM-Signature"]


def test_subdomain_signed_with_parent_key(signer):
    _, ctx = signer(MSG.replace(b"alice@example.net", b"alice@lists.example.net"), **OUT)
    assert any("d=example.net" in v for n, v, _ in ctx.added if n == "DKIM-Signature")


def test_unsigned_inbound_gets_dkim_none_and_forged_ar_removed(verifier, dns):
    raw = (b"Authentication-Results: mx.owlery.test; dkim=pass header.d=example.net\r\n"
           b"Authentication-Results: other.example; spf=pass\r\n"
           b"Authentication-Results: MX.OWLERY.TEST (forged); dmarc=pass\r\n" + MSG)
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    code, ctx = verifier(raw, **IN)
    assert code == Milter.ACCEPT
    # occurrences 3 and 1 deleted, last first; the foreign one kept
    assert ctx.changed == [("Authentication-Results", 3, None), ("Authentication-Results", 1, None)]
    assert "dkim=none" in ar(ctx) and "dmarc=fail" in ar(ctx)
    # header values go out with the leading space (P_HDR_LEADSPC negotiated)
    assert [v for n, v, _ in ctx.added if n == "Authentication-Results"][0].startswith(" mx.owlery.test;")


def test_dkim_key_dns_failure_is_temperror(signer, verifier, dns):
    _, ctx = signer(MSG, **OUT)
    dns.fail("r1._domainkey.example.net")
    dns.fail("e1._domainkey.example.net")
    code, ctx2 = verifier(signed_copy(ctx, MSG), **IN)
    assert code == Milter.ACCEPT
    assert ar(ctx2).count("dkim=temperror") == 2


@pytest.mark.parametrize("spf_record,sender,dmarc", [
    ("v=spf1 ip4:192.0.2.10 -all", "<bounce@example.net>", "pass"),        # aligned MAIL FROM pass
    ("v=spf1 ip4:192.0.2.10 -all", "<bounce@mail.example.net>", "pass"),   # relaxed alignment
    ("v=spf1 -all", "<bounce@example.net>", "fail"),
    ("v=spf1 ip4:192.0.2.10 -all", "<>", "fail"),                          # HELO identity never counts
])
def test_spf_checked_here_feeds_dmarc(milter_env, dns, spf_record, sender, dmarc):
    dns.set("example.net", "TXT", spf_record)
    dns.set("mail.example.net", "TXT", spf_record)
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=quarantine")
    code, ctx = milter_env()(MSG, sender=sender, client=("mail.example.net", "192.0.2.10"), helo="mail.example.net")
    assert code == Milter.ACCEPT
    assert f"dmarc={dmarc}" in ar(ctx)


def test_strict_spf_alignment(milter_env, dns):
    dns.set("mail.example.net", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none; aspf=s")
    _, ctx = milter_env()(MSG, sender="<b@mail.example.net>", client=("m", "192.0.2.10"))
    assert "spf=pass" in ar(ctx) and "dmarc=fail" in ar(ctx)


@pytest.mark.parametrize("top,trusted", [
    (b"Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.10; helo=m; "
     b"envelope-from=b@example.net; receiver=mx\r\n", True),
    (b"Received-SPF: Pass (helo) identity=helo; client-ip=192.0.2.10; helo=example.net; "
     b"envelope-from=b@example.net; receiver=mx\r\n", False),
    (b"Authentication-Results: mx.owlery.test; spf=pass smtp.mailfrom=b@example.net\r\n", True),
    (b"Authentication-Results: mx.owlery.test; spf=pass smtp.helo=example.net\r\n", False),
    (b"Authentication-Results: other.example; spf=pass smtp.mailfrom=b@example.net\r\n", False),
    (b"Received-SPF: Pass (mailfrom) identity=mailfrom; envelope-from=someone@else.example\r\n", False),
])
def test_spf_from_policy_daemon_header(milter_env, dns, top, trusted):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    _, ctx = milter_env(milter_spf_source="header")(top + MSG, sender="<b@example.net>")
    assert ("dmarc=pass" in ar(ctx)) == trusted


@pytest.mark.parametrize("sender,trusted", [("<b@example.net>", True), ("<b@mail.example.net>", False)])
def test_spf_from_the_policy_daemons_own_authentication_results(milter_env, dns, sender, trusted):
    """The field exactly as owlery.dns writes it for the policy daemon: smtp.mailfrom is the
    domain checked (RFC 8601 2.7.2), not the whole address."""
    from owlery.dns import evaluate

    def lookup(name, qtype, timeout):
        return [((name, "TXT"), [b"v=spf1 ip4:192.0.2.10 -all"])] if (name, qtype) == ("example.net", "TXT") else []
    line = evaluate(lookup, ip="192.0.2.10", sender="b@example.net", helo="m.example.net", query_time_limit=5,
                    receiver="mx", authserv_id="mx.owlery.test").authentication_results
    assert "spf=pass" in line and "smtp.mailfrom=example.net" in line
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    _, ctx = milter_env(milter_spf_source="header")(line.encode() + b"\r\n" + MSG, sender=sender)
    assert ("dmarc=pass" in ar(ctx)) == trusted


def test_spf_header_below_message_headers_is_not_trusted(milter_env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    raw = b"X-First: 1\r\nReceived-SPF: Pass (mailfrom) identity=mailfrom; envelope-from=b@example.net\r\n" + MSG
    _, ctx = milter_env(milter_spf_source="header")(raw, sender="<b@example.net>")
    assert "dmarc=fail" in ar(ctx)


def test_dmarc_org_domain_policy_uses_sp(signer, milter_env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none; sp=reject")
    raw = MSG.replace(b"alice@example.net", b"alice@sub.example.net")
    code, ctx = milter_env()(raw, sender="<x@example.org>")
    assert code == Milter.REJECT


def test_arc_seal_then_verify(milter_env, dns):
    sealer = milter_env(milter_inbound_stages=["dkim_verify", "arc_verify", "authres", "arc_seal"],
                        arc_seal_domain="example.org", arc_seal_selector="a1")
    code, ctx = sealer(MSG, **IN)
    assert code == Milter.ACCEPT
    names = [n for n, _, _ in ctx.added]
    assert {"ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"} <= set(names)
    sealed = signed_copy(ctx, MSG)
    code, ctx2 = milter_env(milter_inbound_stages=["arc_verify", "authres"])(sealed, **IN)
    assert "arc=pass" in ar(ctx2)
    broken = sealed.replace(b"how are you", b"who are you")
    _, ctx3 = milter_env(milter_inbound_stages=["arc_verify", "authres"])(broken, **IN)
    assert "arc=fail" in ar(ctx3)


def test_an_arc_set_with_an_odd_instance_tag_fails_the_chain(milter_env, dns):
    # dkimpy raised IndexError on an ARC-Message-Signature whose i= holds an upper-case letter
    # (found by the milter_session fuzzer): arc=fail, not a tempfailed internal error
    sealer = milter_env(milter_inbound_stages=["dkim_verify", "arc_verify", "authres", "arc_seal"],
                        arc_seal_domain="example.org", arc_seal_selector="a1")
    _, ctx = sealer(MSG, **IN)
    sealed = signed_copy(ctx, MSG)
    start = sealed.index(b"ARC-Message-Signature:")
    at = sealed.index(b"i=1", start)
    odd = sealed[:at] + b"i=1X" + sealed[at + 3:]
    code, ctx2 = milter_env(milter_inbound_stages=["arc_verify", "authres"])(odd, **IN)
    assert code == Milter.ACCEPT
    assert "arc=fail" in ar(ctx2)


def test_exception_in_adapter_path_tempfails(milter_env, monkeypatch):
    run = milter_env()
    monkeypatch.setattr("milters.session.MilterSession.header", lambda *a: 1 / 0)
    code, ctx = run(MSG, **IN)
    assert code == Milter.TEMPFAIL and ctx.replies[-1][:2] == ("451", "4.3.0")


def test_hold_becomes_quarantine(milter_env, dns):
    from milters.stages import STAGES
    STAGES["holdme"] = "tests.milters.test_auth_stages:HoldMe"
    try:
        code, ctx = milter_env(milter_inbound_stages=["holdme"])(MSG, **IN)
    finally:
        del STAGES["holdme"]
    assert code == Milter.ACCEPT and ctx.quarantined == ["suspicious"] and ctx.progress_calls == 1


from milters.stages import Stage  # noqa: E402


class HoldMe(Stage):
    name = "holdme"

    def check(self, message, report):
        report.progress()
        report.hold("suspicious")


def test_split_message_helper():
    fields, body = split_message(b"A: 1\r\n\tcont\r\nB: 2\r\n\r\nbody\r\n")
    assert fields == [("A", b" 1\n\tcont"), ("B", b" 2")] and body == b"body\r\n"


def test_negotiation_through_the_context_sets_no_reply_steps_and_macro_lists():
    """Milter.Base.negotiate over the fake context, which takes str macro lists as pymilter's C
    one does (pymilter 1.0.5's Base.setsymlist passes bytes: negotiation then fell back)."""
    import Milter

    from milters.adapter import OwleryMilter
    from milters.testing import FakeMilterContext

    milter = OwleryMilter.__new__(OwleryMilter)      # negotiate needs no settings
    ctx = FakeMilterContext()
    milter._setctx(ctx)
    opts = [0x1FF, 0x1FFFFF, 0, 0]
    assert milter.negotiate(opts) == Milter.CONTINUE
    assert opts[1] & Milter.P_NR_HDR and opts[1] & Milter.P_HDR_LEADSPC and opts[1] & Milter.P_NOEOH
    assert not opts[1] & (Milter.P_NOHDRS | Milter.P_NOBODY | Milter.P_NOMAIL | Milter.P_NODATA | Milter.P_NR_DATA)
    assert ctx.symlists == {Milter.M_CONNECT: "j {daemon_name} {client_addr} {client_name} {daemon_addr}",
                            Milter.M_ENVFROM: "i {auth_authen} {auth_type} {mail_addr} {auth_author}",
                            Milter.M_EOM: "i"}
