"""In-process DNS stub (dnslib, UDP+TCP threads) with a mutable zone, for tests that need DNS.

Answers A/AAAA/MX/TXT/CNAME/PTR/NS/SRV from records the test adds; NXDOMAIN (with SOA) for
unknown names under known zones, REFUSED outside them, so no test ever reaches real DNS.
`.resolver()` gives a dnspython Resolver pointed at it. Used by policyd/milters tests and the
fixtures in tests/harness/fixtures.py; tested by tests/harness_selftest.
"""

import contextlib
import copy
import threading

import dnslib
from dnslib import QTYPE, RCODE, RR
from dnslib.server import DNSError, DNSLogger, DNSServer, BaseResolver

from .procs import LOOPBACK, HarnessError, free_port_tcp_udp

# Zones answered authoritatively (NXDOMAIN for unknown names) unless the test adds more:
# the RFC 2606/6761 reserved names plus reverse zones (PTR lookups of 192.0.2.x etc.).
DEFAULT_ZONES = ("test", "example", "invalid", "localhost", "example.com", "example.net",
                 "example.org", "in-addr.arpa", "ip6.arpa")
TXT_CHUNK = 255


def _norm(name):
    return str(name).rstrip(".").lower()


def _txt_chunks(value):
    """TXT value (str/bytes or a list of them) -> list of <=255-byte strings."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        b = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        if not b:
            out.append(b"")
        for i in range(0, len(b), TXT_CHUNK):
            out.append(b[i:i + TXT_CHUNK])
    return out


def _rdata(rtype, value):
    rtype = rtype.upper()
    if rtype == "A":
        return dnslib.A(value)
    if rtype == "AAAA":
        return dnslib.AAAA(value)
    if rtype == "MX":
        if isinstance(value, str):
            pref, host = value.split()
        else:
            pref, host = value
        return dnslib.MX(host, int(pref))
    if rtype == "TXT":
        return dnslib.TXT(_txt_chunks(value))
    if rtype == "CNAME":
        return dnslib.CNAME(value)
    if rtype == "PTR":
        return dnslib.PTR(value)
    if rtype == "NS":
        return dnslib.NS(value)
    if rtype == "SRV":
        prio, weight, port, target = value.split() if isinstance(value, str) else value
        return dnslib.SRV(int(prio), int(weight), int(port), target)
    raise ValueError("DNSStub: unsupported record type %r" % rtype)


class _Resolver(BaseResolver):
    def __init__(self, stub):
        self.stub = stub

    def resolve(self, request, handler):
        return self.stub._answer(request)


class DNSStub:
    """An authoritative-only DNS server in this process, on 127.0.0.1:<free port> (UDP+TCP).

    add(name, rtype, value, ttl=None): value forms: A/AAAA "192.0.2.1"; MX "10 mx.example.test"
    or (10, "mx..."); TXT str (split at 255 bytes) or list of strings (one record, several
    strings); CNAME/PTR/NS a name; SRV "prio weight port target". Adding a name also makes
    its zone known (its last two labels) unless a known zone already covers it.
    fail(name, rcode="SERVFAIL") answers that rcode for every type; drop(name) never
    answers (client times out). `queries` lists (name, type) asked, in order.
    """

    def __init__(self, zones=DEFAULT_ZONES, ttl=60, host=LOOPBACK):
        self.host = host
        self.port = None
        self.ttl = ttl
        self.zones = {_norm(z) for z in zones}
        self.records = {}      # name -> [(rtype, rdata, ttl)]
        self.failures = {}     # name -> rcode int, or None for drop
        self.queries = []
        self._lock = threading.Lock()
        self._servers = []

    # ---- lifecycle -----------------------------------------------------------------
    def start(self):
        if self._servers:
            return self
        logger = DNSLogger(logf=lambda *_a: None)
        last = None
        for _ in range(10):
            port = free_port_tcp_udp(self.host)
            try:
                udp = DNSServer(_Resolver(self), address=self.host, port=port, logger=logger)
            except OSError as exc:
                last = exc
                continue
            try:
                tcp = DNSServer(_Resolver(self), address=self.host, port=port, tcp=True, logger=logger)
            except OSError as exc:
                udp.server.server_close()
                last = exc
                continue
            self.port = port
            self._servers = [udp, tcp]
            for s in self._servers:
                # A short poll interval: shutdown() waits for it (0.5 s each by default).
                s.thread = threading.Thread(target=s.server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="dns-stub-%d" % port, daemon=True)
                s.thread.start()
            return self
        raise HarnessError("DNS stub: could not bind UDP+TCP on %s: %s" % (self.host, last))

    def stop(self):
        for s in self._servers:
            s.server.shutdown()
            s.server.server_close()
        self._servers = []

    @property
    def nameservers(self):
        return [self.host]

    def resolver(self, lifetime=2.0, timeout=None):
        """A fresh dnspython Resolver (configure=False) that asks only this stub, no cache."""
        import dns.resolver
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [self.host]
        r.port = self.port
        r.lifetime = lifetime
        r.timeout = timeout if timeout is not None else lifetime
        return r

    @contextlib.contextmanager
    def as_default_resolver(self, lifetime=2.0):
        """Temporarily make dns.resolver.default_resolver ask this stub (pyspf/dkimpy use it)."""
        import dns.resolver
        saved = dns.resolver.default_resolver
        dns.resolver.default_resolver = self.resolver(lifetime)
        try:
            yield dns.resolver.default_resolver
        finally:
            dns.resolver.default_resolver = saved

    # ---- zone data -------------------------------------------------------------------
    def add_zone(self, zone):
        with self._lock:
            self.zones.add(_norm(zone))

    def _zone_of(self, name):
        labels = name.split(".")
        for i in range(len(labels)):
            z = ".".join(labels[i:])
            if z in self.zones:
                return z
        return None

    def add(self, name, rtype, value, ttl=None):
        """Add one record (several add() calls for one name/type make an RRset)."""
        name = _norm(name)
        rdata = _rdata(rtype, value)
        with self._lock:
            if self._zone_of(name) is None:
                self.zones.add(".".join(name.split(".")[-2:]))
            self.records.setdefault(name, []).append((rtype.upper(), rdata, ttl or self.ttl))
        return self

    def set(self, name, rtype, *values, ttl=None):
        """Replace the name's records of rtype with values."""
        self.remove(name, rtype)
        for v in values:
            self.add(name, rtype, v, ttl)
        return self

    def remove(self, name, rtype=None):
        name = _norm(name)
        with self._lock:
            if rtype is None:
                self.records.pop(name, None)
            elif name in self.records:
                self.records[name] = [r for r in self.records[name] if r[0] != rtype.upper()]
            self.failures.pop(name, None)

    def fail(self, name, rcode="SERVFAIL"):
        """Answer `rcode` (SERVFAIL, REFUSED, NXDOMAIN...) for every query of name."""
        with self._lock:
            self.failures[_norm(name)] = getattr(RCODE, rcode.upper())

    def drop(self, name):
        """Never answer queries for name (the client times out)."""
        with self._lock:
            self.failures[_norm(name)] = None

    def clear(self):
        """Remove all records, failures and query history (zones stay)."""
        with self._lock:
            self.records.clear()
            self.failures.clear()
            self.queries.clear()

    def snapshot(self):
        with self._lock:
            return (set(self.zones), copy.deepcopy(self.records), dict(self.failures))

    def restore(self, snap):
        with self._lock:
            zones, records, failures = snap
            self.zones, self.records, self.failures = set(zones), copy.deepcopy(records), dict(failures)
            self.queries.clear()

    # ---- answering -------------------------------------------------------------------
    def _answer(self, request):
        q = request.q
        qname = _norm(q.qname)
        qtype = QTYPE.get(q.qtype)
        reply = request.reply()
        reply.header.ra = 0
        with self._lock:
            self.queries.append((qname, qtype))
            if qname in self.failures:
                rcode = self.failures[qname]
                if rcode is None:
                    raise DNSError("dropped by test")
                reply.header.rcode = rcode
                return reply
            zone = self._zone_of(qname)
            if zone is None:
                reply.header.rcode = RCODE.REFUSED
                return reply
            reply.header.aa = 1
            self._add_answers(reply, qname, qtype, depth=0)
            if not reply.rr:
                exists = qname in self.records and self.records[qname] or any(
                    n.endswith("." + qname) for n in self.records)
                if not exists:
                    reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(RR(zone, QTYPE.SOA, ttl=self.ttl, rdata=dnslib.SOA(
                    "ns." + zone, "hostmaster." + zone, (1, 3600, 600, 86400, self.ttl))))
        return reply

    def _add_answers(self, reply, qname, qtype, depth):
        recs = self.records.get(qname, [])
        cnames = [r for r in recs if r[0] == "CNAME"]
        if cnames and qtype != "CNAME" and depth < 8:
            rt, rdata, ttl = cnames[0]
            reply.add_answer(RR(qname, QTYPE.CNAME, rdata=rdata, ttl=ttl))
            self._add_answers(reply, _norm(rdata.label), qtype, depth + 1)
            return
        for rt, rdata, ttl in recs:
            if qtype == "ANY" or rt == qtype:
                reply.add_answer(RR(qname, getattr(QTYPE, rt), rdata=rdata, ttl=ttl))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<DNSStub %s:%s>" % (self.host, self.port)


__all__ = ["DNSStub", "DEFAULT_ZONES"]
