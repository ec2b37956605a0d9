"""`owlery lda`: deliver one message from stdin (Postfix mailbox_command or pipe(8) transport).

dovecot-lda's options, so its command lines work unchanged: -f sender, -a recipient, -d user,
-m default mailbox (empty: INBOX), -r final recipient (Delivered-To), -p message file instead of
stdin, and the flags -e and -k, which ask for what Owlery always does (a refusal reported as
exit 77 with its reason on stderr, never a bounce of the LDA's own; the environment kept). As
Postfix's local(8) runs it for a mailbox_command or an alias's |command: the leading mbox
"From sender date" line is dropped and names the sender when -f is not given, the MTA's
Return-Path/X-Original-To/Delivered-To are kept and none added, and with no -a, -d or -r the
recipient is $RECIPIENT (sieve.delivery.mta_input). The exit
status is what the MTA acts on (sysexits): 0 delivered; 67 unknown user (bounce 5.1.1);
75 temporary failure (the MTA retries; nothing was stored); 77 refused (over quota with
delivery_quota_full_tempfail off, Sieve ereject). On failure the first stderr line
starts with an enhanced status code and a reason, which Postfix's pipe(8) puts in the DSN.
A `-m` folder that cannot be used (a bad name, or one that cannot be created) is replaced
by INBOX with a log line, as dovecot-lda does, instead of deferring the message for ever.
An alias or group given as -d (or reaching the LDA unexpanded) is delivered to each of its
mailboxes, or refused with 67 under delivery_alias_expansion = "refuse"; the exit status stands
for all of them (sieve.delivery.users explains the rules: 75 when one member must be retried,
and the retry skips those that have it).
Imports stay lazy: the Sieve engine loads only when the user has a script.

SECURITY: runs as whatever pipe(8) gives it (`user=` in master.cf, never root: Postfix
refuses that) and trusts its command line (the envelope) and settings file; the message
and the user's Sieve script are hostile input, run under the same budgets as lmtpd's. It
writes only the user's Maildir and the state store, without following links below the
Maildir root, and exits 75 (nothing stored) on any failure it cannot classify, 67 only
for a recipient the directory does not know (a missing directory is 75, never 67).
Talks to: stdin, sieve.delivery.executor. Tests: tests/delivery/test_lda.py,
tests/delivery/test_lda_folder.py, tests/delivery/test_group_delivery.py,
tests/delivery/test_lda_dovecot_options.py, tests/e2e/test_lda_local_postfix.py
"""

from __future__ import annotations

import sys
from os import EX_NOPERM, EX_NOUSER, EX_TEMPFAIL

from owlery.settings import Bool, Duration, Endpoint, Size, Str, setting
from sieve.delivery import replies

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import
if TYPE_CHECKING:
    import argparse

LDA_MESSAGE_SIZE_LIMIT = setting("lda_message_size_limit", Size, "50M", unit="bytes",
                                 doc="Largest message the LDA reads from stdin; larger ones exit 77 (5.3.4).")

LDA_LOG_PATH = setting("lda_log_path", Str, None,
                       "File the LDA appends its log lines to. Unset: syslog when log_target = \"syslog\", "
                       "else no log lines (Postfix's pipe(8) turns the LDA's stderr into the bounce or "
                       "defer text, so the LDA writes only its final status there, and Postfix logs it).")

LDA_LMTP_ENDPOINT = setting(
    "lda_lmtp_endpoint", Endpoint, None,
    "A running `owlery lmtpd` (unix:/path or tcp:HOST:PORT) the LDA hands each message to over LMTP "
    "instead of loading the Sieve engine itself (much faster start-up). Unset: the first unix: or "
    "tcp: entry of lmtpd_listen (so a host running lmtpd needs nothing more). Unreachable or not "
    "ready: the LDA delivers in-process.")
LDA_LMTP_HANDOFF = setting("lda_lmtp_handoff", Bool, True,
                           "Whether the LDA hands messages to a running lmtpd (lda_lmtp_endpoint, else "
                           "lmtpd_listen). false: always deliver in-process.")
LDA_LMTP_TIMEOUT = setting("lda_lmtp_timeout", Duration, 60, unit="s",
                           doc="How long the LDA waits for each lmtpd reply (lda_lmtp_endpoint).")



def _fail(code: int, text: str) -> int:
    sys.stderr.write(text.replace("\n", " ") + "\n")
    sys.stderr.flush()
    return code


def _load_settings(args: argparse.Namespace):
    from owlery import settings as settings_mod
    settings = settings_mod.load(args.config, missing_ok=args.config is None)
    if args.overrides:
        import tomllib
        values = {}
        for item in args.overrides:
            name, eq, raw = item.partition("=")
            if not eq:
                raise settings_mod.SettingsError(f"-o {item!r}: expected NAME=VALUE")
            try:
                values[name.strip()] = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                values[name.strip()] = raw     # a bare word is taken as a string
        settings = settings.replace(**values)
    return settings


