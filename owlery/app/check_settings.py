"""Settings of `owlery check` (the Nagios/Icinga plugin): timeout, thresholds, the probe address.

A light module (owlery.settings only) so `owlery config show` lists them without loading a
probe; owlery.sections maps the `check` prefix here. The plugin itself is owlery/app/check.py.
Talks to: nothing. Tests: tests/core/test_check.py
"""

from __future__ import annotations

from owlery.settings import Duration, Endpoint, Str, choice, int_range, list_of, setting, table_of

# Every WHAT `owlery check` knows, in the order `all` runs and reports them.
CHECK_NAMES = ("policyd", "milter", "lmtpd", "socketmap", "managesieve", "clamd", "spamd",
               "directory", "state", "quarantine", "queue")
# The checks that talk to a listening Owlery daemon (check_endpoints may point them elsewhere).
DAEMON_CHECKS = ("policyd", "milter", "lmtpd", "socketmap", "managesieve")

CHECK_TIMEOUT = setting(
    "check_timeout", Duration, "10s", unit="s",
    doc="Longest one probe of `owlery check` waits (connect and answer); past it the check is "
        "CRITICAL. With `all` the probes run at once, so the whole run takes about this long at most.")
CHECK_RESPONSE_WARNING = setting(
    "check_response_warning", Duration, "5s", unit="s",
    doc="A probe answered correctly but slower than this is WARNING (the perfdata's warn threshold; "
        "check_timeout is its crit).")
CHECK_ALL = setting(
    "check_all", list_of(choice(*CHECK_NAMES), name="list of check names"), None,
    "Which checks `owlery check all` runs. Unset: those the settings make relevant (the three "
    "daemons `owlery run` starts; socketmap with an LDAP directory; managesieve when "
    "managesieve_listen is set; clamd, spamd and quarantine when a milter stage uses them; "
    "directory when check_directory_probe is set; state when policyd greylists or rate-limits; "
    "queue when postqueue is installed).")
CHECK_ENDPOINTS = setting(
    "check_endpoints", table_of(Endpoint, keys=choice(*DAEMON_CHECKS),
                                name="table of daemon = endpoint"), {},
    "Where `owlery check` reaches a daemon instead of its first *_listen endpoint, e.g. "
    "{ policyd = \"unix:/var/spool/postfix/owlery/policyd.sock\" } when the daemon listens on a "
    "systemd:NAME socket only.")
CHECK_DIRECTORY_PROBE = setting(
    "check_directory_probe", Str, None,
    "An address that must exist in the directory (e.g. postmaster@example.org): `owlery check "
    "directory` resolves it through directory_backend and is CRITICAL when the lookup fails or "
    "finds nothing. Unset: the directory check is UNKNOWN and `all` leaves it out.")
CHECK_QUEUE_WARNING = setting(
    "check_queue_warning", int_range(0, None), 100,
    "`owlery check queue` is WARNING when Postfix's queue holds more messages than this (all of "
    "`postqueue -j`, hold included; the perfdata's warn threshold, as Nagios reads it).")
CHECK_QUEUE_CRITICAL = setting(
    "check_queue_critical", int_range(0, None), 500,
    "`owlery check queue` is CRITICAL when Postfix's queue holds more messages than this.")
CHECK_POSTQUEUE_COMMAND = setting(
    "check_postqueue_command", Str, "postqueue",
    "The postqueue program `owlery check queue` runs (a name looked up in PATH and /usr/sbin, or a path).")
CHECK_POSTFIX_CONFIG_DIRECTORY = setting(
    "check_postfix_config_directory", Str, None,
    "Postfix configuration directory handed to postqueue as -c (a second Postfix instance); "
    "unset: postqueue's default (/etc/postfix).")
