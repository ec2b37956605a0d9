"""environment (RFC 5183) and vnd.dovecot.environment: the environment test and the
${env.NAME} variables namespace.

Items come from `run(environment=...)` over engine defaults. Tests: conformance
extensions/environment/, extensions/vnd.dovecot/environment/.
"""

from __future__ import annotations

from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension

DEFAULTS = {"domain": "", "host": "localhost", "location": "MDA", "name": "Owlery Sieve",
            "phase": "during", "remote-host": "", "remote-ip": "", "version": "0.1"}


def env_value(rt, name: str) -> str | None:
    name = name.lower()
    if name in rt.environment:
        return rt.environment[name]
    if name == "vnd.dovecot.default-mailbox" or name == "default-mailbox":
        return rt.settings.sieve_default_mailbox
    if name in ("vnd.dovecot.username", "username"):
        return rt.environment.get("username", rt.envelope.rcpt_to.split("@")[0])
    if name == "domain" and rt.envelope.rcpt_to and "@" in rt.envelope.rcpt_to:
        return rt.envelope.rcpt_to.rsplit("@", 1)[1]
    return DEFAULTS.get(name)


def _run(rt, node):
    v = env_value(rt, rt.s(node.pos[0]))
    return rt.match(node, [] if v is None else [v], rt.sl(node.pos[1]))


EXTENSIONS = (
    Extension(name="environment", commands=(
        CommandDef("environment", kind="test", positional=(STRING, STRINGLIST), match=True, run=_run),)),
    Extension(name="vnd.dovecot.environment", implies=("environment", "variables")),
)
