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
        # RFC 5183 4.1: the primary DNS domain, usually a proper suffix of the host name
        host = env_value(rt, "host") or ""
        return host.split(".", 1)[1] if "." in host else host
    return DEFAULTS.get(name)


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
