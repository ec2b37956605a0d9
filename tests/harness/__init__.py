"""Test harness: real servers on loopback, each in a private temp dir, polled for readiness.

Every class is plain Python (usable from bench/: `with Clamd(make_workdir()) as c: ...`),
raises procs.HarnessError with the server's log tail when it cannot start, keeps its server
as a child process and stops it on stop() / at interpreter exit. pytest fixtures wrapping
them are in fixtures.py (tests/conftest.py: pytest_plugins = ["tests.harness.fixtures"]);
a fixture whose server cannot start FAILS the test (never skips). Self-tests:
tests/harness_selftest.

Fixtures (S = session, F = function scope)
  harness_root (S) Path, 0755 temp dir (removed at end unless OWLERY_HARNESS_KEEP=1)
  harness_dirs (S) callable name -> new unique 0755 subdir of harness_root
  postfix_factory (S) make(main_cf=None, master_cf_extra="", transports=None,
                  name="postfix", start=True) -> PostfixInstance, stopped at session end
  make_postfix (F) same callable; its instances are stopped when the test ends
  postfix (F)      a fresh default PostfixInstance (started) for this test
  slapd (S)        Slapd with the seed directory; don't modify/stop it
  make_slapd (F)   make(ldif_text=None, base_dn="dc=example,dc=test", admin_password="secret")
                   -> started Slapd the test may modify/stop/restart
  clamd (S)        Clamd (EICAR signatures);  make_clamd (F) make(signatures=None) -> Clamd
  spamd (S)        Spamd, started on first use (~1-3 s)
  dns_stub (S)     DNSStub, started; dns_zone (F) the same stub, records restored after test
  dns_resolver (F) dnspython Resolver asking the stub (global default untouched)
  dns_default_resolver (F) installs that resolver as dns.resolver.default_resolver for the
                   test only (pyspf, dkimpy), yields it
  redis_url (S)    "redis://127.0.0.1:6379/0" (machine) or a private redis-server's URL
  redis_prefix (F) "owlery-test:<hex>:" - keys with it are deleted after the test
  pg_dsn (S)       "host=127.0.0.1 port=5432 user=postgres dbname=test" or a private cluster
  pg_schema (F)    "owlery_test_<hex>" created, dropped CASCADE after; use
                   psycopg.connect(pg_dsn, options="-c search_path=" + pg_schema)
  OWLERY_TEST_PRIVATE_SERVERS=1 forces private Redis/PostgreSQL.

postfix.PostfixInstance(workdir, main_cf=None, master_cf_extra="", transports=None)
  main_cf: dict merged over the defaults (value None removes a default) or str of lines
  appended (last wins). transports: {domain: "transport:nexthop"} (texthash, no postmap).
  Defaults: inet_interfaces 127.0.0.1, mynetworks 127.0.0.0/8, recipient_delimiter +,
  disable_dns_lookups yes, smtputf8_enable no, mydestination empty, relay_domains
  example.test + the transport domains, smtpd_authorized_xclient_hosts 127.0.0.0/8,
  default/relay_transport -> own smtp-sink, queue_run_delay/minimal_backoff 1s,
  maximal_backoff 2s, maillog_file workdir/maillog.
  Attributes: workdir, config_dir, queue_dir, data_dir, maillog_path, sink_dir,
  transport_path, port (smtpd), reinject_port (smtpd with -o smtpd_milters= and
  smtpd_recipient_restrictions=permit_mynetworks,reject, like amavis' 10025), sink_port,
  running.
  start(), stop(), reload() (waits for master's "reload" log line),
  configure(main_cf=None, master_cf_extra=None, transports=None) (rewrite + reload),
  postconf(*args) -> str, flush(), queue() -> list of postqueue -j dicts,
  queue_files(include_hold=False) -> queue ids on disk, wait_queue_empty(timeout=15),
  delete_queue(), maillog() -> str, wait_for_log(regex, timeout=15, start=0) -> Match,
  sent_messages() -> [SinkMessage], wait_sent(count=1, timeout=15) -> [SinkMessage],
  clear_sent(), send(sender, rcpts, msg, port=None, helo=..., xclient=None, check=True,
  timeout=30) -> SendResult.
  SendResult: .rcpt {addr: (code, text)}, .mail, .data (code, text), .accepted, .refused,
  .queue_id. check=True raises smtplib.SMTPSenderRefused / SMTPRecipientsRefused (all
  refused) / SMTPDataError.
  SinkMessage: .path .client_addr .helo .mail_from .rcpts .raw (bytes) .message
  (EmailMessage); msg["Subject"] works.
  postfix.build_message(sender, to, subject, body, headers) -> bytes;
  postfix.backdate(path): give map files you write an mtime in the past (Postfix waits up to
  ~2 s before opening a just-modified table or main.cf). Pipe services must run as a
  non-root user (user=nobody).

slapd.Slapd(workdir, ldif_text=None, base_dn="dc=example,dc=test", admin_password="secret")
  .url .host .port .base_dn .admin_dn .admin_password; start(), stop(), restart() (same port
  and data), connection(admin=False, **ldap3_kwargs) -> bound ldap3.Connection,
  modify_ldif(text). Seed data documented in slapd.py (alice, bob, carol over quota, dave
  disabled, erin forwarder, groups csall (groupOfNames) and staff (groupOfUniqueNames);
  spam levels on alice, bob, frank and the @levels.example.test domain default).
  slapd.seed_ldif(), slapd.ldap_bind_ok(port).

clamd.Clamd(workdir, signatures=None)  signatures: {name: bytes} extra .ndb body sigs
  .port .socket_path .db_dir .log_path; start(), stop(), restart(), ping(),
  scan_bytes(data) -> ("FOUND", name) | ("OK", None). clamd.EICAR (bytes), clamd.EICAR_NAME
  ("Owlery.Test.EICAR"; clamd reports "Owlery.Test.EICAR.UNOFFICIAL"),
  clamd.clamd_command(port=None, path=None, command=b"PING", payload=None).

spamd.Spamd(workdir, extra_cf=())  .port .log_path; start(), stop(), ping(),
  check(msg) -> (is_spam, score, threshold), symbols(msg) -> [rule], tell(msg, "spam"|"ham").
  spamd.GTUBE, spamd.spamc_request(port, verb, message=b"", headers=None) ->
  (status_line, headers, body), spamd.parse_spam_header(value).

dns.DNSStub(zones=DEFAULT_ZONES, ttl=60)  .host .port .nameservers .queries [(name, type)]
  start(), stop(), add(name, rtype, value, ttl=None), set(name, rtype, *values),
  remove(name, rtype=None), add_zone(zone), fail(name, rcode="SERVFAIL"), drop(name),
  clear(), snapshot()/restore(snap), resolver(lifetime=2.0) -> dns.resolver.Resolver,
  as_default_resolver(lifetime=2.0) context manager. Values: A/AAAA "192.0.2.1";
  MX "10 mx.example.test"; TXT str (split at 255 bytes) or list of strings; CNAME/PTR/NS
  name; SRV "prio weight port target". Unknown name in a known zone -> NXDOMAIN;
  outside known zones (test, example, invalid, localhost, example.com/net/org, in-addr.arpa,
  ip6.arpa + zones of added names) -> REFUSED.

stores: RedisServer(workdir) (.url .port), PostgresServer(workdir) (.dsn .port),
  redis_ping(host, port), pg_ping(dsn), machine_or_private_redis(workdir) -> (url, server|None),
  machine_or_private_pg(workdir) -> (dsn, server|None), drop_redis_prefix(url, prefix),
  unique_name(prefix).

procs: free_port(), free_ports(n), free_port_tcp_udp(), wait_until(pred, timeout, what,
  proc=None), wait_for_tcp(port, ...), wait_for_unix(path, ...), tcp_connects(),
  unix_connects(), ManagedProcess(argv, name, log_path, cwd=None, env=None, user=None,
  group=None, extra_logs=()) with start()/stop()/alive()/log_tail(), retry_on_port_race(fn),
  make_workdir(prefix), make_dir(path, mode=0o755, owner=None), HarnessError.

faults: FaultStack(workdir, servers=("slapd", "redis", "clamd", "spamd", "postgres"),
  daemons=("policyd", "milter", "lmtpd")) -> Postfix wired with Owlery and those servers;
  kill(name) (SIGKILL to the process group), restart(name) (same port, waits until ready),
  drain(); Load(stack, senders=2, rate=8.0) sender threads that retry 4xx; account(stack, load)
  -> per-message outcomes (once, dup, queued, misfiled, bounced, 5xx, unsent, lost).
"""
