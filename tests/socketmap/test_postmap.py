"""Postfix's own socketmap client (postmap -q) against a running `owlery socketmap`, for every map,
over map files and over slapd; a TEMP answer when slapd is down; and postmap's answers agree
with the policy daemon's accept/refuse for a table of addresses."""

import textwrap

import pytest

from policyd.cli import query
from tests.directory.test_contract import FILES as CONTRACT_FILES
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.slapd import seed_ldif
from tests.socketmap.daemon import SocketmapDaemon, postfix_config_dir, postmap, postmap_one

# The harness seed directory as map files (tests/directory/test_contract.py), with the seed's
# levels.example.test domain (frank and the @levels.example.test catch-all) and bob's back end.
FILES = dict(CONTRACT_FILES,
             mailboxes=CONTRACT_FILES["mailboxes"] + "\n frank@levels.example.test\n @levels.example.test\n",
             mail_hosts="bob@example.test backend-b.example.test\n")
BOB_HOST = """
dn: uid=bob,ou=people,dc=example,dc=test
changetype: modify
add: mailHost
mailHost: backend-b.example.test
"""


@pytest.fixture(params=["files", "ldap"])
def backend(request, tmp_path):
    """(kind, settings text, slapd or None) for one directory holding the seed's users."""
    if request.param == "files":
        lines = []
        for name, text in FILES.items():
            path = tmp_path / name
            path.write_text("\n".join(line.strip() for line in textwrap.dedent(text).splitlines()) + "\n")
            lines.append(f'files_{name} = "{path}"')
        return "files", "\n".join(lines), None
    server = request.getfixturevalue("make_slapd")(ldif_text=seed_ldif())
    server.modify_ldif(BOB_HOST)
    return "ldap", (f'directory_backend = "ldap"\nldap_servers = ["{server.url}"]\nldap_base_dn = "{server.base_dn}"\n'
                    'ldap_mail_host_attribute = "mailHost"\nldap_timeout = 2\nldap_connect_timeout = 1'), server


@pytest.fixture
def socketmap(tmp_path, backend):
    d = SocketmapDaemon(tmp_path / "socketmap", backend[1])
    yield d.start()
    d.stop()


V, M, A, T, R = ("virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_maps", "transport_maps",
                 "relay_recipient_maps")
BOB = "bob@elsewhere.test,bob@example.test"
ERIN = "erin.backup@elsewhere.test,erin@elsewhere.test,erin@example.test"
TABLE = [
    (V, "example.test", "OK"), (V, "Alias.Example.Test", "OK"), (V, "levels.example.test", "OK"),
    (V, "elsewhere.test", None),
    (A, "alice@example.test", "alice@example.test"),
    (A, "Alice+News@Example.TEST", "alice+news@example.test"),
    (A, "postmaster@example.test", "alice@example.test"),
    (A, "alice@alias.example.test", "alice@example.test"),
    (A, "bob@example.test", BOB),
    (A, "erin@example.test", ERIN),
    (A, "csall@example.test", "alice@example.test,bob@example.test"),
    (A, "csall+x@example.test", "alice+x@example.test,bob+x@example.test"),
    (A, "team@example.test", {"files": "staff@example.test", "ldap": "alice@example.test,erin@example.test"}),
    (A, "someone@levels.example.test", "someone@levels.example.test"),
    (A, "nobody@example.test", None), (A, "dave@example.test", None), (A, "x@elsewhere.test", None),
    (M, "alice@example.test", "example.test/alice/Maildir/"),
    (M, "alice+x@example.test", "example.test/alice/Maildir/"),
    (M, "someone@levels.example.test", "levels.example.test/someone/Maildir/"),
    (M, "csall@example.test", None), (M, "nobody@example.test", None),
    (T, "bob@example.test", "lmtp:inet:backend-b.example.test:24"),
    (T, "alice@example.test", None), (T, "*", None),
    (R, "alice+x@example.test", "OK"), (R, "csall@example.test", "OK"), (R, "team@example.test", "OK"),
    (R, "someone@levels.example.test", "OK"), (R, "@levels.example.test", "OK"),
    (R, "nobody@example.test", None), (R, "dave@example.test", None), (R, "@example.test", None),
]


