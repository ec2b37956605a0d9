"""Smoke tests proving each harness server really answers (tests/harness/*).

One fast test per server: mail through Postfix into its sink, DNS TXT via the stub resolver,
Redis PING, PostgreSQL SELECT 1, LDAP search, clamd INSTREAM EICAR, spamd GTUBE.
"""

import psycopg
import redis

from tests.harness.postfix import build_message
from tests.harness.procs import make_dir


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


def test_postfix_reconfigure_routes_domain_to_pipe(postfix, harness_dirs):
    out = make_dir(harness_dirs("pipe-out"), 0o755, owner="nobody")
    postfix.configure(
        transports={"pipe.test": "owlerypipe:"},
        master_cf_extra="owlerypipe unix - n n - - pipe flags=q user=nobody argv=/usr/bin/tee -a %s/out" % out)
    postfix.send("a@example.test", "x@pipe.test", build_message(subject="piped"))
    postfix.wait_queue_empty()
    assert b"Subject: piped" in (out / "out").read_bytes()
    assert postfix.sent_messages() == []


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


def test_slapd_search(slapd):
    conn = slapd.connection()
    conn.search(slapd.base_dn, "(mailAlternateAddress=postmaster@example.test)",
                attributes=["mail", "mailQuotaSize", "accountStatus"])
    (entry,) = conn.entries
    assert entry.mail.value == "alice@example.test"
    assert entry.mailQuotaSize.value == 10485760
    conn.search(slapd.base_dn, "(mail=csall@example.test)", attributes=["member"])
    assert len(conn.entries[0].member.values) == 3
    conn.unbind()


def test_slapd_stop_start_keeps_port_and_data(make_slapd):
    from tests.harness.slapd import ldap_bind_ok
    server = make_slapd()
    port = server.port
    server.stop()
    assert not ldap_bind_ok(port)
    server.start()
    assert server.port == port
    conn = server.connection(admin=True)
    conn.search(server.base_dn, "(accountStatus=disabled)", attributes=["uid"])
    assert [e.uid.value for e in conn.entries] == ["dave"]
    conn.unbind()


def test_clamd_instream_eicar(clamd):
    import io

    import clamd as clamd_client

    from tests.harness.clamd import EICAR, EICAR_NAME
    cd = clamd_client.ClamdNetworkSocket("127.0.0.1", clamd.port)
    status, name = cd.instream(io.BytesIO(b"attachment: " + EICAR))["stream"]
    assert status == "FOUND" and name.startswith(EICAR_NAME)
    assert clamd_client.ClamdUnixSocket(str(clamd.socket_path)).instream(io.BytesIO(b"clean"))["stream"] == ("OK", None)


def test_spamd_gtube(spamd):
    from tests.harness.spamd import GTUBE, spamc_request, parse_spam_header
    msg = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: gtube\r\n\r\n" + GTUBE + b"\r\n"
    status, headers, _ = spamc_request(spamd.port, "CHECK", msg)
    assert "EX_OK" in status
    is_spam, score, _threshold = parse_spam_header(headers["Spam"])
    assert is_spam and score >= 1000


def test_start_failures_raise_with_the_server_log(harness_dirs):
    import pytest

    from tests.harness.postfix import PostfixInstance
    from tests.harness.procs import HarnessError
    from tests.harness.slapd import Slapd
    broken = PostfixInstance(harness_dirs("broken-postfix"), master_cf_extra="not a service line")
    with pytest.raises(HarnessError, match=r"(?s)exited with status 1.*bad field count"):
        broken.start()
    broken.stop()
    with pytest.raises(HarnessError, match=r"(?s)slapadd failed.*cn=x,dc=elsewhere"):
        Slapd(harness_dirs("broken-slapd"), ldif_text="dn: cn=x,dc=elsewhere\nobjectClass: person\ncn: x\nsn: x\n").start()
