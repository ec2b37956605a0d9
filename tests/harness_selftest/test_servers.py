"""Smoke tests proving each harness server really answers (tests/harness/*).

One fast test per server: mail through Postfix into its sink, DNS TXT via the stub resolver,
Redis PING, PostgreSQL SELECT 1, LDAP search, clamd INSTREAM EICAR, spamd GTUBE.
"""

import psycopg
import redis

from tests.harness.postfix import build_message


def test_postfix_delivers_into_sink(postfix):
    result = postfix.send("alice@example.test", ["bob@example.test", "carol+tag@remote.test"],
                          build_message(subject="harness smoke"))
    assert result.accepted == ["bob@example.test", "carol+tag@remote.test"]
    assert result.queue_id
    (msg,) = postfix.wait_sent(1)
    assert msg["Subject"] == "harness smoke"
    assert msg.mail_from == "alice@example.test"
    assert sorted(msg.rcpts) == ["bob@example.test", "carol+tag@remote.test"]
    assert ("queued as %s" % result.queue_id) and result.queue_id in msg.raw.decode()
    assert postfix.queue() == []


def test_postfix_reinjection_port_refuses_foreign_clients(postfix):
    result = postfix.send("a@example.test", "b@example.test", build_message(),
                          port=postfix.reinject_port, xclient={"ADDR": "192.0.2.7"}, check=False)
    assert result.refused["b@example.test"][0] == 554


def test_dns_stub_txt_and_nxdomain(dns_resolver, dns_zone):
    import dns.resolver
    dns_zone.add("example.test", "TXT", "v=spf1 -all " + "x" * 300)
    answer = dns_resolver.resolve("example.test", "TXT")
    (rr,) = list(answer)
    assert b"".join(rr.strings) == b"v=spf1 -all " + b"x" * 300
    assert [len(s) for s in rr.strings] == [255, 57]
    try:
        dns_resolver.resolve("nothing.example.test", "A")
    except dns.resolver.NXDOMAIN:
        pass
    else:
        raise AssertionError("expected NXDOMAIN")


def test_redis_ping_with_prefix(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    assert client.ping()
    client.set(redis_prefix + "k", "v")
    assert client.get(redis_prefix + "k") == b"v"
    client.close()


def test_postgres_select_and_schema(pg_dsn, pg_schema):
    with psycopg.connect(pg_dsn, options="-c search_path=" + pg_schema) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        conn.execute("create table t (x int)")
        assert conn.execute("select current_schema()").fetchone() == (pg_schema,)
