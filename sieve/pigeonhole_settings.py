"""Pigeonhole's setting names and values, as Owlery's settings: one table for every reader.

Dovecot's configuration (plugin { sieve_* }) names many of the engine's limits and choices
that Owlery declares under its own names. CONFIG_MAP says which Owlery setting each Dovecot
key sets, VALUE_MAPS and INVERTED how a value is spelled differently, LIST_KEYS and
EDITHEADER_PREFIX the numbered and per-header keys, and the *_SETTINGS sets how a value is
read (Dovecot booleans and durations). Read by the vnd.dovecot.testsuite harness's
test_config_set (sieve/testsuite.py) and by `owlery sieve import-dovecot`
(sieve/dovecot_import.py). Tests: tests/sieve/test_testsuite_config.py,
tests/sieve/test_dovecot_import.py
"""

from __future__ import annotations

import re

from sieve import extensions


DOVECOT_UNITS = {
    "ms": 0.001,
    "msec": 0.001,
    "msecs": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
    "": 1,
}


def dovecot_bool(v: str) -> bool:
    """A Dovecot boolean ("yes"/"no"; Owlery also reads "true"/"1")."""
    return v.strip().lower() in ("yes", "true", "1")


def disabled_extensions(value: str) -> list[str]:
    """sieve_extensions (Pigeonhole's syntax) as Owlery's sieve_extensions_disabled. The
    harness starts with every extension enabled, as Pigeonhole's testsuite does: "+name" and
    "-name" enable and disable one; a plain name in the list makes the list the whole set of
    enabled extensions (the plain names plus the "+" ones)."""
    names = sorted(n for n, e in extensions.REGISTRY.items() if not e.hidden)
    words = value.split()
    if any(w[:1] not in "+-" for w in words):
        enabled = {w for w in words if w[:1] not in "+-"}
    else:
        enabled = set(names)
    for w in words:
        if w[:1] == "+":
            enabled.add(w[1:])
        elif w[:1] == "-":
            enabled.discard(w[1:])
    return [n for n in names if n not in enabled]


