"""The socketmap tables over the files directory: one table of (map, key) -> answer, and the edges
(directory down, hostile keys, long replies, mail hosts, Maildir paths, settings checks)."""

import textwrap

import pytest

from owlery.directory import open_directory
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings
from socketmap.maps import TableConfig, lookup
from socketmap.protocol import NOTFOUND, ok, perm, temp

FILES = {
    "mailboxes": """
        alice@example.org
        bob@example.org       example.org/bob/Maildir
        carol@example.org     /srv/elsewhere/carol
        @catch.example.org
    """,
    "aliases": """
        sales@example.org       alice@example.org, bob@example.org, x@remote.test
        postmaster@example.org  alice@example.org
        @alias.example.org      @example.org
        @example.net            postmaster@example.org
        ghost@example.org       nobody@example.org
    """,
    "mail_hosts": """
        bob@example.org       backend-b.example.org
        @catch.example.org    2001:db8::25
    """,
}


def settings_for(tmp_path, **over):
    values = {}
    for name, text in FILES.items():
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        values["files_" + name] = str(path)
    return Settings().replace(directory_backend="files", **values, **over)


@pytest.fixture
def ask(tmp_path):
    """ask(map, key, **settings) -> SocketmapAnswer, over a fresh cached files directory."""
    opened = []

    def run(name, key, **over):
        s = settings_for(tmp_path, **over)
        d = open_directory(s)
        opened.append(d)
        return lookup(name, key, d, TableConfig.from_settings(s))
    yield run
    for d in opened:
        d.close()


V, M, A, T, R = ("virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_maps", "transport_maps",
                 "relay_recipient_maps")


@pytest.mark.parametrize("name,key,answer", [
    (V, "example.org", ok("OK")),
    (V, "Example.ORG.", ok("OK")),
    (V, "alias.example.org", ok("OK")),                  # a domain with aliases only is hosted too
    (V, "example.com", NOTFOUND),
    (V, ".example.org", NOTFOUND),                       # parent-domain style keys: not a domain of ours
    (V, "alice@example.org", NOTFOUND),
    (V, "", NOTFOUND),
    # virtual_alias_maps: Postfix asks the full address only; the server walks user+ext, user, @domain
    (A, "alice@example.org", ok("alice@example.org")),                  # a mailbox maps to itself
    (A, "Alice+News@Example.ORG", ok("alice+news@example.org")),        # ... with its extension
    (A, "sales@example.org", ok("alice@example.org,bob@example.org,x@remote.test")),
    (A, "sales+q@example.org", ok("alice+q@example.org,bob+q@example.org,x+q@remote.test")),
    (A, "postmaster@example.org", ok("alice@example.org")),
    (A, "joe+x@alias.example.org", NOTFOUND),             # domain alias to a user who does not exist
    (A, "alice+x@alias.example.org", ok("alice+x@example.org")),        # domain alias
    (A, "anyone@example.net", ok("postmaster@example.org")),            # catch-all alias, no extension
    (A, "anyone+x@example.net", ok("postmaster@example.org")),
    (A, "any+x@catch.example.org", ok("any+x@catch.example.org")),      # catch-all mailbox: itself
    (A, "ghost@example.org", NOTFOUND),                   # an alias reaching nothing: no backscatter
    (A, "nobody@example.org", NOTFOUND),
    (A, "x@remote.test", NOTFOUND),                       # not ours
    (A, "example.org", NOTFOUND),                         # virtual_alias_domains' domain lookups
    (A, "@example.net", ok("postmaster@example.org")),    # asked by hand: the entry itself
    (A, "@example.org", NOTFOUND),
    # virtual_mailbox_maps: Maildir relative to socketmap_mailbox_base, trailing slash
    (M, "alice@example.org", ok("example.org/alice/Maildir/")),         # maildir_path_template
    (M, "alice+x@Example.org", ok("example.org/alice/Maildir/")),
    (M, "bob@example.org", ok("example.org/bob/Maildir/")),             # the directory's own path
    (M, "carol@example.org", temp("Maildir /srv/elsewhere/carol is outside socketmap_mailbox_base /var/lib/owlery/mail")),
    (M, "any@catch.example.org", ok("catch.example.org/any/Maildir/")),
    (M, "sales@example.org", NOTFOUND),                   # an alias has no mailbox of its own
    (M, "postmaster@example.org", NOTFOUND),
    (M, "nobody@example.org", NOTFOUND),
    (M, "@catch.example.org", NOTFOUND),
    # transport_maps: the mailbox's back end
    (T, "bob@example.org", ok("lmtp:inet:backend-b.example.org:24")),
    (T, "Bob+x@example.org", ok("lmtp:inet:backend-b.example.org:24")),
    (T, "any@catch.example.org", ok("lmtp:inet:[2001:db8::25]:24")),
    (T, "alice@example.org", NOTFOUND),                   # no mail host, no default: Postfix's default
    (T, "sales@example.org", NOTFOUND),                   # aliases are expanded before routing
    (T, "nobody@example.org", NOTFOUND),
    (T, "*", NOTFOUND),                                   # trivial-rewrite's wildcard lookup
    # relay_recipient_maps: what the policy daemon accepts
    (R, "alice+x@example.org", ok("OK")),
    (R, "sales@example.org", ok("OK")),
    (R, "whoever@catch.example.org", ok("OK")),
    (R, "@catch.example.org", ok("OK")),
    (R, "@example.net", ok("OK")),
    (R, "@example.org", NOTFOUND),
    (R, "ghost@example.org", NOTFOUND),
    (R, "nobody@example.org", NOTFOUND),
    (R, "x@remote.test", NOTFOUND),
    ("virtual_alias_domains", "x", perm("unknown map 'virtual_alias_domains'; known: virtual_mailbox_domains, "
                                        "virtual_mailbox_maps, virtual_alias_maps, transport_maps, "
                                        "relay_recipient_maps")),
])
def test_tables(ask, name, key, answer):
    assert ask(name, key) == answer


