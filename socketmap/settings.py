"""Settings of the socketmap table server (light: reading them imports no Twisted).

Declared here once; socketmap/service.py (listen, limits, threads) and socketmap/maps.py
(mailbox paths, transports, extensions) read them.
Talks to: nothing. Tests: tests/socketmap/test_maps.py, tests/socketmap/test_service.py
"""

from __future__ import annotations

from owlery.settings import Bool, Duration, Endpoints, Str, StrList, int_range, setting

SOCKETMAP_LISTEN = setting(
    "socketmap_listen", Endpoints, ["unix:/var/spool/postfix/owlery/socketmap.sock"],
    "Where the socketmap table server listens: unix:/path, tcp:HOST:PORT or systemd:NAME. The "
    "default is in Postfix's queue directory (mode 0660, group postfix), where a chrooted "
    "trivial-rewrite or cleanup reaches it and other local users cannot ask it who exists; "
    "Postfix names it socketmap:unix:owlery/socketmap.sock:MAPNAME (socketmap:inet:HOST:PORT:MAPNAME "
    "for TCP, which every local user can reach).")
SOCKETMAP_WORKERS = setting(
    "socketmap_workers", int_range(1, 64), 1,
    "Worker processes answering on the same listen sockets (one Python process uses one core); "
    "each keeps its own directory cache.")
SOCKETMAP_THREADS_MAX = setting("socketmap_threads_max", int_range(1, 256), 8,
                                "Threads for directory lookups that the cache cannot answer (LDAP, file reads).")
SOCKETMAP_BLOCKING_QUEUE_MAX = setting(
    "socketmap_blocking_queue_max", int_range(1, 100000), 1000,
    "Lookups that may wait for a thread; beyond it a lookup answers TEMP at once.")
SOCKETMAP_LOOKUP_TIMEOUT = setting(
    "socketmap_lookup_timeout", Duration, 30, unit="s",
    doc="A lookup still running after this long answers TIMEOUT (Postfix's own socketmap client "
        "gives up after 100 s).")
SOCKETMAP_IDLE_TIMEOUT = setting("socketmap_idle_timeout", Duration, 120, unit="s",
                                 doc="Close a connection idle this long (Postfix closes its own after 10 s).")
SOCKETMAP_REQUEST_LENGTH_MAX = setting(
    "socketmap_request_length_max", int_range(32, 1 << 20), 4096, unit="bytes",
    doc="Longest request (map name, space and key); a longer netstring is answered PERM and the "
        "connection closed.")
SOCKETMAP_REPLY_LENGTH_MAX = setting(
    "socketmap_reply_length_max", int_range(64, 100_000_000), 100_000, unit="bytes",
    doc="Longest reply (Postfix's socketmap_max_reply_size, 100000 up to Postfix 3.10); a longer "
        "one, e.g. a huge group, is answered TEMP and logged.")
SOCKETMAP_REQUESTS_QUEUED_MAX = setting(
    "socketmap_requests_queued_max", int_range(1, 10000), 16,
    "Requests a client may send ahead of the replies (Postfix sends one at a time) before the "
    "connection is closed.")
SOCKETMAP_MAILBOX_BASE = setting(
    "socketmap_mailbox_base", Str, "/var/lib/owlery/mail",
    "Postfix's virtual_mailbox_base: virtual_mailbox_maps answers Maildir paths relative to it. "
    "A Maildir outside it answers TEMP (set \"/\" to allow any absolute path).")
SOCKETMAP_TRANSPORT_TEMPLATE = setting(
    "socketmap_transport_template", Str, "lmtp:inet:{host}:24",
    "transport_maps answer for a mailbox whose directory entry names its back end (mail host): "
    "{host} is the host name or IP address (IPv6 in brackets; \"[{host}]\" takes the bare address), "
    "e.g. smtp:[{host}]:25.")
SOCKETMAP_TRANSPORT_DEFAULT = setting(
    "socketmap_transport_default", Str, "",
    "transport_maps answer for a mailbox without a mail host; empty: NOTFOUND, so Postfix uses "
    "its own default (virtual_transport, relay_transport...).")
SOCKETMAP_TRANSPORT_LOCAL_HOSTS = setting(
    "socketmap_transport_local_hosts", StrList, [],
    "Mail hosts that are this machine: their users get the transport_maps answer for no mail host "
    "(so a back end never routes mail to itself).")
SOCKETMAP_PROPAGATE_UNMATCHED_EXTENSIONS = setting(
    "socketmap_propagate_unmatched_extensions", Bool, True,
    "virtual_alias_maps: when user+ext@domain matched the entry of user@domain, append +ext to "
    "each target, as Postfix's propagate_unmatched_extensions does for its own tables (Postfix "
    "leaves that to a socketmap, asking it the full address only).")
