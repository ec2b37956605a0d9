"""Sieve engine limits and engine-wide policy settings, each a named setting (section `sieve`).

Every resource a script or message can make the engine spend is bounded here: script size,
block nesting, string length, actions, redirects, interpreter steps, string memory, match
variables, includes (and the compiled-include cache), variable sizes, header edits, regex
sizes, header fields read. Read by sieve.validator, sieve.interpreter and the extensions
through a `Settings` object passed in.
Tests: tests/sieve/test_limits.py (one hostile script per limit),
tests/sieve/test_budgets_hostile.py (memory budget, include cache and compile charge),
tests/sieve/test_header_memory_s20.py (header fields read, memory per message).
"""

from __future__ import annotations

from owlery.settings import (Bool, Size, Str, StrList, Duration, SettingType, choice, int_range, list_of, satisfying,
                            parse_size, setting)

SIEVE_MAX_SCRIPT_SIZE = setting(
    "sieve_max_script_size", Size, "1M",
    "Largest Sieve script accepted by the compiler; a bigger script is a compile error.",
    unit="bytes")
SIEVE_MAX_NESTING = setting(
    "sieve_max_nesting", int_range(2, 1000), 32,
    "Deepest nesting level of command blocks, the script's top level being level 1 (so 31 "
    "blocks may nest: if inside if ...), and, separately, of the tests of one command, the "
    "command being level 1 (so 31 tests may nest: allof inside anyof inside not ...). The "
    "default accepts and refuses the depths Pigeonhole does. At least 2: at 1 no command with a "
    "test (if, or any test at all) would compile.")
SIEVE_MAX_STRING_LENGTH = setting(
    "sieve_max_string_length", Size, "1M",
    "Longest string literal in a script, and longest string a variable expansion may build.",
    unit="bytes")
SIEVE_MAX_STRING_LIST = setting(
    "sieve_max_string_list", int_range(1, None), 350_000,
    "Most strings in one string list of a script. The default lets through every list a script "
    "within sieve_max_script_size can hold (Pigeonhole has no such limit: filter UIs such as Horde "
    "Ingo write a whole blacklist as one list, thousands of addresses long).")
SIEVE_MAX_ACTIONS = setting(
    "sieve_max_actions", int_range(1, None), 32,
    "Most actions one script run may add to its result; more is a runtime error (keep into INBOX).")
SIEVE_MAX_REDIRECTS = setting(
    "sieve_max_redirects", int_range(0, None), 4,
    "Most redirect actions one script run may add; more is a runtime error.")
SIEVE_MAX_CPU_STEPS = setting(
    "sieve_max_cpu_steps", int_range(100, None), 1_000_000,
    "Interpreter work budget per run: each command, test, match comparison and regex or "
    "string scan costs steps; a run past it stops with a resource-limit error (keep into INBOX).")
SIEVE_MAX_MEMORY = setting(
    "sieve_max_memory", Size, "32M",
    "String memory budget per run: every string the run builds (variable expansions, set "
    "modifiers, match variables, added header fields, included script sources) is charged by "
    "its length, cumulatively; a run past it stops with a resource-limit error (keep into INBOX).",
    unit="bytes")
SIEVE_MAX_MATCH_VALUES = setting(
    "sieve_max_match_values", int_range(1, 1000), 32,
    "Most match variables (${0}..${N}) a :matches or :regex match records.")
SIEVE_MAX_INCLUDES = setting(
    "sieve_max_includes", int_range(0, None), 255,
    "Most distinct scripts one run may include (include extension).")
SIEVE_MAX_INCLUDE_CACHE = setting(
    "sieve_max_include_cache", int_range(1, None), 256,
    "Most compiled included scripts kept per process (include extension; keyed by the source's "
    "hash, least recently used dropped first).")
SIEVE_MAX_INCLUDE_DEPTH = setting(
    "sieve_max_include_depth", int_range(1, None), 10,
    "Deepest chain of nested includes.")
SIEVE_MAX_VARIABLES = setting(
    "sieve_max_variables", int_range(1, None), 255,
    "Most variables one script (scope) may declare.")
SIEVE_MAX_VARIABLE_SIZE = setting(
    "sieve_max_variable_size", Size, "4k",
    "Largest value a variable may hold; longer values are truncated (RFC 5229 allows it).",
    unit="bytes")
SIEVE_MAX_VARIABLE_NAME = setting(
    "sieve_max_variable_name", int_range(1, None), 64,
    "Longest variable name.")
# Pigeonhole's EXT_EDITHEADER_MINIMUM_MAX_HEADER_SIZE: 2.4 refuses a smaller
# sieve_editheader_max_header_size as a configuration error (0.5 ignored it with a warning)
MIN_HEADER_SIZE = 1024


