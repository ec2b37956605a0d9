"""The LDAP backend over TLS against a real slapd (tests/harness/slapd.py, tls=True): LDAPS and
StartTLS with the CA configured work; a certificate that does not verify, a wrong name, or
StartTLS refused are temporary failures (DirectoryUnavailable, DEFER_IF_PERMIT 4.3.0 in policyd),
never a 5xx and never a lookup in clear; the next server is tried; TLS connections are pooled."""

import pytest
from twisted.internet import task

from owlery.directory import open_directory
from owlery.directory.ldap import LdapDirectory
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest
from tests.harness.procs import HarnessError, free_port
from tests.harness.slapd import Slapd, make_ca

DEFER = "DEFER_IF_PERMIT 4.3.0 Recipient lookup temporarily unavailable"
USER_UNKNOWN = "550 5.1.1 User unknown"


@pytest.fixture(scope="module")
def tls_slapd(harness_dirs):
    """The module's TLS slapd (seed directory; ldap:// with StartTLS and ldaps://)."""
    server = Slapd(harness_dirs("slapd-tls"), tls=True)
    try:
        server.start()
    except HarnessError as exc:
        pytest.fail("TLS slapd could not be started: %s" % exc, pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    """A CA file that did not sign the server's certificate."""
    return str(make_ca(tmp_path_factory.mktemp("other-ca"))[0])


def tls_settings(server, mode, ca_file, **over):
    """Settings reaching `server` by mode "ldaps" or "starttls", trusting ca_file."""
    values = dict(directory_backend="ldap", ldap_base_dn=server.base_dn, ldap_tls_ca_file=ca_file,
                  ldap_servers=[server.ldaps_url if mode == "ldaps" else server.url],
                  ldap_start_tls=(mode == "starttls"), ldap_timeout=2, ldap_connect_timeout=1)
    values.update(over)
    if values["ldap_tls_ca_file"] is None:          # unset: the system's CAs
        del values["ldap_tls_ca_file"]
    return Settings().replace(**values)


def log_count(server, marker):
    """How many slapd.log lines contain marker (slapd writes them before it answers)."""
    return sum(marker in line for line in (server.workdir / "slapd.log").read_text().splitlines())


def ask_recipient(settings, recipient):
    """One RCPT request through a policyd Pipeline (recipient check, LDAP directory); the action."""
    clock = task.Clock()
    ctx = CheckContext(settings, clock, InlineExecutor(), directory=open_directory(settings, clock=clock.seconds))
    pipeline = Pipeline(settings, ctx, {"RCPT": ["recipient"]})
    request = PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                             "protocol_name": "ESMTP", "client_address": "192.0.2.10",
                             "client_name": "mail.sender.test", "sender": "someone@sender.test",
                             "recipient": recipient, "instance": "a1.b2.c3", "size": "0"})
    out = []
    pipeline.decide(request, pipeline.new_session(), clock.seconds()).addBoth(out.append)
    assert out, "decision did not complete"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    ctx.directory.close()
    return out[0].action.render()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_lookups_over_tls_with_the_ca(tls_slapd, mode):
    handshakes, starttls = log_count(tls_slapd, "TLS established"), log_count(tls_slapd, " STARTTLS")
    d = LdapDirectory(tls_settings(tls_slapd, mode, str(tls_slapd.ca_file), ldap_pool_size=1))
    assert d.resolve("alice@example.test").kind == "mailbox"
    assert d.resolve("nobody@example.test").kind == "unknown"
    assert sorted(m.address for m in d.resolve("csall@example.test").mailboxes) == \
        ["alice@example.test", "bob@example.test"]
    assert d.spam_levels("alice@example.test").tag2 == 4.5
    d.close()
    # All of that on one TLS connection, kept in the pool (one handshake, not one per search);
    # StartTLS really ran on ldap://, none on ldaps://.
    assert log_count(tls_slapd, "TLS established") - handshakes == 1
    assert log_count(tls_slapd, " STARTTLS") - starttls == (1 if mode == "starttls" else 0)


def test_ldaps_uri_with_start_tls_set_too(tls_slapd):
    # ldap3 refuses StartTLS on an ldaps:// connection; with both set it must still connect.
    d = LdapDirectory(tls_settings(tls_slapd, "ldaps", str(tls_slapd.ca_file), ldap_start_tls=True))
    assert d.resolve("alice@example.test").exists
    d.close()


def test_localhost_name_verifies_too(tls_slapd):
    s = tls_settings(tls_slapd, "ldaps", str(tls_slapd.ca_file),
                     ldap_servers=["ldaps://localhost:%d" % tls_slapd.ldaps_port])
    d = LdapDirectory(s)
    assert d.resolve("alice@example.test").exists
    d.close()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
@pytest.mark.parametrize("ca", ["other", "system", "missing"])
def test_certificate_not_from_the_configured_ca_is_unavailable(tls_slapd, other_ca, tmp_path, mode, ca):
    ca_file = {"other": other_ca, "system": None, "missing": str(tmp_path / "no-such-ca.pem")}[ca]
    s = tls_settings(tls_slapd, mode, ca_file)
    d = LdapDirectory(s)
    with pytest.raises(DirectoryUnavailable):
        d.resolve("alice@example.test")
    with pytest.raises(DirectoryUnavailable):
        d.hosts_domain("example.test")
    assert ask_recipient(s, "alice@example.test") == DEFER
    assert ask_recipient(s, "nobody@example.test") == DEFER          # not 550: nothing was looked up


