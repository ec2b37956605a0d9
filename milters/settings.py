"""Settings of the milter process itself (light: reading them imports no pymilter).

Declared here once; milters/adapter.py (listen socket, libmilter timeouts, workers) reads them, and
`owlery config show`, `owlery postfix` read them without loading libmilter.
Talks to: nothing. Tests: tests/core/test_settings_light.py
"""

from __future__ import annotations

from owlery.settings import Duration, Endpoint, int_range, setting

MILTER_LISTEN = setting(
    "milter_listen", Endpoint, "unix:/var/spool/postfix/owlery/milter.sock",
    "Where the milter listens (unix:/path[:mode=660] or tcp:HOST:PORT). Postfix: "
    "smtpd_milters = unix:owlery/milter.sock (`owlery postfix` prints it).")
MILTER_MTA_TIMEOUT = setting(
    "milter_mta_timeout", Duration, 600,
    "How long libmilter waits for the MTA's next command before dropping a connection.", unit="s")
MILTER_LISTEN_BACKLOG = setting(
    "milter_listen_backlog", int_range(1, 65535), 128,
    "Listen queue length of the milter socket.")
MILTER_WORKERS = setting(
    "milter_workers", int_range(1, 64), 1,
    "Milter processes sharing the one listen socket (one Python process uses about one core; set "
    "it to the number of cores on a busy MX). Each keeps its own DNS and DKIM key caches; the "
    "quarantine is shared through its store. Read at start only.")
