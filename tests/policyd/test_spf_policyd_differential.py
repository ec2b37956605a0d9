"""Differential test: the policy daemon's SPF check against Debian's pypolicyd-spf, the peer it replaces.

Both sides answer the same seeded RCPT requests over the suite's DNS stub (no real DNS):
Debian's /usr/bin/policyd-spf (package postfix-policyd-spf-python; pyspf on py3dns) runs under
tests/harness/policyd_spf_peer.py with a config file written here, Owlery's pipeline runs
in-process with policyd_checks RCPT = ["spf"] and the settings that state the same policy.
Per request the action class (reject / defer / prepend / dunno), the reply code and enhanced
status, and for a Received-SPF header the result word, the identity and the key=value fields
are compared. Texts differ on purpose: the reply is "SPF <identity> check <result>: <explanation>"
where the peer says "Message rejected due to: <explanation>. Please see http://www.openspf.net/..."
(a site long gone), and the header comment is pyspf's; both carry an exp= explanation (checked).
A difference is either
explained by an entry of DEVIATIONS (with the RFC reason: where the peer departs from RFC 7208,
or where Owlery documents its choice) or fails the test; every entry must still be needed.
Needs the system packages postfix-policyd-spf-python (scripts/install-deps --test).
"""

from __future__ import annotations

import dataclasses
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import dns.resolver
from twisted.internet import task

from owlery.dns import header_address
from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest

SEED = 7208
PER_CONFIG = 160             # random requests per config variant (plus the fixed ones)
PEER = Path(__file__).resolve().parents[1] / "harness" / "policyd_spf_peer.py"
LOOKUP_TIME = 5              # both sides' whole DNS budget per evaluation (s); the peer takes whole seconds
TIMEOUT_BUDGET = 1           # the same in the one variant whose only request is a DNS timeout

GOOD4, GOOD6 = "192.0.2.0/24", "2001:db8::/32"
PASS = f"v=spf1 ip4:{GOOD4} ip6:{GOOD6} -all"

# name -> list of (type, value); "SERVFAIL" / "DROP" for names the stub fails.
ZONE: dict[str, list | str] = {
    "pass.test": [("TXT", PASS)],
    "fail.test": [("TXT", "v=spf1 -all")],
    "softfail.test": [("TXT", "v=spf1 ~all")],
    "neutral.test": [("TXT", "v=spf1 ?all")],
    "norecord.test": [("A", "192.0.2.99"), ("TXT", "google-site-verification=abc")],
    "syntax.test": [("TXT", "v=spf1 ip4:192.0.2.0/33 -all")],
    "unknownmech.test": [("TXT", "v=spf1 moo -all")],
    "twice.test": [("TXT", "v=spf1 -all"), ("TXT", "v=spf1 +all")],
    "toomany.test": [("TXT", "v=spf1 " + " ".join(f"a:h{i}.pass.test" for i in range(11)) + " -all")],
    "void.test": [("TXT", "v=spf1 a:v1.nx.test a:v2.nx.test a:v3.nx.test -all")],
    "inc.test": [("TXT", "v=spf1 include:pass.test ~all")],
    "incnone.test": [("TXT", "v=spf1 include:nx.test -all")],
    "incfail.test": [("TXT", "v=spf1 include:fail.test ?all")],
    "redir.test": [("TXT", "v=spf1 redirect=softfail.test")],
    "redirnone.test": [("TXT", "v=spf1 redirect=nx.test")],
    "arec.test": [("TXT", "v=spf1 a -all"), ("A", "198.51.100.20"), ("AAAA", "2001:db8:20::20")],
    "mxrec.test": [("TXT", "v=spf1 mx/24 -all"), ("MX", "10 mail.mxrec.test")],
    "mail.mxrec.test": [("A", "203.0.113.7"), ("AAAA", "3fff::7")],
    "exists.test": [("TXT", "v=spf1 exists:%{i}.ok.exists.test -all")],
    "192.0.2.5.ok.exists.test": [("A", "127.0.0.2")],
    "203.0.113.7.ok.exists.test": [("A", "127.0.0.2")],
    "ptr.test": [("TXT", "v=spf1 ptr -all")],
    "5.2.0.192.in-addr.arpa": [("PTR", "host.ptr.test")],
    "host.ptr.test": [("A", "192.0.2.5")],
    "macro.test": [("TXT", "v=spf1 exists:%{l1r-}.%{o}.m.macro.test ~all")],
    "bob.macro.test.m.macro.test": [("A", "127.0.0.2")],
    "exp.test": [("TXT", "v=spf1 -all exp=why.exp.test")],
    "why.exp.test": [("TXT", "%{i} is not one of %{d}'s designated mail servers.")],
    "temp.test": "SERVFAIL",
    "inctemp.test": [("TXT", "v=spf1 include:temp.test -all")],
    "slow.test": "DROP",
    "xn--bcher-kva.test": [("TXT", PASS)],
    # HELO names
    "helo-pass.test": [("TXT", PASS)],
    "helo-fail.test": [("TXT", "v=spf1 -all")],
    "helo-soft.test": [("TXT", "v=spf1 ~all")],
    "helo-perm.test": [("TXT", "v=spf1 ip4:1.2.3.4/40 -all")],
    "helo-norecord.test": [("A", "192.0.2.5")],
    "helo-temp.test": "SERVFAIL",
}