def test_verification_failure_message_says_why(tls_slapd, other_ca):
    with pytest.raises(DirectoryUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        LdapDirectory(tls_settings(tls_slapd, "ldaps", other_ca)).resolve("alice@example.test")


def test_start_tls_refused_by_a_server_without_tls_is_unavailable(slapd, tls_slapd):
    # The session slapd has no certificate: it answers StartTLS with an error. Nothing may go in clear.
    s = tls_settings(slapd, "starttls", str(tls_slapd.ca_file))
    binds = log_count(slapd, " BIND ")
    with pytest.raises(DirectoryUnavailable, match="(?i)starttls"):
        LdapDirectory(s).resolve("alice@example.test")
    assert ask_recipient(s, "nobody@example.test") == DEFER
    assert log_count(slapd, " BIND ") == binds                    # no bind, no search after the refusal


def test_ldaps_to_a_plain_port_is_unavailable(slapd, tls_slapd):
    s = tls_settings(tls_slapd, "ldaps", str(tls_slapd.ca_file),
                     ldap_servers=["ldaps://127.0.0.1:%d" % slapd.port])
    with pytest.raises(DirectoryUnavailable):
        LdapDirectory(s).resolve("alice@example.test")


def test_certificate_for_another_name_is_unavailable(make_slapd):
    # Signed by the trusted CA, but for ldap.elsewhere.test while we dial 127.0.0.1 (its own
    # slapd: the module one's certificate names 127.0.0.1).
    server = make_slapd(tls=True, tls_names=("ldap.elsewhere.test",))
    for mode in ("ldaps", "starttls"):
        s = tls_settings(server, mode, str(server.ca_file))
        with pytest.raises(DirectoryUnavailable, match="mismatch|match"):
            LdapDirectory(s).resolve("alice@example.test")
        assert ask_recipient(s, "nobody@example.test") == DEFER
    # ldap_tls_verify = false (tests only) takes it anyway: the switch is what lets it through.
    d = LdapDirectory(tls_settings(server, "ldaps", str(server.ca_file), ldap_tls_verify=False))
    assert d.resolve("alice@example.test").exists
    d.close()


def test_next_server_tried_when_tls_fails_on_the_first(slapd, tls_slapd):
    ca = str(tls_slapd.ca_file)
    # ldaps:// to a plain slapd (handshake fails), then the TLS slapd
    s = tls_settings(tls_slapd, "ldaps", ca, ldap_servers=["ldaps://127.0.0.1:%d" % slapd.port,
                                                           tls_slapd.ldaps_url])
    assert LdapDirectory(s).resolve("alice@example.test").exists
    # StartTLS refused by the plain slapd, then accepted by the TLS one
    s = tls_settings(tls_slapd, "starttls", ca, ldap_servers=[slapd.url, tls_slapd.url])
    assert LdapDirectory(s).resolve("alice@example.test").exists
    # nothing listening, then the TLS slapd
    s = tls_settings(tls_slapd, "ldaps", ca, ldap_servers=["ldaps://127.0.0.1:%d" % free_port(),
                                                           tls_slapd.ldaps_url])
    assert LdapDirectory(s).resolve("alice@example.test").exists


def test_every_server_failing_names_each(slapd, tls_slapd, other_ca):
    s = tls_settings(tls_slapd, "starttls", other_ca, ldap_servers=[slapd.url, tls_slapd.url])
    with pytest.raises(DirectoryUnavailable) as info:
        LdapDirectory(s).resolve("alice@example.test")
    assert slapd.url in str(info.value) and tls_slapd.url in str(info.value)


@pytest.mark.parametrize("recipient,expected", [
    ("alice@example.test", "DUNNO"),
    ("postmaster@example.test", "DUNNO"),             # alternate address
    ("alice+tag@example.test", "DUNNO"),              # recipient delimiter
    ("csall@example.test", "DUNNO"),                  # group
    ("nobody@example.test", USER_UNKNOWN),
    ("dave@example.test", USER_UNKNOWN),              # disabled account
    ("someone@not-ours.test", "DUNNO"),               # not a hosted domain
])
def test_policyd_transcript_over_ldaps(tls_slapd, recipient, expected):
    s = tls_settings(tls_slapd, "ldaps", str(tls_slapd.ca_file))
    assert ask_recipient(s, recipient) == expected


def test_pooled_tls_connection_survives_a_server_restart(tls_slapd):
    d = LdapDirectory(tls_settings(tls_slapd, "ldaps", str(tls_slapd.ca_file), ldap_pool_size=1))
    assert d.resolve("alice@example.test").exists              # pooled TLS connection
    tls_slapd.restart()                                         # same ports, same certificate
    handshakes = log_count(tls_slapd, "TLS established")        # after the harness' own LDAPS probe
    assert d.resolve("alice@example.test").exists              # stale one dropped, new handshake verified
    assert log_count(tls_slapd, "TLS established") - handshakes == 1
    d.close()