def dovecot_duration(v: str) -> float:
    """Seconds from a Dovecot time value ("1d", "2 days", "30 secs", "12h")."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", v.lower())
    if m is None or m.group(2) not in DOVECOT_UNITS:
        raise ValueError(f"not a Dovecot time value: {v!r}")
    return float(m.group(1)) * DOVECOT_UNITS[m.group(2)]


# Dovecot setting name -> our setting


CONFIG_MAP = {
    "sieve_user_email": "sieve_user_email",
    "recipient_delimiter": "sieve_recipient_delimiter",
    "sieve_include_max_includes": "sieve_max_includes",
    "sieve_include_max_nesting_depth": "sieve_max_include_depth",
    "sieve_variables_max_variable_size": "sieve_max_variable_size",
    "sieve_variables_max_value_size": "sieve_max_variable_size",
    "sieve_variables_max_scope_count": "sieve_max_variables",
    "sieve_variables_max_scope_size": "sieve_max_variables",
    "sieve_editheader_max_header_size": "sieve_max_header_size",
    "sieve_notify_max_notifications": "sieve_max_notifications",
    "sieve_notify_mailto_envelope_from": "sieve_notify_envelope_from",
    "sieve_vacation_min_period": "sieve_vacation_min_period",
    "sieve_vacation_max_period": "sieve_vacation_max_period",
    "sieve_vacation_default_period": "sieve_vacation_default_period",
    "sieve_vacation_default_subject": "sieve_vacation_default_subject",
    "sieve_vacation_default_subject_template": "sieve_vacation_subject_template",
    "sieve_duplicate_default_period": "sieve_duplicate_default_period",
    "sieve_duplicate_max_period": "sieve_duplicate_max_period",
    "sieve_max_script_size": "sieve_max_script_size",
    "sieve_vacation_use_original_recipient": "sieve_vacation_use_original_recipient",
    "sieve_vacation_check_recipient": "sieve_vacation_check_recipient",
    # Pigeonhole <= 2.3 and early 2.4 name, inverted (see INVERTED)
    "sieve_vacation_dont_check_recipient": "sieve_vacation_check_recipient",
    "sieve_spamtest_status_header": "sieve_spamtest_status_header",
    "sieve_spamtest_status_type": "sieve_spamtest_status_type",
    "sieve_spamtest_score_max_value": "sieve_spamtest_max_value",
    "sieve_spamtest_score_max_header": "sieve_spamtest_max_header",
    "sieve_virustest_status_header": "sieve_virustest_status_header",
    "sieve_virustest_status_type": "sieve_virustest_status_type",
    "sieve_virustest_score_max_value": "sieve_virustest_max_value",
    # the Pigeonhole 2.3 names of the same settings
    "sieve_spamtest_max_header": "sieve_spamtest_max_header",
    "sieve_spamtest_max_value": "sieve_spamtest_max_value",
    "sieve_virustest_max_value": "sieve_virustest_max_value",
    "sieve_max_actions": "sieve_max_actions",
    "sieve_max_redirects": "sieve_max_redirects",
    # extprograms (sieve/extprograms.py): the same names
    **{
        f"sieve_{k}_{s}": f"sieve_{k}_{s}"
        for k in ("pipe", "filter", "execute")
        for s in ("bin_dir", "exec_timeout", "input_eol")
    },
    "sieve_redirect_envelope_from": "sieve_redirect_envelope_from",
    "sieve_report_from": "sieve_report_from",
    "sieve_vacation_to_header_ignore_envelope": "sieve_vacation_to_header_ignore_envelope",
    # a boolean in Pigeonhole, a choice in Owlery (see VALUE_MAPS)
    "sieve_vacation_send_from_recipient": "vacation_envelope_from",
    # Pigeonhole 2.3 space-separated lists (2.4: sieve_editheader_header/<name>/..., EDITHEADER_PREFIX)
    "sieve_editheader_protected": "sieve_editheader_protected",
    "sieve_editheader_forbid_add": "sieve_editheader_forbid_add",
    "sieve_editheader_forbid_delete": "sieve_editheader_forbid_delete",
}
# Dovecot values that Owlery spells differently
VALUE_MAPS = {
    "sieve_vacation_send_from_recipient": lambda v: "recipient" if dovecot_bool(v) else "null",
    "sieve_editheader_protected": str.split,
    "sieve_editheader_forbid_add": str.split,
    "sieve_editheader_forbid_delete": str.split,
}
# Pigeonhole 2.4's per-header editheader filters: sieve_editheader_header/<name>/forbid_add
# (or .../sieve_editheader_header_forbid_add) = yes|no, likewise forbid_delete; .../name renames
EDITHEADER_PREFIX = "sieve_editheader_header/"
LIST_KEYS = {
    "sieve_spamtest_text_value/": "sieve_spamtest_text_values",
    "sieve_virustest_text_value/": "sieve_virustest_text_values",
}
DURATION_SETTINGS = {
    "sieve_vacation_min_period",
    "sieve_vacation_max_period",
    "sieve_vacation_default_period",
    "sieve_duplicate_default_period",
    "sieve_duplicate_max_period",
    "sieve_pipe_exec_timeout",
    "sieve_filter_exec_timeout",
    "sieve_execute_exec_timeout",
}
BOOL_SETTINGS = {
    "sieve_vacation_use_original_recipient",
    "sieve_vacation_check_recipient",
    "sieve_vacation_to_header_ignore_envelope",
}
# Dovecot keys whose boolean value means the opposite of their Owlery counterpart's
INVERTED = {"sieve_vacation_dont_check_recipient"}
# vnd.dovecot.environment: `sieve_environment/<item>` makes the environment item
# "vnd.dovecot.config.<item>" (Pigeonhole's ext-vnd-environment)
ENV_PREFIX = "sieve_environment/"
INT_SETTINGS = {
    "sieve_max_includes",
    "sieve_max_include_depth",
    "sieve_max_variables",
    "sieve_max_notifications",
    "sieve_max_actions",
    "sieve_max_redirects",
}
