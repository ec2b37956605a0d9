"""Interop with Dovecot's managesieved (Pigeonhole 0.5): the same user's sieve directory, written by
one server, is read by the other: LISTSCRIPTS and GETSCRIPT show the same scripts and the same
active one, both ways, through renames, deactivation and an old regular-file active script.

Dovecot runs privately (tests/harness/dovecot.py) with `sieve = file:~/sieve;active=~/sieve/active.sieve`
(the layout our default delivery_sieve_script_template names) and a managesieve listener; our
`owlery managesieve` runs as nobody (Dovecot's mail_uid) and reads Dovecot's own passwd-file
({PLAIN} entries, allowed with files_passwords_plain).
"""

from __future__ import annotations

import os

import pytest

from tests.delivery.daemon import remove_workdir, shared_workdir
from tests.harness.dovecot import PASSWORD, DovecotInstance
from tests.harness.procs import free_port, wait_for_tcp
from tests.managesieve.helpers import Client, ManageSieveDaemon

USER = "alice@example.org"


@pytest.fixture(scope="module")
def servers():
    work = shared_workdir("owlery-managesieve-interop-")
    home = work / "mail" / "example.org" / "alice"
    sieve_port = free_port()
    dovecot = DovecotInstance(work / "dovecot", {USER: str(home)}, extra_conf=f"""
protocols = imap lmtp sieve
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {sieve_port}
  }}
}}
""").start()
    ours = None
    try:
        wait_for_tcp(sieve_port, timeout=20, what="dovecot managesieve")
        (work / "mailboxes").write_text(f"{USER} example.org/alice/Maildir\n")
        ours = ManageSieveDaemon(work, f"""
daemon_user = "nobody"
files_passwords = "{dovecot.dir / 'users'}"
files_passwords_plain = true
files_mailboxes = "{work}/mailboxes"
files_maildir_base = "{work}/mail"
delivery_sieve_script_template = "{work}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
""").start()
        yield {"ours": ours.port, "dovecot": sieve_port, "home": home, "dovecot_server": dovecot}
    finally:
        if ours is not None:
            ours.stop()
        dovecot.stop()
        remove_workdir(work)


def login(port: int) -> Client:
    c = Client("127.0.0.1", port)
    r = c.login(USER, PASSWORD)
    assert r.ok, r
    return c


def state(port: int) -> tuple[list, dict]:
    """(LISTSCRIPTS, {name: GETSCRIPT bytes}) as one server sees them."""
    c = login(port)
    listing, r = c.listscripts()
    assert r.ok, r
    contents = {}
    for name, _ in listing:
        data, r = c.getscript(name)
        assert r.ok, r
        contents[name] = data
    c.close()
    return sorted(listing), contents


def test_dovecot_greets_as_pigeonhole(servers):
    c = Client("127.0.0.1", servers["dovecot"])
    assert "Pigeonhole" in c.capabilities["IMPLEMENTATION"]
    c.close()


def test_written_by_ours_read_by_dovecot(servers):
    c = login(servers["ours"])
    assert c.putscript("spam", 'require "fileinto";\r\nif header :is "X-Spam-Flag" "YES" { fileinto "Junk"; }\r\n').ok
    assert c.putscript("vacation", 'require "vacation";\r\nvacation "Away.";\r\n').ok
    assert c.command('SETACTIVE "vacation"').ok
    c.close()
    ours, dovecots = state(servers["ours"]), state(servers["dovecot"])
    assert ours == dovecots
    assert ("vacation", True) in dovecots[0] and ("spam", False) in dovecots[0]
    assert dovecots[1]["vacation"] == b'require "vacation";\r\nvacation "Away.";\r\n'


def test_written_by_dovecot_read_by_ours(servers):
    c = login(servers["dovecot"])
    assert c.putscript("fromdovecot", "keep;\r\n").ok
    assert c.command('SETACTIVE "fromdovecot"').ok
    c.close()
    ours, dovecots = state(servers["ours"]), state(servers["dovecot"])
    assert ours == dovecots and ("fromdovecot", True) in ours[0]
    assert ours[1]["fromdovecot"] == b"keep;\r\n"


def test_rename_and_deactivate_across_servers(servers):
    c = login(servers["ours"])
    assert c.putscript("tmpname", "discard;\r\n").ok
    assert c.command('SETACTIVE "tmpname"').ok
    assert c.command('RENAMESCRIPT "tmpname" "final"').ok           # the active one, renamed by us
    c.close()
    listing, _ = state(servers["dovecot"])
    assert ("final", True) in listing and all(name != "tmpname" for name, _ in listing)
    c = login(servers["dovecot"])
    assert c.command('SETACTIVE ""').ok                              # deactivated by Dovecot
    r = c.command('DELETESCRIPT "final"')
    assert r.ok, r
    c.close()
    listing, _ = state(servers["ours"])
    assert not any(active for _, active in listing) and all(name != "final" for name, _ in listing)


def test_both_refuse_the_reserved_name(servers):
    for port in (servers["ours"], servers["dovecot"]):
        c = login(port)
        r = c.putscript("active", "keep;\r\n")
        assert r.kind == "NO", (port, r)
        c.close()


def test_old_regular_active_file_is_kept_the_same_way(servers):
    """A hand-written regular file at the active path becomes the script "dovecot.orig" when a
    script is activated, whichever server does it; the other one then lists it."""
    link = servers["home"] / "sieve" / "active.sieve"
    dovecot = servers["dovecot_server"]
    for writer, reader in ((servers["ours"], servers["dovecot"]), (servers["dovecot"], servers["ours"])):
        c = login(writer)
        assert c.putscript("current", "keep;\r\n").ok
        c.command('SETACTIVE ""')
        c.command('DELETESCRIPT "dovecot.orig"')          # kept by the previous round
        c.close()
        assert not os.path.lexists(link)
        link.write_text("# hand-written long ago\r\nkeep;\r\n")
        os.chown(link, dovecot.uid, dovecot.gid)
        c = login(writer)
        assert c.command('SETACTIVE "current"').ok
        c.close()
        listing, contents = state(reader)
        assert ("current", True) in listing and ("dovecot.orig", False) in listing, (writer, listing)
        assert contents["dovecot.orig"] == b"# hand-written long ago\r\nkeep;\r\n"
