"""ManageSieve session transcripts (sieve/managesieve/session.py): client bytes in, server bytes out.

The session runs against the real backend glue (sieve.managesieve.backend.Accounts: our Sieve
validator, Pigeonhole-layout storage in a temporary directory) with a stub password check and
user resolver; tests/managesieve/helpers.Driver carries out its actions synchronously.
"""

import base64
import re

import pytest

from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings
from sieve.api import extensions_available
from sieve.delivery.users import MailUser
from sieve.managesieve.backend import Accounts
from sieve.managesieve.session import ManageSieveSession
from sieve.managesieve.settings import SessionConfig
from tests.managesieve.helpers import Driver, literal, plain

USER, PASSWORD = "alice@example.org", "s3cret"
SCRIPT = b'require "fileinto";\r\nif header :contains "subject" "owl" { fileinto "Owls"; }\r\n'


class StubAuth:
    def __init__(self):
        self.down = False
        self.calls = []

    def authenticate(self, username, password):
        self.calls.append(username)
        if self.down:
            raise DirectoryUnavailable("LDAP down")
        return USER if (username.lower(), password) == (USER, PASSWORD) else None

    def close(self):
        pass


class StubResolver:
    def __init__(self, home):
        self.home = home

    def lookup(self, address):
        return MailUser(address, str(self.home / "Maildir"), str(self.home / "sieve" / "active.sieve"))


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def make(home):
    """make(**config overrides, local=True, secure=False) -> Driver after the greeting."""
    def make(local=True, secure=False, auth=None, **over):
        settings = Settings()
        base = dict(SessionConfig.from_settings(settings).__dict__)
        base.update(over)
        config = SessionConfig(**base)
        backend = Accounts(settings, authenticator=auth or StubAuth(), resolver=StubResolver(home))
        return Driver(ManageSieveSession(config, backend, peer="192.0.2.7" if not local else "127.0.0.1", local=local,
                              secure=secure, login_timeout=60, idle_timeout=1800))
    return make


def logged_in(make, **kw):
    d = make(**kw)
    assert d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n') == b'OK "Logged in."\r\n'
    return d


def caps(greeting: bytes) -> dict:
    out = {}
    for line in greeting.split(b"\r\n"):
        m = re.match(rb'^"([^"]+)"(?: "([^"]*)")?$', line)
        if m:
            out[m.group(1).decode()] = m.group(2).decode() if m.group(2) is not None else None
    return out


# -- greeting and capabilities -------------------------------------------------------------

def test_greeting_lists_exactly_our_extensions(make):
    d = make()
    c = caps(d.sent)
    assert c["SIEVE"].split() == extensions_available(Settings())
    assert c["SASL"] == "PLAIN LOGIN" and c["VERSION"] == "1.0" and c["NOTIFY"] == "mailto"
    assert c["MAXREDIRECTS"] == "4" and "UNAUTHENTICATE" in c and "STARTTLS" not in c
    assert d.sent.endswith(b'OK "Owlery ManageSieve ready."\r\n')
    assert d.timeouts == [60]


def test_disabled_extension_is_not_offered(home):
    settings = Settings().replace(sieve_extensions_disabled=["vacation", "regex"])
    config = SessionConfig.from_settings(settings)
    assert "vacation" not in config.sieve_extensions and "fileinto" in config.sieve_extensions


@pytest.mark.parametrize("local,secure,mode,sasl", [
    (True, False, "loopback", "PLAIN LOGIN"),
    (False, False, "loopback", ""),
    (False, True, "loopback", "PLAIN LOGIN"),
    (True, False, "tls", ""),
    (False, False, "always", "PLAIN LOGIN"),
])
def test_sasl_offered_per_plaintext_policy(make, local, secure, mode, sasl):
    assert caps(make(local=local, secure=secure, plaintext_auth=mode).sent)["SASL"] == sasl


def test_remote_plaintext_login_needs_tls(make):
    d = make(local=False, tls_available=True)
    assert "STARTTLS" in caps(d.sent)
    r = d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n')
    assert r == b'NO (ENCRYPT-NEEDED) "Plaintext authentication needs TLS (STARTTLS)."\r\n'
    r = d.say("STARTTLS\r\n")
    assert r.startswith(b'OK "Begin TLS negotiation now."\r\n') and d.tls_started == 1
    after = caps(r)
    assert after["SASL"] == "PLAIN LOGIN" and "STARTTLS" not in after        # capabilities re-issued
    assert d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n') == b'OK "Logged in."\r\n'


