"""`owlery policyd` (run the policy daemon), `owlery policyd-query` (ask it one question), `owlery spf`.

`owlery spf import-policyd-spf` is policyd/spf_import.py (tests/policyd/test_spf_import.py).

Registered by owlery.app.cli; imports nothing heavy at module top (Twisted, ldap3 load
inside the command).
Tests: none directly; `owlery policyd` runs in tests/policyd/test_service_socket.py and
tests/e2e/test_policyd_*.py (through tests/harness/owlery_daemons.py), `query()` in
tests/e2e/test_greylist_shared_redis.py; the `policyd-query` command's options and its error
when no daemon answers in tests/core/test_newcomer_s20.py.
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False     # typing is not imported at run time (owlery.cliutil says why)
if TYPE_CHECKING:
    from typing import Any


def _build() -> Any:
    from policyd.service import build
    return build


def query(endpoint: str, attrs: dict[str, str], timeout_s: float = 10.0) -> str:
    """Send one request to a running daemon; return the action text ("" if it hung up)."""
    from owlery.endpoints import connect, parse_endpoint
    from policyd.protocol import encode_request
    ep = parse_endpoint(endpoint)
    if ep.kind not in ("unix", "tcp"):
        raise ValueError("query needs a unix: or tcp: endpoint")
    with connect(ep, timeout_s) as s:
        s.sendall(encode_request(attrs))
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                return ""
            data += chunk
    line = data.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
    return line.partition("=")[2]


def _cmd_query(args: argparse.Namespace) -> int:
    from owlery import cliutil as cli
    settings = cli.load_settings(args)
    endpoint = args.endpoint if args.endpoint else list(settings.policyd_listen)[0]
    attrs = {"request": "smtpd_access_policy", "protocol_state": args.state,
             "protocol_name": "ESMTP", "client_address": args.client_address,
             "client_name": args.client_name, "helo_name": args.helo,
             "sender": args.sender, "recipient": args.recipient, "instance": "query.1",
             "size": str(args.size), "sasl_username": args.sasl_username}
    for item in args.attr:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"owlery: --attr {item!r}: expected name=value", file=sys.stderr)
            return 2
        attrs[name] = value
    try:
        action = query(endpoint, attrs)
    except OSError as e:
        # Say where the endpoint came from: the usual cause is a daemon started with other
        # settings (or not at all).
        source = "--endpoint" if args.endpoint else f"policyd_listen of {settings.path or 'the built-in defaults'}"
        print(f"owlery: cannot reach the policy daemon at {endpoint} ({source}): {e.strerror or e}; "
              "is `owlery policyd` running with these settings? (--config FILE, or --endpoint ENDPOINT)",
              file=sys.stderr)
        return os.EX_TEMPFAIL
    if not action:
        print("owlery: the policy daemon closed the connection without a reply", file=sys.stderr)
        return os.EX_TEMPFAIL
    print(action)
    return 0


def _cmd_spf_import(args: argparse.Namespace) -> int:
    from policyd.spf_import import DEFAULT_PATH, command
    return command(args.file if args.file is not None else DEFAULT_PATH, sys.stdout, sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommands to the `owlery` parser."""
    from owlery.cliutil import add_config_option, add_daemon_command
    add_daemon_command(sub, "policyd", "run the Postfix policy daemon (check_policy_service)", _build,
                       workers_setting="policyd_workers")

    p = sub.add_parser("policyd-query", help="send one policy request to a running policy daemon "
                                             "and print the action (for trying checks by hand)")
    add_config_option(p)
    # A client: it asks a daemon, it listens nowhere (--listen/-l kept for old command lines).
    p.add_argument("--endpoint", "--listen", "-l", metavar="ENDPOINT", default=None,
                   help="the policy daemon to ask: unix:/path or tcp:HOST:PORT (default: the first "
                        "of policyd_listen)")
    p.add_argument("--state", default="RCPT", help="protocol_state (default RCPT)")
    p.add_argument("--sender", default="", help="envelope sender (default <>)")
    p.add_argument("--recipient", default="", help="envelope recipient")
    p.add_argument("--client-address", default="192.0.2.1")
    p.add_argument("--client-name", default="unknown")
    p.add_argument("--helo", default="client.example")
    p.add_argument("--size", type=int, default=0, help="SIZE= hint or message size")
    p.add_argument("--sasl-username", default="")
    p.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                   help="any other attribute (repeatable)")
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser("spf", help="SPF check tools")
    ssub = p.add_subparsers(dest="spf_command", metavar="ACTION")
    ssub.required = True
    q = ssub.add_parser("import-policyd-spf", help="print the Owlery settings equivalent to a pypolicyd-spf "
                                                   "policyd-spf.conf (what cannot be carried over: on stderr, "
                                                   "exit 1)")
    # (the default path is spf_import.DEFAULT_PATH: not imported here, `owlery` starts on every command)
    q.add_argument("file", nargs="?", default=None, metavar="FILE",
                   help="pypolicyd-spf's configuration (default Debian's "
                        "/etc/postfix-policyd-spf-python/policyd-spf.conf)")
    q.set_defaults(func=_cmd_spf_import)