def normal(value):
    """Alias lists compared as sets (LDAP gives members in its own order)."""
    return ",".join(sorted(value.split(","))) if value and "@" in value else value


def test_postmap_every_map(tmp_path, backend, socketmap):
    kind = backend[0]
    etc = postfix_config_dir(tmp_path)
    for name in (V, M, A, T, R):
        rows = [(key, want[kind] if isinstance(want, dict) else want) for m, key, want in TABLE if m == name]
        found, stderr = postmap(socketmap.port, name, [key for key, _ in rows], etc)
        assert stderr == ""
        got = {key: normal(found.get(key)) for key, _ in rows}
        assert got == {key: normal(want) for key, want in rows}, name
    # One key the way Postfix's documentation shows it: exit 0 and the value, exit 1 when not found.
    assert postmap_one(socketmap.port, A, "postmaster@example.test", etc)[:2] == (0, "alice@example.test")
    assert postmap_one(socketmap.port, A, "nobody@example.test", etc)[:2] == (1, "")


def test_postmap_sees_temp_when_slapd_is_down(tmp_path, make_slapd):
    server = make_slapd(ldif_text=seed_ldif())
    config = f'directory_backend = "ldap"\nldap_servers = ["{server.url}"]\nldap_base_dn = "{server.base_dn}"\n' \
             "ldap_timeout = 1\nldap_connect_timeout = 1"
    with SocketmapDaemon(tmp_path / "socketmap", config) as daemon:
        etc = postfix_config_dir(tmp_path)
        assert postmap_one(daemon.port, R, "alice@example.test", etc)[:2] == (0, "OK")
        server.stop()
        status, value, stderr = postmap_one(daemon.port, R, "bob@example.test", etc)
        assert (status, value) == (1, "") and "socketmap server temporary error: directory unavailable" in stderr
        # What was cached still answers while the server is down (the policy daemon's cache does the same).
        assert postmap_one(daemon.port, R, "alice@example.test", etc)[:2] == (0, "OK")
        assert "status=TEMP reason=directory unavailable" in daemon.log()


ADDRESSES = ["alice@example.test", "Alice+News@example.test", "postmaster@example.test", "alice@alias.example.test",
             "alice.example@example.test", "bob@example.test", "carol@example.test", "erin@alias.example.test",
             "csall@example.test", "staff@example.test", "team@example.test", "frank@levels.example.test",
             "someone@levels.example.test", "nobody@example.test", "nobody+x@example.test", "dave@example.test",
             "dave.alias@example.test", "bob@alias.example.test", "a*@example.test"]


def test_postmap_agrees_with_the_policy_daemon(tmp_path, backend, socketmap):
    etc = postfix_config_dir(tmp_path)
    relay, _ = postmap(socketmap.port, R, ADDRESSES, etc)
    alias, _ = postmap(socketmap.port, A, ADDRESSES, etc)
    mailbox, _ = postmap(socketmap.port, M, ADDRESSES, etc)
    with OwleryDaemons(tmp_path / "policyd", backend[1] + '\npolicyd_checks = { RCPT = ["recipient"] }',
                       which=("policyd",)) as daemons:
        endpoint = f"tcp:127.0.0.1:{daemons.ports['policyd']}"
        verdicts = {}
        for address in ADDRESSES:
            action = query(endpoint, {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                                      "sender": "someone@elsewhere.test", "recipient": address,
                                      "client_address": "192.0.2.1", "instance": address})
            assert action in ("DUNNO", "550 5.1.1 User unknown") or action.startswith("550 5.1.1"), action
            verdicts[address] = action == "DUNNO"
    assert {a: a in relay for a in ADDRESSES} == verdicts
    # smtpd's own reject_unlisted_recipient: known when either virtual table finds the address.
    assert {a: a in alias or a in mailbox for a in ADDRESSES} == verdicts
    assert sum(verdicts.values()) >= 12 and not all(verdicts.values())
