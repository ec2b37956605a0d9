"""`owlery lmtpd` and `owlery lda`: the delivery commands (registered by owlery.app.cli).

Kept light on purpose: nothing here imports Twisted or the Sieve engine at module level,
so `owlery lda` (one process per message) starts fast.
Tests: tests/delivery/test_lda.py, tests/delivery/test_lmtpd.py
"""

from __future__ import annotations

import os

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import
if TYPE_CHECKING:
    import argparse


def _cmd_lmtpd(args: argparse.Namespace) -> int:
    from owlery.cliutil import load_settings
    load_settings(args)     # a bad file fails here with file:line and exit 1, before binding
    from sieve.delivery import lmtpd
    return lmtpd.main(args.config, args.listen)


def _cmd_lda(args: argparse.Namespace, stdin_data: bytes | None = None) -> int:
    from sieve.delivery import lda
    return lda.main(args, stdin_data)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommands to the `owlery` parser."""
    from owlery.cliutil import add_config_option, add_listen_option

    p = sub.add_parser("lmtpd", help="run the LMTP server that delivers through Sieve into Maildir++")
    add_config_option(p)
    add_listen_option(p)
    p.set_defaults(func=_cmd_lmtpd)

    p = sub.add_parser("lda", help="deliver one message from stdin through Sieve into Maildir++ "
                                   "(for Postfix mailbox_command or a pipe transport)",
                       description=LDA_DESCRIPTION)
    add_lda_options(p)


LDA_DESCRIPTION = ("Deliver one message from stdin. Exit status: 0 delivered, 67 unknown user, "
                   "75 try again later, 77 refused (over quota, Sieve ereject).")


def add_lda_options(p: argparse.ArgumentParser) -> None:
    from owlery.cliutil import add_config_option
    add_config_option(p)
    p.add_argument("-f", dest="sender", metavar="SENDER", default=None,
                   help="envelope sender (MAIL FROM); empty or <> for the null sender; default: the "
                        "sender of a leading mbox 'From ' line (local(8) writes one), else the null sender")
    p.add_argument("-a", dest="recipient", metavar="ADDRESS", default=None,
                   help="envelope recipient (RCPT TO) as the MTA saw it; default: -r, else the -d user, "
                        "else $RECIPIENT (set by local(8) for a mailbox_command)")
    p.add_argument("-d", dest="user", metavar="USER", default=None,
                   help="the user (address) to deliver to; default: the -a address")
    p.add_argument("-r", dest="final_recipient", metavar="ADDRESS", default=None,
                   help="final envelope recipient, written in Delivered-To (dovecot-lda's -r)")
    p.add_argument("-p", dest="path", metavar="PATH", default=None,
                   help="read the message from PATH instead of standard input")
    p.add_argument("-e", dest="stderr_rejection", action="store_true",
                   help="accepted for dovecot-lda command lines: a refusal is always reported on "
                        "stderr with exit 77, never by a bounce of the LDA's own")
    p.add_argument("-k", dest="keep_environment", action="store_true",
                   help="accepted for dovecot-lda command lines: the environment is never cleared")
    p.add_argument("-m", dest="mailbox", metavar="MAILBOX", default=None,
                   help="default mailbox for keep instead of INBOX (created when missing)")
    p.add_argument("-o", dest="overrides", metavar="NAME=VALUE", action="append", default=[],
                   help="override one setting (TOML value), e.g. -o 'maildir_fsync=\"never\"'")
    p.set_defaults(func=_cmd_lda)


def _lda_parser() -> argparse.ArgumentParser:
    """The `owlery lda` parser (argparse loads here: an ordinary argv never needs it)."""
    import argparse

    class _LDAParser(argparse.ArgumentParser):
        def error(self, message: str):
            # A bad master.cf argv: Postfix keeps the mail and retries (EX_TEMPFAIL) while the postmaster
            # fixes it; argparse's exit status 2 is outside sysexits, which pipe(8) bounces (5.3.0).
            from sieve.delivery.replies import usage_line
            self.exit(os.EX_TEMPFAIL, usage_line(self.prog, message) + "\n")

    p = _LDAParser(prog="owlery lda", description=LDA_DESCRIPTION)
    add_lda_options(p)
    return p


def lda_main(argv: list[str], stdin_data: bytes | None = None, plain: dict[str, str] | None = None) -> int:
    """`owlery lda ...` in-process, without building the whole `owlery` parser (owlery.app.cli's fast
    path; sieve.delivery.lda_lmtp calls it when lmtpd cannot take the message)."""
    args = _plain_lda_args(plain) if plain is not None else None
    if args is not None:
        return _cmd_lda(args, stdin_data)
    args = _lda_parser().parse_args(argv)
    return _cmd_lda(args, stdin_data)


class _PlainArgs:
    """argparse.Namespace's role for the plain options (not types.SimpleNamespace: `types`
    is one more module for each LDA start)."""

    def __init__(self, **values):
        self.__dict__.update(values)


def _plain_lda_args(opts: dict[str, str]):
    """The options of an ordinary master.cf line, as sieve.delivery.lda_lmtp.parse_args read them
    (`plain`), without argparse (which, with the shutil and gettext it loads, costs the LDA ~4 ms
    per message); None when argparse must judge (a value that looks like an option; parse_args
    already left help, abbreviations, repeated options and anything unusual to it)."""
    if any(v.startswith(("-", "=")) for v in opts.values()):
        return None
    return _PlainArgs(config=opts.get("config"), sender=opts.get("sender"),
                      recipient=opts.get("recipient"), user=opts.get("user"),
                      final_recipient=opts.get("final_recipient"), path=opts.get("path"),
                      mailbox=opts.get("mailbox"), stderr_rejection="stderr_rejection" in opts,
                      keep_environment="keep_environment" in opts,
                      overrides=[opts["override"]] if "override" in opts else [], func=_cmd_lda)
