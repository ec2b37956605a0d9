"""Settings of the policy daemon (light: reading them imports no Twisted).

Declared here once; policyd/service.py (listen, connection limits, workers, threads) and
policyd/pipeline.py (which checks run where) read them, and `owlery config show`,
`owlery postfix` read them without loading the reactor. The checks declare their own
settings beside their code (policyd/checks/).
Talks to: nothing. Tests: tests/core/test_settings_light.py
"""

from __future__ import annotations

from owlery.settings import Duration, Endpoints, Networks, int_range, list_of, registered, setting, table_of
from policyd.checks import CHECKS
from policyd.protocol import PROTOCOL_STATES

POLICYD_LISTEN = setting("policyd_listen", Endpoints, ["unix:/var/spool/postfix/owlery/policyd.sock"],
                         "Where the policy daemon listens: unix:/path, tcp:HOST:PORT or systemd:NAME.")
POLICYD_CLIENT_NETWORKS = setting(
    "policyd_client_networks", Networks, [],
    "Networks whose TCP clients may connect (e.g. [\"127.0.0.0/8\", \"::1\", \"10.1.0.0/24\"] on a "
    "back end answering its relays' quota questions); other clients are disconnected at once and "
    "logged. Empty: every client that reaches the port (bind policyd_listen to loopback or a unix "
    "socket then). Unix socket clients are not filtered (the socket's mode governs).")
POLICYD_LINE_LENGTH_MAX = setting("policyd_line_length_max", int_range(64, 1 << 20), 4096, unit="bytes",
                                  doc="Longest request line (name=value) accepted; longer closes the connection.")
POLICYD_ATTRIBUTES_MAX = setting("policyd_attributes_max", int_range(1, 10000), 100,
                                 "Most attributes in one request (Postfix 3.8 sends about 30); "
                                 "more closes the connection.")
POLICYD_IDLE_TIMEOUT = setting("policyd_idle_timeout", Duration, 330, unit="s",
                               doc="Close a connection idle this long (Postfix's own max_idle is 300 s).")
POLICYD_DECISION_TIMEOUT = setting(
    "policyd_decision_timeout", Duration, 60, unit="s",
    doc="A decision still running after this long is abandoned: log and disconnect without a reply. "
        "`owlery postfix` prints Postfix's policy timeout (check_policy_service's timeout=) a little "
        "above the shorter of this and the longest the configured checks' own timeouts allow, at "
        "most 100 s (Postfix's smtpd_policy_service_timeout), so Postfix waits for every answer.")
POLICYD_REQUESTS_QUEUED_MAX = setting("policyd_requests_queued_max", int_range(1, 10000), 16,
                                      "Requests a client may send ahead of the replies (pipelining) "
                                      "before the connection is closed.")
POLICYD_WORKERS = setting(
    "policyd_workers", int_range(1, 64), 1,
    "Worker processes answering on the same listen sockets (one Python process uses one core; "
    "set it to the number of cores on a busy MX). Each worker keeps its own directory cache; "
    "state (greylist, rate limits) is shared through the state store.")
POLICYD_THREADS_MAX = setting("policyd_threads_max", int_range(1, 256), 8,
                              "Threads for blocking backends (LDAP, DNS, SQL, file reads).")
POLICYD_BLOCKING_QUEUE_MAX = setting("policyd_blocking_queue_max", int_range(1, 100000), 1000,
                                     "Blocking jobs that may wait for a thread; beyond it checks "
                                     "answer DEFER_IF_PERMIT 4.3.0 at once.")

CheckTable = table_of(list_of(registered(CHECKS, "check")),
                      keys=registered(PROTOCOL_STATES, "protocol_state", normalise=str.upper),
                      name="table of protocol_state = [check names]")

POLICYD_CHECKS = setting(
    "policyd_checks", CheckTable, None,
    "Which checks run at each protocol_state, in order, e.g. "
    '{ RCPT = ["recipient", "lists", "quota"], "END-OF-MESSAGE" = ["quota"] }. '
    "A state left out runs no check (answers DUNNO). Unset: every check that is enabled "
    "by default, in registry order.")
POLICYD_INSTANCES_REMEMBERED = setting(
    "policyd_instances_remembered", int_range(1, 1000), 20,
    "Per connection, how many message instances keep their queued PREPEND/WARN "
    "annotations and sent-header names (postgrey remembers 20).")
