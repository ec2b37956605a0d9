"""The Postfix macros the milter reads, per protocol step: the one list the others derive from.

The adapter asks for the `NEGOTIATED` lists when Postfix connects (libmilter's setsymlist, at
most 5 names a step; Postfix then sends those instead of its milter_<step>_macros) and reads
each step's names there; the session keeps `ALL`; `owlery postfix` writes each negotiated
step's milter_<step>_macros as Postfix's default plus what the milter adds (the list Postfix
falls back to when the negotiation fails). `FROM_POSTFIX_DEFAULTS` are read at steps the milter
asks nothing for: Postfix's default lists for those steps carry them. Keys are Postfix's step
names (milter_<step>_macros).
Talks to: nothing. Tests: tests/core/test_review_followups_s21.py (against `postconf -d`),
tests/milters/test_auth_stages.py (the negotiation)
"""

from __future__ import annotations

NEGOTIATED: dict[str, tuple[str, ...]] = {
    "connect": ("j", "{daemon_name}", "{client_addr}", "{client_name}", "{daemon_addr}"),
    "mail": ("i", "{auth_authen}", "{auth_type}", "{mail_addr}", "{auth_author}"),   # {auth_authen} arrives at MAIL
    "end_of_data": ("i",),
}

FROM_POSTFIX_DEFAULTS: dict[str, tuple[str, ...]] = {
    "helo": ("{tls_version}", "{cipher}", "{cipher_bits}"),     # the Received field's TLS clause
    "rcpt": ("{rcpt_addr}",),
    "data": ("i",),                                              # the queue id exists after the first RCPT
}

# Every name the milter reads, once each, in step order.
ALL: tuple[str, ...] = tuple(dict.fromkeys(
    name for names in (*NEGOTIATED.values(), *FROM_POSTFIX_DEFAULTS.values()) for name in names))
