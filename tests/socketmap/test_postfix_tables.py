"""The main.cf lines this package recommends (owlery.app.postfix.socketmap_tables, shown in README.rst), in a real Postfix reading `owlery socketmap`.

A back end (virtual_mailbox_domains / virtual_alias_maps / virtual_mailbox_maps) refuses an
unknown user and an alias reaching nobody at RCPT and expands a group with the extension kept;
a relay (relay_domains / relay_recipient_maps / virtual_alias_maps / transport_maps) routes
each member of a group to its own back end: here `discard:HOST`, whose log line names the
host, stands in for lmtp:inet:HOST:24; a member without a back end takes relay_transport.
"""

import subprocess
import sys

from tests.socketmap.daemon import ROOT, SocketmapDaemon

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


DIRECTORY_LINES = {"backend": ("virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_domains",
                                "virtual_alias_maps"),
                   "relay": ("relay_domains", "relay_recipient_maps", "virtual_alias_domains", "virtual_alias_maps",
                             "transport_maps")}


def printed(daemon, role):
    """The directory lines `owlery postfix --role ROLE` prints (README.rst shows them) for the
    daemon's own settings file, exactly as printed; the policy service and milter lines are
    left out (no policy daemon or milter runs here)."""
    out = subprocess.run([sys.executable, "-m", "owlery.app.cli", "postfix", "--role", role,
                          "--config", str(daemon.config_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    main_cf = out.split("# /etc/postfix/master.cf")[0]
    lines = dict(line.split(" = ", 1) if " = " in line else (line.rstrip(" ="), "")
                 for line in main_cf.splitlines() if line and not line.startswith("#"))
    wanted = DIRECTORY_LINES[role]
    assert set(wanted) <= set(lines), out
    assert not ({"virtual_mailbox_domains", "relay_domains"} - set(wanted)) & set(lines), out   # one role only
    return {name: lines[name] for name in wanted}


def test_back_end_tables(tmp_path, make_postfix):
    daemon = start_socketmap(tmp_path)
    postfix = None
    try:
        postfix = make_postfix(main_cf=dict(
            printed(daemon, "backend"), relay_domains="", smtpd_recipient_restrictions="permit_mynetworks, reject"))
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
        postfix = make_postfix(main_cf=printed(daemon, "relay"))
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