def _parse_header_size(v) -> int:
    n = parse_size(v)
    if n < MIN_HEADER_SIZE:
        raise ValueError(f"less than the minimum of {MIN_HEADER_SIZE} bytes, got {n}")
    return n


SIEVE_MAX_HEADER_SIZE = setting(
    "sieve_max_header_size", SettingType("size", _parse_header_size), "2k",
    "Largest header field value addheader may add (editheader extension); at least 1k, a smaller "
    "value is a configuration error (as Pigeonhole's sieve_editheader_max_header_size).", unit="bytes")
SIEVE_MAX_NOTIFICATIONS = setting(
    "sieve_max_notifications", int_range(0, None), 16,
    "Most notify actions one run may add (enotify extension).")
SIEVE_MAX_REGEX_LENGTH = setting(
    "sieve_max_regex_length", int_range(1, None), 512,
    "Longest :regex pattern.", unit="characters")
SIEVE_MAX_REGEX_MEMORY = setting(
    "sieve_max_regex_memory", Size, "256k",
    "Memory RE2 may use for one compiled :regex pattern (program and DFA cache, values under "
    "16k count as 16k); a pattern whose program does not fit is an error. Matching time is "
    "linear in the text whatever the pattern, and charged to sieve_max_cpu_steps.", unit="bytes")
SIEVE_MAX_MATCH_SUBJECT = setting(
    "sieve_max_match_subject", Size, "64k",
    "Longest value a :regex or :matches match looks at (the rest is ignored), bounding "
    "pathological patterns.", unit="bytes")
SIEVE_MAX_MESSAGE_SCAN = setting(
    "sieve_max_message_scan", Size, "10M",
    "Most message bytes body/mime tests decode and search.", unit="bytes")
SIEVE_MAX_HEADER_FIELDS = setting(
    "sieve_max_header_fields", int_range(100, None), 10_000,
    "Most header fields of the message (and of each MIME part) that tests read; a line of the "
    "header that is no field and no continuation counts as one. Past it, the rest of the header "
    "is not visible to tests (header, address, exists, date, deleteheader, mime...); the message "
    "is still delivered whole and unchanged (after a header edit those lines follow the edited "
    "fields as they came), and one warning is logged for the message. Pigeonhole reads every "
    "field; no real message comes near the default, which bounds a run's memory to a small "
    "multiple of the message (tests/sieve/test_header_memory_s20.py).", unit="fields")
SIEVE_MAX_MIME_PARTS = setting(
    "sieve_max_mime_parts", int_range(1, None), 1000,
    "Most MIME parts parsed per message (body, mime, foreverypart).")
SIEVE_MAX_MIME_DEPTH = setting(
    "sieve_max_mime_depth", int_range(1, None), 32,
    "Deepest MIME nesting parsed.")
SIEVE_MAX_LOOP_NESTING = setting(
    "sieve_max_loop_nesting", int_range(1, 100), 4,
    "Deepest nesting of foreverypart loops (also across includes, checked at run time).")
SIEVE_MAX_CACHE_SCRIPTS = setting(
    "sieve_max_cache_scripts", int_range(1, None), 1000,
    "Most compiled scripts kept in one ScriptCache (least recently used dropped first).")

# Engine policy (not limits, but engine-wide choices the delivery and tests share).
SIEVE_DEFAULT_MAILBOX = setting(
    "sieve_default_mailbox", Str, "INBOX",
    "Mailbox that keep and implicit keep file into.")
SIEVE_RECIPIENT_DELIMITER = setting(
    "sieve_recipient_delimiter", Str, "+",
    "Characters separating user and detail in a local part (subaddress :user/:detail); each "
    "character is a possible separator.")
SIEVE_POSTMASTER_ADDRESS = setting(
    "sieve_postmaster_address", Str, "postmaster@localhost",
    "From address of messages the engine generates (reject MDNs, notifications).")
SIEVE_USER_EMAIL = setting(
    "sieve_user_email", Str, None,
    "The user's own address when the envelope recipient is not it (vacation, notify, and "
    "sieve_redirect_envelope_from = \"user_email\").")
SIEVE_NOTIFY_ENVELOPE_FROM = setting(
    "sieve_notify_envelope_from", choice("default", "sender", "recipient", "orig_recipient",
                                         "user_email", "postmaster"), "default",
    "MAIL FROM of enotify mailto notifications: 'default' = <> when the notified message came "
    "from <>, else the notify :from address, else sieve_postmaster_address; or the original "
    "sender, recipient, original recipient, sieve_user_email, or the postmaster.")
_ADDRESS_SOURCES = ("sender", "recipient", "orig_recipient", "user_email", "postmaster")


