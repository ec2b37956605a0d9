"""Test harness: real servers on loopback in private temp dirs (API summary; full text below).

Fixtures (tests/harness/fixtures.py, loaded as a pytest plugin): postfix_factory (session),
make_postfix / postfix (function), dns_stub (session), dns_zone / dns_resolver /
dns_default_resolver (function), redis_url (session) + redis_prefix, pg_dsn (session) +
pg_schema. slapd, clamd, spamd: being added.
"""
