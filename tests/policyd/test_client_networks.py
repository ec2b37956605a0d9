"""policyd_client_networks: the ACL of a policy daemon listening on a network address (a back end
answering its relays' quota questions). Clients outside the networks are closed at connect,
with a log line; empty lets everyone in (as before); unix sockets are not filtered."""

import logging

import pytest
from twisted.internet import address, task
from twisted.internet.testing import StringTransport

from owlery.settings import Settings
from policyd.checks import InlineExecutor
from policyd.protocol import encode_request
from policyd.service import PolicyApp, PolicyProtocol

RCPT = {"protocol_state": "RCPT", "sender": "a@sender.test", "recipient": "x@not-ours.test"}


def factory(**over):
    return PolicyApp(Settings().replace(policyd_checks={"RCPT": []}, **over), task.Clock(),
                     executor=InlineExecutor()).factory


def connect(f, addr):
    proto = f.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def tcp(host, port=40000):
    return (address.IPv6Address if ":" in host else address.IPv4Address)("TCP", host, port)


@pytest.mark.parametrize("networks,host,allowed", [
    ([], "203.0.113.9", True),                                   # default: everyone, as before
    (["127.0.0.0/8", "::1"], "127.0.0.1", True),
    (["127.0.0.0/8", "::1"], "::1", True),
    (["127.0.0.0/8", "::1"], "10.1.0.5", False),
    (["10.1.0.0/24"], "10.1.0.5", True),
    (["10.1.0.0/24"], "10.1.1.5", False),
    (["10.1.0.0/24"], "::ffff:10.1.0.5", True),                  # IPv4-mapped
    (["2001:db8::/32"], "2001:db8::25", True),
    (["2001:db8::/32"], "2001:db9::25", False),
])
def test_tcp_clients(networks, host, allowed, caplog):
    f = factory(policyd_client_networks=networks)
    with caplog.at_level(logging.WARNING, logger="owlery.policyd"):
        proto, transport = connect(f, tcp(host))
    if allowed:
        assert isinstance(proto, PolicyProtocol) and not transport.disconnecting
        proto.dataReceived(encode_request(RCPT))
        assert transport.value() == b"action=DUNNO\n\n"
    else:
        assert not isinstance(proto, PolicyProtocol)
        assert transport.disconnecting
        proto.dataReceived(encode_request(RCPT))          # nothing read, nothing answered
        assert transport.value() == b""
        assert f"refused connection from {host}: not in policyd_client_networks" in caplog.text


def test_unix_clients_are_not_filtered():
    f = factory(policyd_client_networks=["10.1.0.0/24"])
    proto, transport = connect(f, address.UNIXAddress(b"/run/owlery/policyd.sock"))
    assert isinstance(proto, PolicyProtocol) and not transport.disconnecting


def test_reload_changes_the_networks():
    app = PolicyApp(Settings().replace(policyd_client_networks=["10.1.0.0/24"]), task.Clock(),
                    executor=InlineExecutor())
    assert not isinstance(connect(app.factory, tcp("192.0.2.1"))[0], PolicyProtocol)
    app.reload(Settings().replace(policyd_client_networks=["192.0.2.0/24"]))
    assert isinstance(connect(app.factory, tcp("192.0.2.1"))[0], PolicyProtocol)
    assert not isinstance(connect(app.factory, tcp("10.1.0.5"))[0], PolicyProtocol)
    app.reload(Settings())
    assert isinstance(connect(app.factory, tcp("10.1.0.5"))[0], PolicyProtocol)


def test_bad_network_is_a_settings_error():
    from owlery.settings import SettingsError
    with pytest.raises((SettingsError, ValueError)):
        Settings().replace(policyd_client_networks=["10.1.0.0/33"])
