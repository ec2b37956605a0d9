"""Numeric policy attributes: only ASCII 0-9 count (str.isdigit() takes "²" and other scripts' digits).

A bad number is a protocol error (the adapter closes the connection without a reply, so
Postfix applies its own policy-server-failure rule, a 4xx); see policyd/protocol.py.
"""

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport

from owlery.settings import Settings
from policyd import actions as A
from policyd.checks import Check, CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import NUMERIC_ATTRIBUTES, PolicyRequest, ProtocolError, RequestDecoder, encode_request
from policyd.service import PolicyApp

BAD_NUMBERS = ["²", "1²", "١٢", "１２", "𝟏", "½", " 12", "12 ", "+1", "-1", "0x10", "1e3", "1.0", "١",
               "9" * 21, "9" * 3000]
GOOD_NUMBERS = [("0", 0), ("1234", 1234), ("0012", 12), ("9" * 20, int("9" * 20))]


def decoder():
    return RequestDecoder(line_length_max=4096, attributes_max=100)


def raw(name, value, crlf=False):
    data = b"request=smtpd_access_policy\nprotocol_state=RCPT\n" + f"{name}={value}".encode() + b"\n\n"
    return data.replace(b"\n", b"\r\n") if crlf else data


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])      # both decoder paths
@pytest.mark.parametrize("name", NUMERIC_ATTRIBUTES)
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_bad_number_is_a_protocol_error(value, name, crlf):
    d = decoder()
    with pytest.raises(ProtocolError, match=name):
        d.feed(raw(name, value, crlf))
    assert d.failed


@pytest.mark.parametrize("value,number", GOOD_NUMBERS)
def test_ascii_numbers_and_empty_read(value, number):
    [req] = decoder().feed(raw("size", value))
    assert req.size == number
    [req] = decoder().feed(raw("recipient_count", value))
    assert req.recipient_count == number
    [req] = decoder().feed(raw("size", ""))
    assert req.size == 0


def test_non_numeric_ports_still_accepted():
    # Postfix sends client_port=unknown when it does not know the port: not a protocol error.
    [req] = decoder().feed(raw("client_port", "unknown"))
    assert req.attr("client_port") == "unknown"


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_hand_built_request_reads_bad_number_as_zero(value):
    req = PolicyRequest({"size": value, "recipient_count": value})
    assert req.size == 0 and req.recipient_count == 0


class ReadsSize(Check):
    """Answers from the request's size, as the quota check does."""

    name = "reads_size"
    states = frozenset({"RCPT"})

    def evaluate(self, req, now):
        return A.DUNNO if req.size < 10 else A.reject(A.USER_UNKNOWN)


def connect():
    settings = Settings()
    clock = task.Clock()
    app = PolicyApp(settings, clock, executor=InlineExecutor())
    app.factory.pipeline = Pipeline(settings, CheckContext(settings, clock, InlineExecutor()),
                                    {"RCPT": [ReadsSize]})
    proto = app.factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


@pytest.mark.parametrize("value", ["²", "١٢"])
def test_service_disconnects_without_reply_on_bad_size(value):
    proto, tr = connect()
    proto.dataReceived(encode_request({"protocol_state": "RCPT", "instance": "i1", "size": value}))
    assert tr.value() == b"" and tr.disconnecting


def test_service_answers_ascii_size():
    proto, tr = connect()
    proto.dataReceived(encode_request({"protocol_state": "RCPT", "instance": "i1", "size": "12"}))
    assert tr.value() == b"action=550 5.1.1 User unknown\n\n" and not tr.disconnecting
