"""The main.cf lines this package recommends (owlery.app.postfix.socketmap_tables, shown in README.rst), in a real Postfix reading `owlery socketmap`.

A back end (virtual_mailbox_domains / virtual_alias_maps / virtual_mailbox_maps) refuses an
unknown user and an alias reaching nobody at RCPT and expands a group with the extension kept;
a relay (relay_domains / relay_recipient_maps / virtual_alias_maps / transport_maps) routes
each member of a group to its own back end: here `discard:HOST`, whose log line names the
host, stands in for lmtp:inet:HOST:24; a member without a back end takes relay_transport.
"""

from tests.socketmap.daemon import SocketmapDaemon

MAILBOXES = "alice@example.test\nbob@example.test\n"
ALIASES = "staff@example.test alice@example.test, bob@example.test\nghost@example.test nobody@example.test\n"
MAIL_HOSTS = "bob@example.test backend-b.example.test\n"


def start_socketmap(tmp_path, extra=""):
    for name, text in (("mailboxes", MAILBOXES), ("aliases", ALIASES), ("mail_hosts", MAIL_HOSTS)):
        (tmp_path / name).write_text(text)
    config = "".join(f'files_{n} = "{tmp_path / n}"\n' for n in ("mailboxes", "aliases", "mail_hosts"))
    return SocketmapDaemon(tmp_path / "socketmap", config + extra).start()


def stop_both(postfix, daemon):
    """Postfix first: its idle socketmap connections would hold the daemon's drain for daemon_drain_timeout."""
    if postfix is not None:
        postfix.stop()
    daemon.stop()


def tables(port, *names):
    return {name: f"socketmap:inet:127.0.0.1:{port}:{name}" for name in names}


def printed(port, role):
    """The lines `owlery postfix` and README.rst give for this role, for a daemon on `port`."""
    from owlery.app.postfix import socketmap_tables
    from owlery.settings import Settings
    return dict(socketmap_tables(Settings().replace(socketmap_listen=[f"tcp:127.0.0.1:{port}"]), role))


def test_back_end_tables(tmp_path, make_postfix):
    daemon = start_socketmap(tmp_path)
    postfix = None
    try:
        postfix = make_postfix(main_cf=dict(
            printed(daemon.port, "backend"), **tables(daemon.port, "virtual_mailbox_maps"),
            relay_domains="", smtpd_recipient_restrictions="permit_mynetworks, reject"))
        postfix.configure(main_cf=dict(postfix.main_cf, virtual_transport=f"smtp:[127.0.0.1]:{postfix.sink_port}"))
        result = postfix.send("someone@elsewhere.test", ["staff+x@example.test", "nobody@example.test",
                                                         "ghost@example.test"], "Subject: t\n\nhi\n")
        assert result.accepted == ["staff+x@example.test"]
        assert {a: c for a, (c, _) in result.refused.items()} == {"nobody@example.test": 550, "ghost@example.test": 550}
        [message] = postfix.wait_sent(1)
        assert sorted(message.rcpts) == ["alice+x@example.test", "bob+x@example.test"]
    finally:
        stop_both(postfix, daemon)


def test_relay_routes_each_member_to_its_back_end(tmp_path, make_postfix):
    daemon = start_socketmap(tmp_path, 'socketmap_transport_template = "discard:{host}"\n')
    postfix = None
    try:
        postfix = make_postfix(main_cf=printed(daemon.port, "relay"))
        result = postfix.send("someone@elsewhere.test", ["staff@example.test", "carol@example.test"],
                              "Subject: t\n\nhi\n", check=False)
        assert result.accepted == ["staff@example.test"]
        assert result.refused["carol@example.test"][0] == 550
        [message] = postfix.wait_sent(1)
        assert message.rcpts == ["alice@example.test"]                        # relay_transport (the sink)
        postfix.wait_for_log(r"to=<bob@example\.test>, orig_to=<staff@example\.test>, relay=none.*"
                             r"status=sent \(backend-b\.example\.test\)")
    finally:
        stop_both(postfix, daemon)
