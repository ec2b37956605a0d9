"""environment (RFC 5183) and vnd.dovecot.environment: the environment test and the
${env.NAME} variables namespace.

Items come from `run(environment=...)` over engine defaults; vnd.dovecot.* items exist only
when the script requires vnd.dovecot.environment. Tests: conformance
extensions/environment/, extensions/vnd.dovecot/environment/; tests/sieve/test_rfc_fixes.py.
"""

from __future__ import annotations

from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension

# RFC 5183 4: the items every run knows. remote-host and remote-ip exist only when the
# delivery passes them (an unknown item makes the test false, it is not "").
DEFAULTS = {"host": "localhost", "location": "MDA", "name": "Owlery Sieve", "phase": "during", "version": "0.1"}


def env_value(rt, name: str) -> str | None:
    """The item's value, or None when the item does not exist (RFC 5183 4). Names are matched
    exactly: RFC 5183 makes no item name case-insensitive (its registry names are lower case),
    and Pigeonhole finds no "Domain" (test false, ${env.DOMAIN} empty)."""
    if name.startswith("vnd.dovecot."):
        # these items belong to the vnd.dovecot.environment extension: unknown without it
        if "vnd.dovecot.environment" not in rt.requires:
            return None
        if name in rt.environment:
            return rt.environment[name]
        if name == "vnd.dovecot.default-mailbox":
            return rt.settings.sieve_default_mailbox
        if name == "vnd.dovecot.username":
            return rt.environment.get("username", rt.envelope.rcpt_to.split("@")[0])
        return None
    if name in rt.environment:
        return rt.environment[name]
    if name == "domain":
        return _domain(rt)
    return DEFAULTS.get(name)


def _domain(rt) -> str:
    """RFC 5183 4.1: "the primary DNS domain associated with the Sieve execution context, usually
    but not always a proper suffix of the host name". As Pigeonhole (and so Dovecot LMTP) has it:
    the domain of the user's name when it has one (a delivery to u@other.test runs for
    other.test, whatever the host), else the host name without its first label when what is left
    still holds a dot ("mx.example.net": "example.net"), else the host name ("mx.local", not the
    one-label "local"). Tests: tests/sieve/test_pigeonhole_probes_s20c.py."""
    user = rt.environment.get("vnd.dovecot.username") or rt.environment.get("username") or ""
    _, at, user_domain = user.rpartition("@")
    if at and user_domain:
        return user_domain
    host = env_value(rt, "host") or ""
    _, dot, rest = host.partition(".")
    return rest if dot and "." in rest else host


def _run(rt, node):
    v = env_value(rt, rt.s(node.pos[0]))
    if v is None:
        # RFC 5183 4: an item that does not exist makes the test false whatever the match
        # type; `:count "ge" ["0"]` must not count zero values into a match (as Pigeonhole).
        return False
    return rt.match(node, [v], rt.sl(node.pos[1]))


EXTENSIONS = (
    Extension(name="environment", commands=(
        CommandDef("environment", arg_names=("name", "key list"), kind="test", positional=(STRING, STRINGLIST), match=True, run=_run),)),
    Extension(name="vnd.dovecot.environment", implies=("environment",)),
)