def test_starttls_drops_what_was_pipelined_before_the_handshake(make):
    d = make(local=False, tls_available=True)
    r = d.say(f'STARTTLS\r\nAUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n')
    assert b"Logged in" not in r and d.session.state == "NOT-AUTHENTICATED"


def test_starttls_without_certificate_or_twice(make):
    assert make().say("STARTTLS\r\n") == b'NO "TLS is not available."\r\n'
    d = make(tls_available=True)
    d.say("STARTTLS\r\n")
    assert d.say("STARTTLS\r\n") == b'NO "TLS is already active."\r\n'


# -- authentication ------------------------------------------------------------------------

def test_plain_without_initial_response(make):
    d = make()
    assert d.say('AUTHENTICATE "PLAIN"\r\n') == b'""\r\n'
    assert d.say(b'{%d+}\r\n%s\r\n' % (len(plain(USER, PASSWORD)), plain(USER, PASSWORD).encode())) == \
        b'OK "Logged in."\r\n'
    c = caps(d.say("CAPABILITY\r\n"))
    assert c["OWNER"] == USER
    assert d.timeouts == [60, 1800]


def test_login_mechanism(make):
    d = make()
    assert d.say('AUTHENTICATE "LOGIN"\r\n') == b'"VXNlcm5hbWU6"\r\n'
    assert d.say(f'"{base64.b64encode(USER.encode()).decode()}"\r\n') == b'"UGFzc3dvcmQ6"\r\n'
    assert d.say(f'"{base64.b64encode(PASSWORD.encode()).decode()}"\r\n') == b'OK "Logged in."\r\n'
    # Roundcube's client: the mechanism and the user name quoted, the password as a {n+} literal.
    d = make()
    assert d.say('AUTHENTICATE "LOGIN"\r\n') == b'"VXNlcm5hbWU6"\r\n'
    assert d.say(f'"{base64.b64encode(USER.encode()).decode()}"\r\n') == b'"UGFzc3dvcmQ6"\r\n'
    assert d.say(literal(base64.b64encode(PASSWORD.encode())) + b"\r\n") == b'OK "Logged in."\r\n'


def test_mechanism_is_a_string_of_any_case(make):
    d = make()
    # RFC 5804 4: auth-type is a string; a bare atom is a bad command (as in Pigeonhole).
    assert d.say(f'AUTHENTICATE PLAIN "{plain(USER, PASSWORD)}"\r\n') == b'NO "Bad arguments for AUTHENTICATE."\r\n'
    assert d.say(f'AUTHENTICATE "plain" "{plain(USER, PASSWORD)}"\r\n') == b'OK "Logged in."\r\n'


@pytest.mark.parametrize("exchange,answer", [
    (['AUTHENTICATE "PLAIN"\r\n', '"*"\r\n'], b'NO "Authentication aborted."\r\n'),
    (['AUTHENTICATE "PLAIN" "not base64!"\r\n'], b'NO "Bad base64 in the SASL response."\r\n'),
    ([f'AUTHENTICATE "PLAIN" "{base64.b64encode(b"only-one-part").decode()}"\r\n'], b'NO "Bad PLAIN response."\r\n'),
    ([f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD, authzid="bob@example.org")}"\r\n'],
     b'NO "Logging in as another user is not supported."\r\n'),
    (['AUTHENTICATE "CRAM-MD5"\r\n'], b'NO "Unsupported authentication mechanism CRAM-MD5."\r\n'),
])
def test_refused_exchanges(make, exchange, answer):
    d = make()
    for line in exchange:
        r = d.say(line)
    assert r == answer and d.session.state == "NOT-AUTHENTICATED"


def test_authzid_equal_to_user_is_fine(make):
    assert make().say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD, authzid=USER)}"\r\n') == b'OK "Logged in."\r\n'


