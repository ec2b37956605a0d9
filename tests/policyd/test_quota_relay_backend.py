"""Two real policy daemons over loopback TCP: a relay whose mailboxes live on a back end asks the
back end's policyd about quota (issue 15, item 4), and the back end's policyd_client_networks
ACL. The relay has no Maildir at all: only the back end's maildirsize files can say "full"."""

import socket

import pytest

from policyd.protocol import encode_request
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.procs import free_port

FULL = "552 5.2.2 Mailbox full"
UNAVAILABLE = "DEFER_IF_PERMIT 4.3.0 Quota lookup temporarily unavailable, try again later"


def ask(port, **attrs):
    """One request to the policyd on `port`; the action text, or None when closed without a reply."""
    base = {"protocol_state": "RCPT", "sender": "someone@sender.test", "client_address": "192.0.2.10",
            "client_name": "mail.sender.test", "instance": "i1", "size": "0"}
    base.update(attrs)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(encode_request(base))
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                return None
            buf += chunk
    assert buf.startswith(b"action=")
    return buf[len(b"action="):-2].decode()


def backend_config(root, networks):
    mail = root / "mail"
    for user, text in (("alice", "1000000S\n1000 1\n"), ("carol", "1000S,10C\n500 10\n")):
        (mail / "example.org" / user).mkdir(parents=True)
        (mail / "example.org" / user / "maildirsize").write_text(text)
    (root / "mailboxes").write_text("alice@example.org example.org/alice\ncarol@example.org example.org/carol\n")
    # The relay keeps an idle connection open: stopping waits for it up to daemon_drain_timeout.
    return ('policyd_checks = { RCPT = ["quota"] }\ndaemon_drain_timeout = "1s"\n'
            f'policyd_client_networks = {networks!r}\n'.replace("'", '"') +
            f'files_mailboxes = "{root / "mailboxes"}"\n'
            f'files_maildir_base = "{mail}"\n')


def relay_config(root, backend_port):
    (root / "mailboxes").write_text("alice@example.org\ncarol@example.org\nlocal@example.org\n")
    (root / "aliases").write_text("team@example.org alice@example.org, carol@example.org\n")
    (root / "mail_hosts").write_text("@example.org 127.0.0.1\nlocal@example.org -\n")
    return ('policyd_checks = { RCPT = ["recipient", "quota"] }\n'
            f'quota_backend_endpoint = "tcp:{{host}}:{backend_port}"\n'
            'quota_backend_timeout = "5s"\n'
            f'files_mailboxes = "{root / "mailboxes"}"\n'
            f'files_aliases = "{root / "aliases"}"\n'
            f'files_mail_hosts = "{root / "mail_hosts"}"\n'
            f'files_maildir_base = "{root / "no-maildirs-here"}"\n')


@pytest.fixture
def backend(tmp_path):
    root = tmp_path / "backend"
    root.mkdir()
    daemons = OwleryDaemons(root / "o", which=("policyd",), extra_config=backend_config(root, ["127.0.0.0/8", "::1"]))
    daemons.start()
    yield daemons
    daemons.stop()


def test_relay_asks_the_back_end(backend, tmp_path):
    root = tmp_path / "relay"
    root.mkdir()
    b_port = backend.ports["policyd"]
    relay = OwleryDaemons(root / "o", which=("policyd",), extra_config=relay_config(root, b_port))
    relay.start()
    try:
        r_port = relay.ports["policyd"]
        assert ask(r_port, recipient="carol@example.org") == FULL               # 10 messages of 10
        assert ask(r_port, recipient="alice@example.org", size="5000") == "DUNNO"
        assert ask(r_port, recipient="alice@example.org", size="2000000") == FULL   # past 1 MB with this size
        assert ask(r_port, recipient="team@example.org") == "DUNNO"             # alice has room
        assert ask(r_port, recipient="nobody@example.org") == "550 5.1.1 User unknown"
        assert ask(r_port, recipient="local@example.org") == "DUNNO"            # no back end: not asked
        backend.wait_log("policyd", "check=quota")                              # the back end decided
        # The back end stops: the relay fails closed, as a temporary failure.
        backend.stop()
        assert ask(r_port, recipient="carol@example.org") == UNAVAILABLE
        relay.wait_log("policyd", "back end 127.0.0.1 cannot tell about carol@example.org")
        backend.start()
        assert ask(r_port, recipient="carol@example.org") == FULL               # back: asked again
    finally:
        relay.stop()


def test_back_end_acl_refuses_others(tmp_path):
    root = tmp_path / "acl"
    root.mkdir()
    daemons = OwleryDaemons(root / "o", which=("policyd",), extra_config=backend_config(root, ["192.0.2.0/24"]))
    daemons.start()
    try:
        assert ask(daemons.ports["policyd"], recipient="carol@example.org") is None    # closed, no reply
        daemons.wait_log("policyd", "refused connection from 127.0.0.1: not in policyd_client_networks")
    finally:
        daemons.stop()


def test_relay_pointed_at_nothing_defers(tmp_path):
    root = tmp_path / "relay"
    root.mkdir()
    relay = OwleryDaemons(root / "o", which=("policyd",), extra_config=relay_config(root, free_port()))
    relay.start()
    try:
        assert ask(relay.ports["policyd"], recipient="carol@example.org") == UNAVAILABLE
    finally:
        relay.stop()
