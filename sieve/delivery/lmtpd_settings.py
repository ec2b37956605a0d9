"""Settings of the LMTP server (light: reading them imports no Twisted).

Declared here once; sieve/delivery/lmtpd.py (listen, limits, threads, trace header) reads
them, and `owlery config show`, `owlery postfix` read them without loading the reactor.
Talks to: nothing. Tests: tests/core/test_settings_light.py
"""

from __future__ import annotations

from owlery.settings import Bool, Duration, Endpoints, Int, Size, Str, int_range, setting

LMTPD_LISTEN = setting(
    "lmtpd_listen",
    Endpoints,
    ["unix:/var/spool/postfix/owlery/lmtpd.sock"],
    "Where the LMTP server listens (unix:/path, tcp:HOST:PORT, systemd:NAME).",
)
LMTPD_HOSTNAME = setting("lmtpd_hostname", Str, None, "Name in the greeting and LHLO reply. Unset: the host name.")
LMTPD_MESSAGE_SIZE_LIMIT = setting(
    "lmtpd_message_size_limit",
    Size,
    "50M",
    unit="bytes",
    doc="Largest message accepted (advertised with SIZE); larger ones get 552 5.3.4.",
)
LMTPD_COMMAND_LINE_LIMIT = setting(
    "lmtpd_command_line_limit",
    int_range(512, 65536),
    2048,
    unit="bytes",
    doc="Longest command line (with CRLF); longer ones get 500 5.5.2.",
)
LMTPD_RECIPIENT_LIMIT = setting(
    "lmtpd_recipient_limit", int_range(1, None), 1000, "Most recipients in one transaction; more get 452 4.5.3."
)
LMTPD_BAD_COMMAND_LIMIT = setting(
    "lmtpd_bad_command_limit",
    int_range(2, 1000),
    20,
    unit="commands",
    doc="Syntax and sequence errors (500, 501, 503) in a row that end a connection: the last one is "
    "answered 421 4.7.0 and the connection closed. Any other reply starts the count again, so a "
    "connection the MTA reuses for many messages is not dropped for odd addresses spread over them "
    "(Dovecot's LMTP: 11).",
)
LMTPD_PIPELINE_BUFFER_LIMIT = setting(
    "lmtpd_pipeline_buffer_limit",
    Size,
    "1M",
    unit="bytes",
    doc="Most pipelined input held for one connection while a lookup or delivery is pending "
    "(reading pauses meanwhile, so this is only reached by one very large read); past it "
    "the input is dropped and the connection closed with 421 4.5.0 after the pending replies.",
)
LMTPD_IDLE_TIMEOUT = setting(
    "lmtpd_idle_timeout",
    Duration,
    "5m",
    unit="s",
    doc="A client that sent no whole command line for this long is disconnected with 421 4.4.2. The "
    "bytes of an unfinished line do not count, so a command dripped a byte at a time is cut off "
    "(as Postfix's lmtp client bounds each command by a whole-command timeout). In DATA the time "
    "allowed grows with the message: this plus its size over lmtpd_data_min_rate.",
)
LMTPD_DATA_MIN_RATE = setting(
    "lmtpd_data_min_rate",
    int_range(1, None),
    1024,
    unit="bytes/s",
    doc="Slowest message transfer allowed: DATA must end within lmtpd_idle_timeout plus the bytes "
    "received so far over this rate, so a message dripped a byte at a time is cut off with 421 "
    "4.4.2 while an MTA on a slow link (1 kB/s is far below any real one) is not.",
)
LMTPD_MAX_CONNECTIONS = setting(
    "lmtpd_max_connections",
    int_range(1, None),
    1000,
    unit="connections",
    doc="Connections open at once; one more is answered 421 4.3.2 and closed (the MTA retries "
    "later). A bound on file descriptors and memory, not on work (lmtpd_delivery_threads bounds "
    "that): Postfix's lmtp client opens at most lmtp_destination_concurrency_limit (20 by default) "
    "per relay, and a back end several relays deliver to must take them all at once.",
)
LMTPD_DELIVERY_THREADS = setting(
    "lmtpd_delivery_threads", int_range(1, 256), 8, "Threads running lookups and deliveries (Sieve, Maildir writes)."
)
LMTPD_USER_CONCURRENCY_LIMIT = setting(
    "lmtpd_user_concurrency_limit",
    Int,
    10,
    "Most deliveries to one user at the same time; more get 451 4.3.0 and are retried by the MTA. 0: no limit.",
)

LMTPD_ADD_RECEIVED = setting(
    "lmtpd_add_received",
    Bool,
    True,
    "Prepend a Received: trace header (RFC 5321 4.4, `for <recipient>`) to each "
    "delivered copy, as Dovecot's LMTP does.",
)