def test_wrong_password_is_slowed_then_connection_closed(make):
    d = make(login_failure_delay=2.5, login_failures_max=3)
    for attempt in (1, 2):
        assert d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, "wrong")}"\r\n') == b'NO "Authentication failed."\r\n'
        assert d.waits == [2.5] * attempt          # the NO came only after the delay
    assert d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, "wrong")}"\r\n') == b'BYE "Too many failed logins."\r\n'
    assert d.closed


def test_directory_down_is_trylater_not_wrong_password(make):
    auth = StubAuth()
    auth.down = True
    d = make(auth=auth)
    r = d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n')
    assert r == b'NO (TRYLATER) "Authentication service unavailable, try again later."\r\n'
    assert d.waits == [] and d.session.failures == 0


def test_wrong_password_logged_without_password(make, caplog):
    d = make()
    with caplog.at_level("INFO", logger="owlery.managesieve"):
        d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, "hunter2")}"\r\n')
        d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n')
    text = caplog.text
    assert "login failed: user=<alice@example.org> method=PLAIN rip=127.0.0.1 failures=1" in text
    assert "login: user=<alice@example.org>" in text
    assert "hunter2" not in text and PASSWORD not in text


@pytest.mark.parametrize("command", ["LISTSCRIPTS", 'GETSCRIPT "x"', 'PUTSCRIPT "x" "keep;"', 'SETACTIVE ""',
                                     'DELETESCRIPT "x"', 'HAVESPACE "x" 1', 'CHECKSCRIPT "keep;"', "UNAUTHENTICATE"])
def test_commands_need_login(make, command):
    assert make().say(command + "\r\n") == b'NO "Authenticate first."\r\n'


def test_no_second_login_or_starttls_after_login(make):
    d = logged_in(make, tls_available=True)
    assert d.say('AUTHENTICATE "PLAIN" "x"\r\n') == b'NO "AUTHENTICATE is not allowed after login."\r\n'
    assert d.say("STARTTLS\r\n") == b'NO "STARTTLS is not allowed after login."\r\n'


def test_big_literal_before_login_closes(make):
    d = make(max_line_length=1024)
    r = d.say(b'AUTHENTICATE "PLAIN" {5000+}\r\n' + b"A" * 100)
    assert r == b'BYE "Connection closed: literal too large."\r\n' and d.closed


# -- scripts -----------------------------------------------------------------------------

def test_put_list_activate_get(make, home):
    d = logged_in(make)
    assert d.say(b'PUTSCRIPT "owls" ' + literal(SCRIPT) + b"\r\n") == b'OK "Putscript completed."\r\n'
    assert d.say(b'PUTSCRIPT "plain" ' + literal(b"keep;\r\n", plus=False) + b"\r\n") == b'OK "Putscript completed."\r\n'
    assert d.say("LISTSCRIPTS\r\n") == b'"owls"\r\n"plain"\r\nOK "Listscripts completed."\r\n'
    assert d.say('SETACTIVE "owls"\r\n') == b'OK "Setactive completed."\r\n'
    assert d.say("LISTSCRIPTS\r\n") == b'"owls" ACTIVE\r\n"plain"\r\nOK "Listscripts completed."\r\n'
    assert d.say('GETSCRIPT "owls"\r\n') == b"{%d}\r\n%s\r\nOK \"Getscript completed.\"\r\n" % (len(SCRIPT), SCRIPT)
    link = home / "sieve" / "active.sieve"
    assert link.is_symlink() and str(link.readlink()) == "owls.sieve"
    assert (home / "sieve" / "owls.sieve").read_bytes() == SCRIPT
    assert d.say('SETACTIVE ""\r\n') == b'OK "Setactive completed."\r\n'
    assert not link.exists() and not link.is_symlink()
    assert d.say("LISTSCRIPTS\r\n") == b'"owls"\r\n"plain"\r\nOK "Listscripts completed."\r\n'