SENDER_DOMAINS = ["pass.test", "fail.test", "softfail.test", "neutral.test", "norecord.test", "nx.test",
                  "syntax.test", "unknownmech.test", "twice.test", "toomany.test", "void.test", "inc.test",
                  "incnone.test", "incfail.test", "redir.test", "redirnone.test", "arec.test", "mxrec.test",
                  "exists.test", "ptr.test", "macro.test", "exp.test", "temp.test", "inctemp.test",
                  "Pass.TEST"]
LOCAL_PARTS = ["alice", "bob", "Bob.Smith", "first+tag", '"john doe"', '"a@b"', "x-_=~'z"]
HELOS = ["helo-pass.test", "helo-fail.test", "helo-soft.test", "helo-perm.test", "helo-norecord.test",
         "helo-temp.test", "unknown-helo.test", "[192.0.2.5]", "[IPv6:2001:db8::5]", "localhost", "bareword",
         "", "pass.test", "fail.test"]
CLIENTS = ["192.0.2.5", "192.0.2.200", "198.51.100.20", "203.0.113.7", "203.0.113.99", "2001:db8::5",
           "2001:db8:20::20", "3fff::7", "3fff:1::1", "127.0.0.1", "::1"]


def random_requests(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.08:
            sender = ""                                              # null sender
        elif kind < 0.12:
            sender = rng.choice(["alice", "postmaster"])             # no domain
        elif kind < 0.16:
            sender = rng.choice(["jörg@pass.test", "a@bücher.test", "ü@fail.test"])   # SMTPUTF8
        else:
            sender = f"{rng.choice(LOCAL_PARTS)}@{rng.choice(SENDER_DOMAINS)}"
        out.append({"client_address": rng.choice(CLIENTS), "helo_name": rng.choice(HELOS),
                    "sender": sender})
    return out


# Every request shape that must be compared whatever the seed draws.
FIXED = [dict(client_address=c, helo_name=h, sender=s) for c, h, s in [
    ("192.0.2.5", "helo-pass.test", "alice@pass.test"),
    ("203.0.113.99", "helo-pass.test", "alice@pass.test"),
    ("203.0.113.99", "helo-fail.test", "alice@pass.test"),
    ("203.0.113.99", "helo-fail.test", ""),
    ("203.0.113.99", "helo-perm.test", "alice@pass.test"),
    ("203.0.113.99", "helo-temp.test", "alice@pass.test"),
    ("203.0.113.99", "[192.0.2.5]", ""),
    ("203.0.113.99", "bareword", ""),
    ("203.0.113.99", "", "alice@fail.test"),
    ("203.0.113.99", "", ""),
    ("203.0.113.99", "helo-norecord.test", "alice@exp.test"),
    ("192.0.2.5", "helo-norecord.test", "bob@macro.test"),
    ("192.0.2.5", "helo-norecord.test", "alice@ptr.test"),
    ("192.0.2.5", "helo-norecord.test", "alice@exists.test"),
    ("203.0.113.7", "helo-norecord.test", "alice@mxrec.test"),
    ("203.0.113.99", "helo-norecord.test", "alice@toomany.test"),
    ("203.0.113.99", "helo-norecord.test", "alice@void.test"),
    ("203.0.113.99", "helo-norecord.test", "alice@twice.test"),
    ("203.0.113.99", "helo-norecord.test", "alice@temp.test"),
    ("203.0.113.99", "helo-norecord.test", "alice@softfail.test"),
    ("127.0.0.1", "localhost", "alice@fail.test"),
]]


@dataclasses.dataclass
class Variant:
    name: str
    peer: dict[str, str]           # policyd-spf.conf lines beyond Debian's shipped file
    ours: dict                     # Owlery settings stating the same policy
    extra: tuple = ()              # requests asked of this variant only
    lookup_time: int = LOOKUP_TIME  # both sides' DNS budget (generous: a loaded machine must not time out)
    only_extra: bool = False        # no fixed or random requests: a DNS timeout alone, on a short budget


DEBIAN_CONF = {"debugLevel": "1", "TestOnly": "1", "HELO_reject": "Fail", "Mail_From_reject": "Fail",
               "PermError_reject": "False", "TempError_Defer": "False",
               "skip_addresses": "127.0.0.0/8,::ffff:127.0.0.0/104,::1"}
DEBIAN_OURS = dict(spf_helo_fail_action="reject", spf_fail_action="reject", spf_softfail_action="header",
                   spf_permerror_action="header", spf_temperror_action="header",
                   spf_skip_networks=["127.0.0.0/8", "::ffff:127.0.0.0/104", "::1/128"],
                   spf_hide_receiver=False)
VARIANTS = [
    # Debian's file as shipped (Hide_Receiver is unset there: the peer's default "No").
    Variant("debian", {}, {}),
    # Strict: reject permerror, defer temperror and softfail, HELO fail only noted, receiver hidden,
    # a different skip list.
    Variant("strict", {"HELO_reject": "False", "Mail_From_reject": "Softfail", "PermError_reject": "True",
                       "TempError_Defer": "True", "Hide_Receiver": "Yes",
                       "skip_addresses": "192.0.2.128/25,3fff:1::/32"},
            dict(spf_helo_fail_action="header", spf_softfail_action="reject", spf_permerror_action="reject",
                 spf_temperror_action="defer", spf_hide_receiver=True,
                 spf_skip_networks=["192.0.2.128/25", "3fff:1::/32"])),
    # Debian's file with broken records rejected and DNS trouble deferred.
    Variant("errors", {"PermError_reject": "True", "TempError_Defer": "True"},
            dict(spf_permerror_action="reject", spf_temperror_action="defer")),
    # The same with a server that never answers: the DNS time budget runs out (its own short one).
    Variant("timeout", {"PermError_reject": "True", "TempError_Defer": "True"},
            dict(spf_permerror_action="reject", spf_temperror_action="defer"),
            (dict(client_address="192.0.2.5", helo_name="helo-pass.test", sender="alice@slow.test"),),
            lookup_time=TIMEOUT_BUDGET, only_extra=True),
    # Headers only: nothing rejected, every result written.
    Variant("headers", {"HELO_reject": "False", "Mail_From_reject": "False", "Hide_Receiver": "Yes"},
            dict(spf_helo_fail_action="header", spf_fail_action="header", spf_hide_receiver=True)),
]


def load_zone(stub) -> None:
    for name, records in ZONE.items():
        if records == "SERVFAIL":
            stub.fail(name)
        elif records == "DROP":
            stub.drop(name)
        else:
            for rtype, value in records:
                stub.add(name, rtype, value)
    for i in range(11):
        stub.add(f"h{i}.pass.test", "A", "198.51.100.200")
    # Single-label names (a bare HELO, a sender without a domain) get NXDOMAIN, as from the root,
    # not the stub's REFUSED for names outside its zones.
    for tld in ("alice", "postmaster", "bareword", "unknown"):
        stub.add_zone(tld)


# ---- the two sides ---------------------------------------------------------------------------
def policy_request(i: int, req: dict, variant: str) -> dict:
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
            "client_address": req["client_address"], "client_name": "unknown",
            "helo_name": req["helo_name"], "sender": req["sender"], "recipient": "User@Example.ORG",
            "instance": f"{variant}.{i}"}


