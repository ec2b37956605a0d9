"""The policy protocol codec (policyd.protocol): framing, attributes, limits, malformed input."""

import pytest

from policyd.protocol import (KNOWN_ATTRIBUTES, PolicyRequest, ProtocolError, RequestDecoder,
                              encode_action, encode_request)

# What Postfix 3.7 sends at RCPT (29 attributes), as captured from a real smtpd.
POSTFIX_RCPT = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                b"client_address=192.0.2.7\nclient_name=mx.sender.test\nclient_port=40404\n"
                b"reverse_client_name=mx.sender.test\nserver_address=127.0.0.1\nserver_port=25\n"
                b"helo_name=mx.sender.test\nsender=a@sender.test\nrecipient=Bob@Example.ORG\n"
                b"recipient_count=0\nqueue_id=\nsize=1234\netrn_domain=\nstress=\nsasl_method=\n"
                b"sasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n"
                b"ccert_pubkey_fingerprint=\nencryption_protocol=\nencryption_cipher=\n"
                b"encryption_keysize=0\npolicy_context=\ncompatibility_level=3.6\nmail_version=3.7.11\n"
                b"instance=1a2b.65f0c1d2.3e4f.0\n\n")


def decoder(**kw):
    return RequestDecoder(line_length_max=kw.get("line", 4096), attributes_max=kw.get("attrs", 100))


def test_postfix_request_decodes():
    [req] = decoder().feed(POSTFIX_RCPT)
    assert req.protocol_state == "RCPT"
    assert req.recipient == "Bob@Example.ORG"
    assert req.size == 1234 and req.recipient_count == 0
    assert req.instance == "1a2b.65f0c1d2.3e4f.0"
    assert req.queue_id == "" and req.sasl_username == ""
    assert req.log_head() == "RCPT from mx.sender.test[192.0.2.7]"
    assert set(req) <= KNOWN_ATTRIBUTES | {"request"}


def test_byte_at_a_time_and_several_requests():
    d = decoder()
    got = []
    for i in range(len(POSTFIX_RCPT) * 2):
        got += d.feed((POSTFIX_RCPT * 2)[i:i + 1])
    assert len(got) == 2 and not d.pending


@pytest.mark.parametrize("data,attr,value", [
    (b"request=smtpd_access_policy\nfoo=bar\n\n", "foo", "bar"),                 # unknown kept, ignored
    (b"request=smtpd_access_policy\nsender=\n\n", "sender", ""),                 # empty = absent
    (b"request=smtpd_access_policy\nsender=a\nsender=b\n\n", "sender", "b"),     # repeated: last wins
    (b"request=smtpd_access_policy\r\nsender=x@y\r\n\r\n", "sender", "x@y"),     # CRLF tolerated
    (b"request=smtpd_access_policy\nccert_subject=a=b=c\n\n", "ccert_subject", "a=b=c"),
    (b"request=smtpd_access_policy\nsender=j\xc3\xb6rg@x.test\n\n", "sender", "j\u00f6rg@x.test"),
])
def test_attribute_values(data, attr, value):
    [req] = decoder().feed(data)
    assert req.attr(attr) == value


def test_raw_8bit_survives_round_trip():
    [req] = decoder().feed(b"request=smtpd_access_policy\nsender=\xff\xfe@x.test\n\n")
    assert req.sender.encode("utf-8", "surrogateescape") == b"\xff\xfe@x.test"


@pytest.mark.parametrize("size,count", [("", 0), ("0", 0), ("abc", 0), ("42", 42)])
def test_numbers(size, count):
    assert PolicyRequest({"size": size}).size == count


@pytest.mark.parametrize("data,why", [
    (b"garbage\n\n", "without '='"),
    (b"=value\n\n", "empty name"),
    (b"request=smtpd_access_policy\nsender=a\0b\n\n", "NUL"),
    (b"\n", "empty request"),
    (b"protocol_state=RCPT\n\n", "without request="),
    (b"request=junk\n\n", "expected smtpd_access_policy"),
    (b"request=smtpd_access_policy\nsender=" + b"x" * 5000 + b"\n\n", "longer than"),
    (b"request=smtpd_access_policy\nsender=" + b"x" * 5000, "longer than"),       # no newline yet
])
def test_malformed(data, why):
    d = decoder()
    with pytest.raises(ProtocolError, match=why):
        d.feed(data)
    assert d.failed


def test_attribute_limit():
    data = b"request=smtpd_access_policy\n" + b"".join(b"a%d=1\n" % i for i in range(10)) + b"\n"
    decoder(attrs=11).feed(data)
    with pytest.raises(ProtocolError, match="more than 10 attributes"):
        decoder(attrs=10).feed(data)


def test_line_limit_is_exact():
    line = b"sender=" + b"x" * (100 - 7)
    assert len(line) == 100
    decoder(line=100).feed(b"request=smtpd_access_policy\n" + line + b"\n\n")
    with pytest.raises(ProtocolError):
        decoder(line=99).feed(b"request=smtpd_access_policy\n" + line + b"\n\n")


@pytest.mark.parametrize("action,wire", [
    ("DUNNO", b"action=DUNNO\n\n"),
    ("550 5.1.1 User unknown", b"action=550 5.1.1 User unknown\n\n"),
])
def test_encode_action(action, wire):
    assert encode_action(action) == wire


@pytest.mark.parametrize("bad", ["", "DUNNO\nOK", "REJECT\r", "a\0"])
def test_encode_action_refuses_framing_breakers(bad):
    with pytest.raises(ValueError):
        encode_action(bad)


def test_encode_request_round_trip():
    [req] = decoder().feed(encode_request({"protocol_state": "RCPT", "recipient": "a@b.test"}))
    assert req.attr("request") == "smtpd_access_policy" and req.recipient == "a@b.test"


def test_fast_and_line_paths_agree():
    """Whole LF requests take the block path; CRLF, and requests split across feeds after a long
    partial, take the line path: both give the same attributes."""
    fast = decoder().feed(POSTFIX_RCPT * 3)
    crlf = decoder().feed(POSTFIX_RCPT.replace(b"\n", b"\r\n") * 3)
    d = decoder(line=256)
    split = d.feed(POSTFIX_RCPT[:400]) + d.feed(POSTFIX_RCPT[400:] + POSTFIX_RCPT * 2)
    assert [dict(r) for r in fast] == [dict(r) for r in crlf] == [dict(r) for r in split]
    assert len(fast) == 3 and not d.pending


def test_many_short_lines_without_end_are_bounded():
    d = decoder(line=64, attrs=10)
    with pytest.raises(ProtocolError, match="more than 10 attributes"):
        for _ in range(100):
            d.feed(b"x=1\n" * 10)