def test_compile_errors_come_back_with_line_and_column(make, home):
    d = logged_in(make)
    bad = b'require "fileinto";\r\nif header :contains "subject" "x" {\r\n  fileint "X";\r\n}\r\n'
    r = d.say(b"CHECKSCRIPT " + literal(bad) + b"\r\n")
    assert r == b'NO "script:3:3: error: unknown command \'fileint\' (only reported once at first occurrence)"\r\n'
    r = d.say(b'PUTSCRIPT "broken" ' + literal(bad) + b"\r\n")
    assert r.startswith(b'NO "broken:3:3: error: unknown command') and not (home / "sieve" / "broken.sieve").exists()
    two = b"keepx;\r\nstopp;\r\n"
    r = d.say(b"CHECKSCRIPT " + literal(two) + b"\r\n")
    assert r.startswith(b"NO {") and b"script:1:1: error" in r and b"\r\nscript:2:1: error" in r
    assert d.say(b"CHECKSCRIPT " + literal(SCRIPT) + b"\r\n") == b'OK "Script checked successfully."\r\n'


def test_warnings_response_code(make, home):
    d = logged_in(make)
    tz = b'require "date";\r\nif date :zone "bogus" "date" "year" "2024" { keep; }\r\n'
    assert d.say(b"CHECKSCRIPT " + literal(tz) + b"\r\n") == \
        b'OK (WARNINGS) "script:2:15: warning: specified :zone argument \'bogus\' is not a valid timezone"\r\n'
    assert d.say(b'PUTSCRIPT "tz" ' + literal(tz) + b"\r\n") == \
        b'OK (WARNINGS) "tz:2:15: warning: specified :zone argument \'bogus\' is not a valid timezone"\r\n'
    assert (home / "sieve" / "tz.sieve").read_bytes() == tz            # a warning does not refuse it


# What a webmail filter editor writes (Roundcube's managesieve plugin style): one "# rule:[name]"
# comment per rule, a require list, fileinto :copy with a flag, and its vacation form.
WEBMAIL_FILTERS = (
    b'require ["fileinto","copy","imap4flags"];\r\n'
    b'# rule:[owl post]\r\n'
    b'if header :contains "subject" "owl"\r\n'
    b'{\r\n'
    b'\tfileinto :copy "Owl Post";\r\n'
    b'\taddflag "\\\\Seen";\r\n'
    b'}\r\n'
    b'# rule:[lists]\r\n'
    b'if anyof (header :contains "list-id" "staff.example.org", address :is "from" "news@example.org")\r\n'
    b'{\r\n'
    b'\tfileinto "Lists/Staff";\r\n'
    b'\tstop;\r\n'
    b'}\r\n'
)
WEBMAIL_VACATION = (
    b'require ["vacation","date","relational"];\r\n'
    b'# rule:[holiday]\r\n'
    b'if allof (currentdate :value "ge" "date" "2024-07-01", currentdate :value "le" "date" "2024-07-21")\r\n'
    b'{\r\n'
    b'\tvacation :days 7 :from "alice@example.org" :addresses ["alice@example.org","a.liddell@example.org"]'
    b' :subject "Out of office" text:\r\n'
    b'I am away until 22 July.\r\n'
    b'..a line the client dot-stuffed\r\n'
    b'.\r\n'
    b';\r\n'
    b'}\r\n'
)


@pytest.mark.parametrize("name,script", [("roundcube", WEBMAIL_FILTERS), ("vacation", WEBMAIL_VACATION)])
def test_roundcube_generated_scripts(make, home, name, script):
    d = logged_in(make)
    assert d.say(b"CHECKSCRIPT " + literal(script) + b"\r\n") == b'OK "Script checked successfully."\r\n'
    assert d.say(f'PUTSCRIPT "{name}" '.encode() + literal(script) + b"\r\n") == b'OK "Putscript completed."\r\n'
    assert d.say(f'SETACTIVE "{name}"\r\n') == b'OK "Setactive completed."\r\n'
    assert d.say(f'GETSCRIPT "{name}"\r\n') == b"{%d}\r\n%s\r\nOK \"Getscript completed.\"\r\n" % (len(script), script)
    assert (home / "sieve" / f"{name}.sieve").read_bytes() == script