def _parse_address_source(v) -> str:
    """Pigeonhole's address source: a keyword (any case; "default" is "sender"), or an explicit
    SMTP path in angle brackets ("<>" is the null sender), checked here so a bad one is refused
    when the file is read."""
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    s = v.strip()
    word = s.lower()
    if word == "default":
        return "sender"
    if word in _ADDRESS_SOURCES:
        return word
    if s.startswith("<") and s.endswith(">"):
        from sieve.address import AddressError, parse_path

        try:
            parse_path(s)
        except AddressError as e:
            raise ValueError(f"invalid address {s!r}: {e}") from None
        return s
    raise ValueError(f"expected one of {', '.join(_ADDRESS_SOURCES)} or an <address>, got {v!r}")


SIEVE_REDIRECT_ENVELOPE_FROM = setting(
    "sieve_redirect_envelope_from",
    SettingType("one of " + "|".join(_ADDRESS_SOURCES) + "|<address>", _parse_address_source),
    "sender",
    "MAIL FROM of redirected messages (Pigeonhole's setting of the same name): the original "
    "sender, the (final) recipient, the original recipient (ORCPT), sieve_user_email (the recipient "
    "when unset), sieve_postmaster_address, or an explicit \"<address>\". A message from the null "
    "sender <> is always redirected from <> (RFC 5228 4.2). Only the original sender is rewritten "
    "by SRS (redirect_srs_domain).")


def _parse_report_from(v) -> str:
    """sieve_report_from: an address source as sieve_redirect_envelope_from's, except that
    "default" is the postmaster (Pigeonhole's report falls back to postmaster_address)."""
    if isinstance(v, str) and v.strip().lower() == "default":
        return "postmaster"
    return _parse_address_source(v)


SIEVE_REPORT_FROM = setting(
    "sieve_report_from",
    SettingType("one of " + "|".join(_ADDRESS_SOURCES) + "|<address>", _parse_report_from),
    "postmaster",
    "From field of vnd.dovecot.report abuse reports (Pigeonhole's setting of the same name): "
    "sieve_postmaster_address, the original sender, the (final) recipient, the original recipient "
    "(ORCPT), sieve_user_email (the recipient when unset), or an explicit \"<address>\". A source "
    "that gives no address (the null sender) falls back to the postmaster. Reports are always "
    "sent from the null sender <>.")
SIEVE_EXTENSIONS_DISABLED = setting(
    "sieve_extensions_disabled", StrList, ["vnd.dovecot.report", "imapflags", "notify"],
    "Extensions scripts may not require, e.g. [\"vacation\", \"enotify\"]. By default three are "
    "off, as in Pigeonhole (its sieve_extensions does not enable them): vnd.dovecot.report, since a "
    "report mails a copy of the message to any address the script names, beyond sieve_max_redirects; "
    "and the deprecated imapflags and notify (drafts that imap4flags and enotify replaced), which "
    "scripts migrated from Cyrus may still require. A list you set replaces the default: name "
    "vnd.dovecot.report, imapflags and notify in it to keep them off, [] allows them all.")
SIEVE_VACATION_MIN_PERIOD = setting(
    "sieve_vacation_min_period", Duration, "1d",
    "Shortest vacation :days/:seconds period a script may ask for (RFC 5230/6131).", unit="s")
SIEVE_VACATION_MAX_PERIOD = setting(
    "sieve_vacation_max_period", Duration, "90d",
    "Longest vacation period a script may ask for; 0 means no upper limit (as Pigeonhole, whose "
    "default is 0: Owlery bounds it so tracking entries expire).", unit="s")
SIEVE_VACATION_DEFAULT_PERIOD = setting(
    "sieve_vacation_default_period", Duration, "7d",
    "Vacation period when the script gives none. With a maximum set (not 0), "
    "sieve_vacation_min_period <= this <= sieve_vacation_max_period must hold: otherwise all three "
    "periods fall back to their defaults, with a warning (as Pigeonhole 0.5).", unit="s")
SIEVE_VACATION_DEFAULT_SUBJECT = setting(
    "sieve_vacation_default_subject", Str, None,
    "Subject of a vacation reply without :subject to a message without a Subject field "
    "(Pigeonhole's sieve_vacation_default_subject). Unset: \"Automated reply\".")
SIEVE_VACATION_SUBJECT_TEMPLATE = setting(
    "sieve_vacation_subject_template", Str, "Auto: %$",
    "Subject of a vacation reply without :subject to a message with a Subject field: %$ (or "
    "%{subject}) is the answered message's subject, %% a percent sign (Pigeonhole's "
    "sieve_vacation_default_subject_template). A message without one gets sieve_vacation_default_subject.")
SIEVE_VACATION_USE_ORIGINAL_RECIPIENT = setting(
    "sieve_vacation_use_original_recipient", Bool, False,
    "Count the original recipient (ORCPT, before aliasing) as one of the user's addresses when "
    "vacation checks that the user was an explicit recipient.")