@pytest.mark.parametrize("over,key,answer", [
    ({"socketmap_transport_default": "smtp:[relay.example.org]"}, "alice@example.org", ok("smtp:[relay.example.org]")),
    ({"socketmap_transport_default": "smtp:[relay.example.org]"}, "nobody@example.org", NOTFOUND),
    ({"socketmap_transport_template": "smtp:[{host}]:25"}, "any@catch.example.org", ok("smtp:[2001:db8::25]:25")),
    ({"socketmap_transport_template": "smtp:[{host}]:25"}, "bob@example.org", ok("smtp:[backend-b.example.org]:25")),
    ({"socketmap_transport_local_hosts": ["Backend-B.example.org."]}, "bob@example.org", NOTFOUND),
])
def test_transport_settings(ask, over, key, answer):
    assert ask(T, key, **over) == answer


def test_extensions_not_propagated_when_off(ask):
    assert ask(A, "sales+q@example.org", socketmap_propagate_unmatched_extensions=False) == \
        ok("alice@example.org,bob@example.org,x@remote.test")
    # The mailbox itself keeps its full address either way: Postfix must see it map to itself.
    assert ask(A, "alice+q@example.org", socketmap_propagate_unmatched_extensions=False) == ok("alice@example.org")


def test_mailbox_base_root_takes_any_absolute_path(ask):
    assert ask(M, "carol@example.org", socketmap_mailbox_base="/") == ok("srv/elsewhere/carol/")
    assert ask(M, "alice@example.org", socketmap_mailbox_base="/var/lib/owlery/mail/") == \
        ok("example.org/alice/Maildir/")


def test_template_outside_the_base_is_temp(ask):
    got = ask(M, "alice@example.org", maildir_path_template="/home/{localpart}/Maildir")
    assert got.status == "TEMP" and "outside socketmap_mailbox_base" in got.text


def test_too_long_reply_is_temp(ask):
    assert ask(A, "sales@example.org", socketmap_reply_length_max=64).status == "OK"     # 50 bytes
    assert ask(A, "sales+longer@example.org", socketmap_reply_length_max=64) == \
        temp("reply of 71 bytes is over socketmap_reply_length_max")


class Down:
    """A directory whose server is down."""

    def __getattr__(self, name):
        def fail(*args):
            raise DirectoryUnavailable("LDAP ldap://127.0.0.1:1: connection refused")
        return fail


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"the directory was asked ({name})")


@pytest.mark.parametrize("name,key", [(V, "example.org"), (A, "alice@example.org"), (M, "alice@example.org"),
                                      (T, "bob@example.org"), (R, "alice@example.org"), (R, "@example.org")])
def test_directory_down_is_temp_never_notfound(name, key):
    got = lookup(name, key, Down(), TableConfig.from_settings(Settings()))
    assert got == temp("directory unavailable: LDAP ldap://127.0.0.1:1: connection refused")


@pytest.mark.parametrize("name", [V, A, M, T, R])
@pytest.mark.parametrize("key", ["alice@exam\x00ple.org", "alice\r\n@example.org", "a\x7f@example.org",
                                 "no-at-sign", "@", "a@"])
def test_hostile_keys_are_not_found_without_asking(name, key):
    if name == V and "@" not in key and "\x00" not in key:
        return                 # a bare word is a domain question for that map
    assert lookup(name, key, Untouchable(), TableConfig.from_settings(Settings())) == NOTFOUND


@pytest.mark.parametrize("over", [{"socketmap_transport_template": "lmtp:inet:backend:24"},
                                  {"socketmap_transport_template": "lmtp:inet:{host} :24"},
                                  {"socketmap_transport_default": "smtp:a, smtp:b"},
                                  {"socketmap_mailbox_base": "var/mail"}])
def test_bad_settings_refused(over):
    with pytest.raises(ValueError):
        TableConfig.from_settings(Settings().replace(**over))