def test_setactive_refuses_a_script_we_cannot_run(make, home):
    (home / "sieve").mkdir(parents=True)
    # vnd.dovecot.pipe exists only with sieve_pipe_bin_dir (vnd.dovecot.debug is always there now)
    (home / "sieve" / "dovecotonly.sieve").write_bytes(b'require "vnd.dovecot.pipe";\r\npipe "x";\r\n')
    d = logged_in(make)
    r = d.say('SETACTIVE "dovecotonly"\r\n')
    assert r.startswith(b"NO {") and b"dovecotonly:1:9: error: require command: unknown Sieve capability" in r
    assert not (home / "sieve" / "active.sieve").is_symlink()


def test_response_codes(make, home):
    d = logged_in(make)
    assert d.say('GETSCRIPT "nope"\r\n') == b"NO (NONEXISTENT) \"there is no script 'nope'\"\r\n"
    assert d.say('SETACTIVE "nope"\r\n') == b"NO (NONEXISTENT) \"there is no script 'nope'\"\r\n"
    assert d.say('DELETESCRIPT "nope"\r\n') == b"NO (NONEXISTENT) \"there is no script 'nope'\"\r\n"
    d.say(b'PUTSCRIPT "a" ' + literal(b"keep;") + b"\r\n")
    d.say(b'PUTSCRIPT "b" ' + literal(b"discard;") + b"\r\n")
    d.say('SETACTIVE "a"\r\n')
    assert d.say('DELETESCRIPT "a"\r\n') == b"NO (ACTIVE) \"script 'a' is active; deactivate it first\"\r\n"
    assert d.say('RENAMESCRIPT "a" "b"\r\n') == b"NO (ALREADYEXISTS) \"a script 'b' exists already\"\r\n"
    assert d.say('RENAMESCRIPT "x" "y"\r\n') == b"NO (NONEXISTENT) \"there is no script 'x'\"\r\n"
    assert d.say('DELETESCRIPT "b"\r\n') == b'OK "Deletescript completed."\r\n'
    assert not (home / "sieve" / "b.sieve").exists()


def test_rename_keeps_the_active_script_active(make, home):
    d = logged_in(make)
    d.say(b'PUTSCRIPT "old" ' + literal(b"keep;") + b"\r\n")
    d.say('SETACTIVE "old"\r\n')
    assert d.say('RENAMESCRIPT "old" "new"\r\n') == b'OK "Renamescript completed."\r\n'
    assert d.say("LISTSCRIPTS\r\n") == b'"new" ACTIVE\r\nOK "Listscripts completed."\r\n'
    assert str((home / "sieve" / "active.sieve").readlink()) == "new.sieve"


def test_quota_limits(make):
    d = logged_in(make, max_scripts=2, max_script_size=100, max_storage=150)
    assert d.say('HAVESPACE "a" 101\r\n') == b'NO (QUOTA/MAXSIZE) "Script is too large (max 100 bytes)."\r\n'
    assert d.say('HAVESPACE "a" 100\r\n') == b'OK "Putscript would succeed."\r\n'
    assert d.say(b'PUTSCRIPT "a" ' + literal(b"#" * 90 + b"\r\nkeep;") + b"\r\n") == b'OK "Putscript completed."\r\n'
    assert d.say(b'PUTSCRIPT "b" ' + literal(b"#" * 70 + b"\r\nkeep;") + b"\r\n") == \
        b'NO (QUOTA) "Not enough room for this script (max 150 bytes in all)."\r\n'
    assert d.say(b'PUTSCRIPT "b" ' + literal(b"keep;") + b"\r\n") == b'OK "Putscript completed."\r\n'
    assert d.say(b'PUTSCRIPT "c" ' + literal(b"keep;") + b"\r\n") == b'NO (QUOTA/MAXSCRIPTS) "Too many scripts (max 2)."\r\n'
    assert d.say('HAVESPACE "c" 5\r\n') == b'NO (QUOTA/MAXSCRIPTS) "Too many scripts (max 2)."\r\n'
    # Replacing an existing script is not a new one.
    assert d.say(b'PUTSCRIPT "b" ' + literal(b"discard;") + b"\r\n") == b'OK "Putscript completed."\r\n'


def test_oversized_upload_is_refused_and_the_connection_goes_on(make, home):
    d = logged_in(make, max_script_size=100)
    r = d.say(b'PUTSCRIPT "big" ' + literal(b"#" * 5000) + b"\r\nNOOP\r\n")
    assert r == b'NO (QUOTA/MAXSIZE) "Script is too large (max 100 bytes)."\r\nOK "Done"\r\n'
    assert not (home / "sieve").exists()