SIEVE_VACATION_CHECK_RECIPIENT = setting(
    "sieve_vacation_check_recipient", Bool, True,
    "Reply only when one of the user's addresses is in To/Cc/Bcc (RFC 5230 4.5); off replies to "
    "any message that passes the other checks (for aliases the engine cannot know).")
SIEVE_VACATION_TO_HEADER_IGNORE_ENVELOPE = setting(
    "sieve_vacation_to_header_ignore_envelope", Bool, False,
    "The To field of a vacation reply: off names the envelope sender the reply goes to; on takes "
    "the first address of the answered message's Sender, else Resent-From, else From field, "
    "whatever the envelope sender (for SRS-rewritten senders; the reply still goes to the envelope "
    "sender). Pigeonhole's setting of the same name.")
# a field name (RFC 5322 3.6.8), kept as written; compared without regard to case
def _is_field_name(name: str) -> bool:
    return bool(name) and all("!" <= c <= "~" and c != ":" for c in name)   # [!-9;-~]+


_HEADER_NAMES = list_of(satisfying(_is_field_name, "a header field name"), name="list of header field names")
SIEVE_EDITHEADER_FORBID_ADD = setting(
    "sieve_editheader_forbid_add", _HEADER_NAMES, ["Received", "Auto-Submitted", "Delivered-To"],
    "Header fields addheader may not add (silently ignored, RFC 5293 6; Pigeonhole's "
    "sieve_editheader_forbid_add and sieve_editheader_header/<name>/forbid_add). Subject can "
    "always be added (RFC 5293 6); X-Sieve-Redirected-From, the redirect loop field, never. "
    "Pigeonhole's default is empty; Owlery's keeps scripts from forging the trace and loop fields "
    "that hop counting, RFC 3834 and the MTA's loop check read ([] gives Pigeonhole's policy).")
SIEVE_EDITHEADER_FORBID_DELETE = setting(
    "sieve_editheader_forbid_delete", _HEADER_NAMES, ["Delivered-To"],
    "Header fields deleteheader may not delete (silently ignored; Pigeonhole's "
    "sieve_editheader_forbid_delete and sieve_editheader_header/<name>/forbid_delete). Subject can "
    "always be deleted; Received (RFC 5293 6), Auto-Submitted (RFC 3834 loops) and "
    "X-Sieve-Redirected-From never. Pigeonhole's default is empty; Owlery's keeps the MTA's "
    "Delivered-To loop check working on redirected copies ([] gives Pigeonhole's policy).")
SIEVE_EDITHEADER_PROTECTED = setting(
    "sieve_editheader_protected", _HEADER_NAMES, [],
    "Header fields addheader may not add and deleteheader may not delete: both lists above at "
    "once (Pigeonhole 2.3's sieve_editheader_protected), with the same fixed exceptions.")
SIEVE_DUPLICATE_DEFAULT_PERIOD = setting(
    "sieve_duplicate_default_period", Duration, "12h",
    "How long duplicate remembers an id when the script gives no :seconds.", unit="s")
SIEVE_DUPLICATE_MAX_PERIOD = setting(
    "sieve_duplicate_max_period", Duration, "2d",
    "Longest :seconds a duplicate test may ask for.", unit="s")
SIEVE_SPAMTEST_STATUS_HEADER = setting(
    "sieve_spamtest_status_header", Str, "X-Spam-Score:\\s*(-?[0-9]+(\\.[0-9]+)?)",
    "Header and regex (one group) the spamtest score is read from, as \"Name:regex\".")
SIEVE_SPAMTEST_MAX_VALUE = setting(
    "sieve_spamtest_max_value", Str, "10",
    "Score that maps to spamtest 10 (certainly spam); scores scale linearly below it.")
SIEVE_VIRUSTEST_STATUS_HEADER = setting(
    "sieve_virustest_status_header", Str, None,
    "Header and regex (one group) the virustest value is read from, as \"Name:regex\"; "
    "unset means virustest answers 0 (not tested).")
SIEVE_VIRUSTEST_TEXT_VALUES = setting(
    "sieve_virustest_text_values", StrList, [],
    "Five texts, matched against the virustest group, that map to values 1..5.")
SIEVE_NOTIFY_MAILTO_MAX_RECIPIENTS = setting(
    "sieve_notify_mailto_max_recipients", int_range(1, None), 8,
    "Most recipients (To, Cc and Bcc of the URI together) one notify mailto: action sends to; "
    "the rest are dropped with a log line (Pigeonhole's limit).")
SIEVE_NOTIFY_MAILTO_MAX_RUN_RECIPIENTS = setting(
    "sieve_notify_mailto_max_run_recipients", int_range(1, None), 32,
    "Most mailto notification recipients one script run may send to, over all its notify "
    "actions; past it recipients are dropped with a log line.")