def _setup_logging(settings) -> None:
    if settings.lda_log_path is None and settings.log_target != "syslog":
        # Nothing on stderr but the final status line, and no `import logging` for it.
        from owlery import lazylog
        lazylog.silence()
        return
    import logging
    if settings.lda_log_path is not None:
        handler = logging.FileHandler(settings.lda_log_path)
        from owlery.log_stderr import OneRecordFormatter    # a line break in logged text starts no line of its own
        handler.setFormatter(OneRecordFormatter("%(asctime)s owlery-lda[%(process)d]: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(getattr(logging, settings.log_level.upper()))
    else:
        from owlery import log as owlery_log
        owlery_log.setup(settings, "lda")


def main(args: argparse.Namespace, stdin_data: bytes | None = None) -> int:
    """The in-process delivery; `stdin_data` is the message when the fast path already read it."""
    from owlery import settings as settings_mod
    try:
        settings = _load_settings(args)
    except (settings_mod.SettingsError, ValueError) as e:
        # A broken config is the postmaster's to fix; the MTA keeps the mail meanwhile.
        return _fail(EX_TEMPFAIL, replies.dsn_line(replies.R_LDA_CONFIG, str(e)))
    from sieve.delivery.mta_input import env_recipient, has_trace_headers, split_mbox_from
    final_recipient = getattr(args, "final_recipient", None)
    user_arg = args.user or args.recipient or final_recipient or env_recipient()
    if not user_arg:
        # A master.cf mistake: keep the mail queued (75) rather than bounce it all.
        return _fail(EX_TEMPFAIL, replies.dsn_line(replies.R_LDA_USAGE))
    recipient = args.recipient or final_recipient or user_arg
    _setup_logging(settings)

    limit = settings.lda_message_size_limit
    path = getattr(args, "path", None)
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError as e:
            # The MTA's command line names a file it has not written (yet): retry, never bounce.
            return _fail(EX_TEMPFAIL, replies.dsn_line(replies.R_LDA_INPUT, f"-p {path}: {e.strerror}"))
    else:
        data = sys.stdin.buffer.read(limit + 1) if stdin_data is None else stdin_data
    if len(data) > limit:
        return _fail(EX_NOPERM, replies.dsn_line(replies.R_TOO_BIG))
    line_sender, data = split_mbox_from(data)
    given = args.sender if args.sender is not None else line_sender or ""
    sender = "" if given in ("<>", "") else given
    message = data.replace(b"\r\n", b"\n")

    from owlery.errors import DirectoryUnavailable
    from sieve.delivery.users import Group, UserResolver, alias_refusal
    try:
        user = UserResolver.from_settings(settings).expand(user_arg)
    except DirectoryUnavailable as e:
        return _fail(EX_TEMPFAIL, replies.dsn_line(replies.R_LDA_DIRECTORY, str(e)))
    except Exception as e:  # noqa: BLE001  a lookup bug or bad template must defer, never bounce
        return _fail(EX_TEMPFAIL, replies.dsn_line(replies.lda_lookup_failed(user_arg), str(e)))
    if user is None:
        return _fail(EX_NOUSER, replies.dsn_line(replies.user_unknown(user_arg)))
    if isinstance(user, Group) and settings.delivery_alias_expansion == "refuse":
        return _fail(EX_NOUSER, replies.dsn_line(alias_refusal(user_arg)))

    from sieve.delivery.executor import DeliveryExecutor
    executor = DeliveryExecutor(settings, program="lda")
    if has_trace_headers(message):
        settings = settings.replace(delivery_add_return_path=False)
        executor.settings = settings
    elif final_recipient and settings.delivery_add_return_path:
        # -r: Delivered-To names the final recipient; Sieve's envelope "to" stays -a (dovecot-lda)
        from sieve.delivery.executor import prepend_trace
        message = prepend_trace(message, sender, final_recipient)
        settings = settings.replace(delivery_add_return_path=False)
        executor.settings = settings
    from sieve.delivery.queueid import postfix_queue_id
    if isinstance(user, Group):
        outcome = executor.deliver_group(message, sender, recipient, user, queue_id=postfix_queue_id(message),
                                         mailbox_for=lambda member: usable_mailbox(executor, member, args.mailbox))
    else:
        mailbox = usable_mailbox(executor, user, args.mailbox)
        outcome = executor.deliver(message, sender, recipient, user, mailbox=mailbox,
                                   original_recipient=args.recipient, queue_id=postfix_queue_id(message))
    if outcome.exit_code != 0:
        return _fail(outcome.exit_code, replies.dsn_line(outcome.reply))
    return 0


def usable_mailbox(executor, user, mailbox: str | None) -> str | None:
    """`-m`'s folder when it can take mail (created here when missing, as keep would), else
    None (INBOX, or sieve_default_mailbox) with a log line: dovecot-lda's rule. A message that
    cannot go where the MTA said must still be delivered, not deferred until it bounces."""
    if mailbox is None or mailbox.upper() == "INBOX":
        return mailbox
    from owlery.lazylog import get_logger
    from owlery.maildir import MaildirError
    try:
        executor.maildir_for(user).ensure(mailbox, create=True)
    except MaildirError as e:
        why = str(e)
    except Exception as e:  # noqa: BLE001  a bug here must not cost the message: INBOX still works
        why = f"{e.__class__.__name__}: {e}"
    else:
        return mailbox
    get_logger("owlery.lda").warning(
        "lda: %s: cannot use -m folder %r (%s); delivering into %s", user.address, mailbox, why,
        executor.settings.sieve_default_mailbox)
    return None