def ask_peer(stub, variant: Variant, reqs: list[dict], workdir: Path) -> list[str]:
    assert Path("/usr/bin/policyd-spf").exists(), \
        "pypolicyd-spf is missing: apt-get install postfix-policyd-spf-python (scripts/install-deps --test)"
    conf = dict(DEBIAN_CONF, Lookup_Time=str(variant.lookup_time), **variant.peer)
    path = workdir / f"policyd-spf-{variant.name}.conf"
    path.write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
    stdin = b"".join(
        "".join(f"{k}={v}\n" for k, v in policy_request(i, r, variant.name).items()).encode() + b"\n"
        for i, r in enumerate(reqs))
    proc = subprocess.run(["/usr/bin/python3", str(PEER), stub.host, str(stub.port), str(path)],
                          input=stdin, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    answers = [a for a in proc.stdout.decode("utf-8", errors="replace").split("\n\n") if a.strip()]
    assert len(answers) == len(reqs), (len(answers), len(reqs), proc.stderr[-2000:])
    out = []
    for a in answers:
        assert a.startswith("action="), a
        out.append(a[len("action="):].strip())
    return out


def ask_owlery(stub, variant: Variant, reqs: list[dict]) -> list[str]:
    values = dict(DEBIAN_OURS, spf_query_time_limit=variant.lookup_time, spf_authserv_id="mx.test")
    values.update(variant.ours)
    settings = Settings().replace(**values)
    resolver = stub.resolver(lifetime=variant.lookup_time)
    resolver.cache = dns.resolver.LRUCache(10000)      # as build_resolver makes it (dns_cache_entries)
    ctx = CheckContext(settings, task.Clock(), InlineExecutor(), resolver=resolver)
    pipe = Pipeline(settings, ctx, checks={"RCPT": ["spf"]})
    out = []
    for i, r in enumerate(reqs):
        got: list = []
        pipe.decide(PolicyRequest(policy_request(i, r, variant.name)), pipe.new_session(),
                    time.time()).addBoth(got.append)
        if hasattr(got[0], "raiseException"):
            got[0].raiseException()
        out.append(got[0].action.render())
    return out


# ---- normalising an action -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Outcome:
    klass: str                     # reject | defer | prepend | dunno
    code: str = ""                 # 550 (numeric replies only)
    dsn: str = ""
    header: str = ""               # PREPENDed header name
    result: str = ""               # Received-SPF result word, lower case (RFC 7208 9.1: case-insensitive)
    fields: tuple = ()             # sorted (key, value) of the compared keys


COMPARED_KEYS = ("identity", "client-ip", "helo", "envelope-from", "receiver", "mechanism", "problem")


def _kv(text: str) -> dict[str, str]:
    """key=value pairs of a Received-SPF value after the result word and the comment."""
    text = text.strip()
    if text.startswith("("):
        depth = 0
        for n, c in enumerate(text):
            depth += c == "("
            depth -= c == ")"
            if depth == 0:
                text = text[n + 1:]
                break
    out = {}
    # A value is a quoted-string (pyspf) or, from the peer, raw text up to ";" (which may
    # itself start with a quoted local part: "john doe"@example.test).
    for m in re.finditer(r'([A-Za-z0-9_.-]+)=((?:"(?:[^"\\]|\\.)*")?[^;\s]*)', text):
        v = m.group(2)
        if len(v) > 1 and v.startswith('"') and v.endswith('"') and re.fullmatch(r'"(?:[^"\\]|\\.)*"', v):
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        out[m.group(1).lower()] = v
    return out


def outcome(action: str) -> Outcome:
    words = action.split()
    verb = words[0].lower() if words else ""
    if re.fullmatch(r"[45]\d\d", verb):
        dsn = words[1] if len(words) > 1 and re.fullmatch(r"[45]\.\d+\.\d+", words[1]) else ""
        return Outcome("reject" if verb[0] == "5" else "defer", verb, dsn)
    if verb in ("defer_if_permit", "defer", "defer_if_reject"):
        dsn = words[1] if len(words) > 1 and re.fullmatch(r"4\.\d+\.\d+", words[1]) else ""
        return Outcome("defer", "", dsn)
    if verb == "prepend":
        name, _, value = action.split(None, 1)[1].partition(":")
        if name.lower() != "received-spf":
            return Outcome("prepend", header=name.lower())
        result, _, rest = value.strip().partition(" ")
        kv = _kv(rest)
        fields = tuple(sorted((k, kv[k]) for k in COMPARED_KEYS if k in kv))
        return Outcome("prepend", header="received-spf", result=result.lower(), fields=fields)
    return Outcome(verb)


# ---- what may differ, and why ----------------------------------------------------------------
@dataclasses.dataclass
class Case:
    variant: str
    req: dict
    ours: Outcome
    peer: Outcome
    ours_text: str
    peer_text: str

    def field(self, side: str, key: str) -> str | None:
        return dict(getattr(self, side).fields).get(key)


def _empty_helo(c: Case) -> Outcome:
    if c.field("ours", "helo") is not None:
        return c.peer                   # no HELO given: Owlery writes no helo= at all (RFC 7208 9.1)
    peer = _replace_field(c.peer, "helo", None)
    if peer.klass in ("reject", "defer") and "s=helo;" in c.peer_text and \
            (peer.klass, peer.code, peer.dsn) == (c.ours.klass, c.ours.code, c.ours.dsn):
        return c.ours
    return peer


@dataclasses.dataclass
class Deviation:
    name: str
    reason: str
    applies: Callable[[Case], bool]
    # Rewrites the peer's outcome to what it would be without this deviation (None: the
    # whole difference is explained).
    fix: Callable[[Case], Outcome] | None = None


DEVIATIONS: list[Deviation] = [
    Deviation(
        "text-fields", "Field spellings the RFC leaves open: the peer writes every value lower-cased "
        "(it lower-cases the whole request, so local parts lose their case, which RFC 5321 2.4 keeps), "
        "and leaves quoted local parts and 8-bit senders unquoted where pyspf's get_header quotes them "
        "(RFC 7208 9.1 key=value with dot-atom or quoted-string). Compared case-insensitively.",
        lambda c: True,
        lambda c: dataclasses.replace(c.peer, fields=tuple(
            (k, dict(c.ours.fields).get(k, v) if (dict(c.ours.fields).get(k) or "").lower() == v.lower() else v)
            for k, v in c.peer.fields))),
    Deviation(
        "peer-mechanism-absent", "The peer writes no mechanism=/problem= keys (RFC 7208 9.1 lists them as "
        "optional); Owlery writes pyspf's.",
        lambda c: True,
        lambda c: dataclasses.replace(c.peer, fields=tuple(sorted(c.peer.fields + tuple(
            (k, v) for k, v in c.ours.fields if k in ("mechanism", "problem")
            and k not in dict(c.peer.fields)))))),
    Deviation(
        "peer-receiver-recipient-domain", "With Hide_Receiver=No the peer writes the recipient's domain as "
        "receiver=; RFC 7208 9.1 defines receiver as the host name of the SPF verifier, which Owlery writes.",
        lambda c: c.field("peer", "receiver") not in (None, "<UNKNOWN>", "<unknown>"),
        lambda c: _replace_field(c.peer, "receiver", c.field("ours", "receiver"))),
    Deviation(
        "peer-skip-x-comment", "For a skipped (local) client the peer PREPENDs an X-Comment header; it is "
        "no trace header of RFC 7208 9 or RFC 8601, and Owlery answers DUNNO for spf_skip_networks "
        "(documented there).",
        lambda c: c.peer.header == "x-comment" and c.ours.klass == "dunno"),
    Deviation(
        "peer-servfail-not-temperror", "Debian's pyspf runs on py3dns, which does not look at the RCODE of "
        "a UDP answer: SERVFAIL reads as an empty answer, so the peer gets none/neutral/permerror/fail "
        "where RFC 7208 4.4 and 5 say temperror (Owlery, on dnspython, says temperror).",
        lambda c: _touches(c, "temp.test") and (c.ours.result == "temperror" or c.ours.klass == "defer"
                                                 or "temperror" in c.ours_text.lower())),
    Deviation(
        "ours-8bit-header-ascii", "Owlery's PREPEND text is printable ASCII (the policy daemon cannot "
        "know whether the message is SMTPUTF8, and raw 8-bit octets may only appear in the header of one, "
        "RFC 6532 3): the domain of a non-ASCII sender is written as its A-label (the name both sides "
        "look up, RFC 8616 4) and a non-ASCII local part in RFC 6533's ASCII form (j\\x{F6}rg), where "
        "the peer writes the raw UTF-8. The same address either way (checked); the result agrees.",
        lambda c: not c.req["sender"].isascii() and c.field("peer", "envelope-from") is not None
        and header_address(c.field("peer", "envelope-from")).lower() == (c.field("ours", "envelope-from") or "").lower(),
        lambda c: _replace_field(c.peer, "envelope-from", c.field("ours", "envelope-from"))),
    Deviation(
        "peer-quoted-at-domain", "For a quoted local part holding \"@\" (\"a@b\"@example.test) the peer "
        "(pyspf's split at the first \"@\") checks the domain 'b\"@example.test' (result none); the "
        "domain is what follows the last \"@\" (RFC 5321 4.1.2, RFC 7208 4.3), which Owlery checks; "
        "all that follows from the MAIL FROM result differs.",
        lambda c: c.req["sender"].count("@") > 1),
    Deviation(
        "peer-null-sender-helo-policy-only", "For the null sender the peer applies only its HELO policy "
        "(HELO_reject) to postmaster@HELO; RFC 7208 2.4 makes that the MAIL FROM identity, so Owlery "
        "applies the MAIL FROM actions (spf_fail_action, spf_softfail_action...) to it as well.",
        lambda c: c.req["sender"] == "" and c.peer.klass == "prepend" and c.ours.klass in ("reject", "defer")
        and c.peer.result in ("fail", "softfail", "permerror", "temperror")
        and re.search(rf"check {c.peer.result}\b", c.ours_text) is not None),
    Deviation(
        "peer-empty-helo-is-sender-domain", "With no HELO name the peer substitutes the MAIL FROM domain, "
        "checks it as the HELO identity and writes it as helo=; RFC 7208 2.3 checks the HELO identity "
        "only when one was given and 9.1 helo= is the name given. Owlery writes no helo= key (none was "
        "given) and checks no HELO identity. Where the peer's HELO verdict on the sender domain rejects "
        "or defers, Owlery's MAIL FROM verdict must do the same.",
        lambda c: c.req["helo_name"] == "", lambda c: _empty_helo(c)),
    Deviation(
        "peer-acts-on-helo-error", "The peer applies PermError_reject / TempError_Defer to the HELO "
        "identity and stops there; RFC 7208 2.3 requires the MAIL FROM check when the HELO check "
        "reached no definitive policy result (permerror, temperror), which Owlery does.",
        lambda c: c.req["sender"] != "" and c.peer.klass in ("reject", "defer")
        and re.search(r"s=helo;", c.peer_text) is not None
        and c.req["helo_name"] in ("helo-perm.test", "helo-temp.test")),
    Deviation(
        "peer-helo-header-when-mailfrom-none", "When MAIL FROM has no SPF record (none) but the HELO "
        "identity has a result, the peer writes the HELO identity's Received-SPF; Owlery writes the "
        "MAIL FROM result, the identity downstream filters and DMARC (RFC 7489 4.1) judge a message "
        "by (RFC 7208 9.1 allows one field per identity checked).",
        lambda c: c.peer.result != "" and c.field("peer", "identity") == "helo"
        and c.field("ours", "identity") == "mailfrom" and c.ours.result == "none" and c.req["sender"] != ""),
    Deviation(
        "peer-null-sender-envelope-from", "For the null sender the peer writes envelope-from=<>; Owlery "
        "(pyspf) writes no envelope-from key for the HELO identity it checks (RFC 7208 9.1: the keys "
        "are optional, and the null sender has no mailbox to name).",
        lambda c: c.req["sender"] == "" and c.field("peer", "envelope-from") == "<>"
        and c.field("ours", "envelope-from") is None,
        lambda c: _replace_field(c.peer, "envelope-from", None)),
]


def _replace_field(o: Outcome, key: str, value: str | None) -> Outcome:
    fields = dict(o.fields)
    if key in fields:
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    return dataclasses.replace(o, fields=tuple(sorted(fields.items())))


def _touches(c: Case, domain: str) -> bool:
    names = [c.req["helo_name"].lower(), c.req["sender"].rpartition("@")[2].lower()]
    return any(n.endswith(domain) for n in names)


def explain(c: Case) -> tuple[list[str], bool]:
    """The deviations used to explain this case, and whether they explain it all."""
    used = []
    peer = c.peer
    for dev in DEVIATIONS:
        if peer == c.ours:
            break
        if not dev.applies(dataclasses.replace(c, peer=peer)):
            continue
        if dev.fix is None:
            return used + [dev.name], True
        fixed = dev.fix(dataclasses.replace(c, peer=peer))
        if fixed != peer:
            used.append(dev.name)
            peer = fixed
    return used, peer == c.ours


# ---- the test ---------------------------------------------------------------------------------
def compare_all(stub, workdir: Path) -> tuple[list[Case], Counter, list[Case]]:
    cases, classes, unexplained = [], Counter(), []
    for n, variant in enumerate(VARIANTS):
        reqs = list(variant.extra) if variant.only_extra else \
            FIXED + list(variant.extra) + random_requests(random.Random(SEED + n), PER_CONFIG)
        peer = ask_peer(stub, variant, reqs, workdir)
        ours = ask_owlery(stub, variant, reqs)
        for req, o, p in zip(reqs, ours, peer):
            c = Case(variant.name, req, outcome(o), outcome(p), o, p)
            cases.append(c)
            used, ok = explain(c)
            for u in used:
                classes[u] += 1
            if not ok:
                unexplained.append(c)
    return cases, classes, unexplained


def test_spf_check_agrees_with_pypolicyd_spf(dns_zone):
    load_zone(dns_zone)
    with tempfile.TemporaryDirectory() as tmp:
        cases, classes, unexplained = compare_all(dns_zone, Path(tmp))
    report = "\n".join(f"[{c.variant}] {c.req}\n  ours: {c.ours_text}\n  peer: {c.peer_text}"
                       for c in unexplained[:15])
    assert not unexplained, f"{len(unexplained)} of {len(cases)} unexplained differences:\n{report}"
    assert len(cases) == sum(len(v.extra) + (0 if v.only_extra else len(FIXED) + PER_CONFIG) for v in VARIANTS)
    timeouts = [c for c in cases if c.req["sender"].endswith("@slow.test")]
    assert timeouts and all(c.ours.klass == c.peer.klass == "defer" and c.ours.dsn == c.peer.dsn == "4.7.24"
                            for c in timeouts), timeouts
    seen = Counter(c.ours.klass for c in cases)
    assert {"reject", "defer", "prepend", "dunno"} <= set(seen), seen
    results = Counter(c.ours.result for c in cases)
    assert {"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"} <= set(results), results
    unused = [d.name for d in DEVIATIONS if d.name not in classes]
    assert not unused, f"allow-list entries no longer needed: {unused}"
    # RFC 7208 6.2: an exp= explanation reaches the SMTP client in both replies.
    exp = [c for c in cases if c.req["sender"].endswith("@exp.test") and c.ours.klass == c.peer.klass == "reject"
           and "mailfrom check" in c.ours_text and "s=mfrom;" in c.peer_text]
    assert exp and all("is not one of exp.test's designated mail servers" in c.ours_text
                       and "is not one of exp.test's designated mail servers" in c.peer_text for c in exp), exp[:3]


if __name__ == "__main__":       # a report by difference class: python -m tests.policyd.test_spf_policyd_differential
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.harness.dns import DNSStub
    with DNSStub().start() as stub, tempfile.TemporaryDirectory() as tmp:
        load_zone(stub)
        cases, classes, unexplained = compare_all(stub, Path(tmp))
    print(len(cases), "compared;", dict(classes))
    shown: Counter = Counter()
    for c in cases:
        for u in explain(c)[0]:
            if u not in ("text-fields", "peer-mechanism-absent", "peer-receiver-recipient-domain") and shown[u] < 3:
                shown[u] += 1
                print(f"<{u}> [{c.variant}] {c.req}\n  ours: {c.ours_text}\n  peer: {c.peer_text}")
    for c in unexplained:
        print(f"[{c.variant}] {c.req}\n  ours: {c.ours_text}\n  peer: {c.peer_text}")
    print(len(unexplained), "unexplained")