@pytest.mark.parametrize("name,why", [
    ("", "it is empty"), ("a/b", "it contains a slash"),
    ("tab\there", "it contains a control character"), ("line\u2028sep", "it contains a control character"),
    ("active", "it is reserved"), ("x" * 250, "it is too long for a file name"),
])
def test_invalid_script_names(make, name, why):
    d = logged_in(make)
    r = d.say(b'PUTSCRIPT ' + literal(name.encode()) + b" " + literal(b"keep;") + b"\r\n")
    assert r == f'NO "Invalid script name: {why}."\r\n'.encode()
    assert d.session.bad_commands == 0


def test_unicode_names(make, home):
    d = logged_in(make)
    assert d.say('PUTSCRIPT "Ferien \u00e9t\u00e9" "keep;"\r\n'.encode()) == b'OK "Putscript completed."\r\n'
    assert d.say("LISTSCRIPTS\r\n") == '"Ferien \u00e9t\u00e9"\r\nOK "Listscripts completed."\r\n'.encode()
    assert (home / "sieve" / "Ferien \u00e9t\u00e9.sieve").exists()
    assert d.say(b'GETSCRIPT {1+}\r\n\xff\r\n') == b'NO "Script name is not UTF-8."\r\n'


# -- other commands --------------------------------------------------------------------

def test_noop_tag_and_logout(make):
    d = make()
    assert d.say('NOOP "t-17"\r\n') == b'OK (TAG "t-17") "Done"\r\n'
    assert d.say("NOOP\r\n") == b'OK "Done"\r\n'
    assert d.say("LOGOUT\r\nNOOP\r\n") == b'OK "Logout completed."\r\n' and d.closed


def test_unauthenticate(make):
    d = logged_in(make)
    assert d.say("UNAUTHENTICATE\r\n") == b'OK "Unauthenticate completed."\r\n'
    assert d.say("LISTSCRIPTS\r\n") == b'NO "Authenticate first."\r\n'
    assert "OWNER" not in caps(d.say("CAPABILITY\r\n"))
    assert d.timeouts == [60, 1800, 60]


def test_pipelined_commands_answer_in_order(make):
    d = make()
    r = d.say(f'NOOP "1"\r\nAUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\nPUTSCRIPT "p" {{5+}}\r\nkeep;\r\n'
              'LISTSCRIPTS\r\nNOOP "2"\r\n')
    assert r == (b'OK (TAG "1") "Done"\r\nOK "Logged in."\r\nOK "Putscript completed."\r\n'
                 b'"p"\r\nOK "Listscripts completed."\r\nOK (TAG "2") "Done"\r\n')


def test_too_many_bad_commands(make):
    d = make(max_bad_commands=3)
    assert d.say("FOO\r\n") == b'NO "Unknown command."\r\n'
    assert d.say('NOOP "x\r\n') == b'NO "Syntax error: unterminated quoted string."\r\n'
    assert d.say("BAR\r\n") == b'BYE "Too many invalid commands."\r\n' and d.closed


def test_bad_arguments(make):
    d = logged_in(make)
    assert d.say('GETSCRIPT\r\n') == b'NO "Bad arguments for GETSCRIPT."\r\n'
    assert d.say('HAVESPACE "x" "5"\r\n') == b'NO "Bad arguments for HAVESPACE."\r\n'
    assert d.say("LISTSCRIPTS x\r\n") == b'NO "Bad arguments for LISTSCRIPTS."\r\n'


def test_timeout_says_bye(make):
    d = make()
    d.take()
    d._do(d.session.timed_out())
    assert d.take() == b'BYE "Disconnected for inactivity."\r\n' and d.closed


def test_storage_failure_is_trylater(make, home):
    home.mkdir()
    (home / "sieve").write_text("a file where the directory should be")
    d = logged_in(make)
    assert d.say(b'PUTSCRIPT "a" ' + literal(b"keep;") + b"\r\n").startswith(b"NO ")
    assert d.say("NOOP\r\n") == b'OK "Done"\r\n'
