"""Differential test of ARC validation (RFC 8617): Owlery's arc_verify stage against Rspamd's arc module.

A seeded generator (random.Random, fixed seeds) builds chains of 1-4 ARC sets with this file's
own sealer (RFC 8617 4.1 and 5.1.1, RFC 6376 3.4/3.7 written out, so a set can carry any tags
in any order and any instance) and mutates them: instance gaps, duplicates, i=0, i>50, 50 and
51 sets, a set missing a field, lone ARC fields, two AAR, AMS or AS with one i=, i= not the
first tag, wrong cv= (none above 1, pass at 1, fail and later sets, upper case), an AS over the
wrong fields or in the wrong order, AMS h= with ARC fields or 20,000 names, the body or a
signed field changed after seal i=k (oldest-pass), missing or odd tags (d=, s=, b=, bh=, cv=,
a=, t= ahead, x= past, v=, c=, h= on a seal), key records (none, revoked, bad, h=sha1, another
key, SERVFAIL), folds and blanks, 8-bit fields, fields added between hops, sets out of order.
Every message goes through Owlery (adapter, stages arc_verify + authres) and through one
Rspamd (tests/harness/rspamd.py, DNS from the stub, one /checkv2 each); the arc= verdict of our
Authentication-Results is compared with Rspamd's symbol: ARC_ALLOW = pass, ARC_REJECT and
ARC_INVALID = fail (RFC 8617 has one fail; Rspamd's split is structure vs signature),
ARC_DNSFAIL = temperror (Rspamd never gives it), ARC_NA = none, no ARC symbol = absent.
dkimpy's own ARC.verify, which arc_verify used before and now only borrows signatures from, is
the third opinion. Differences RFC 8617 decides against Rspamd or dkimpy are in ALLOWED and
DKIMPY_ALLOWED with the reason; any other fails the test, and so does an allowance no run
needed. Below: one case per fix (each failed on the old stage) and the hostile-input bounds,
counted (DNS queries, header selections, body canonicalisations), never timed.

By hand, more seeds: ARC_DIFF_SEEDS=1,2,3,4,5 ARC_DIFF_COUNT=2000 ARC_DIFF_TALLY=1 scripts/test
tests/milters/test_arc_differential.py -k agree -s (unused allowances are then not an error;
ARC_DIFF_DUMP=dir writes each unexplained message there, ARC_DIFF_SHOW=kind prints a kind's verdicts).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import Milter
import pytest

from tests.harness.rspamd import Rspamd

from .test_dkim_differential import WORDS, canon_body, canon_header, field_name, select_fields

SEEDS = tuple(int(s) for s in os.environ.get("ARC_DIFF_SEEDS", "8617,6376").split(","))
COUNT = int(os.environ.get("ARC_DIFF_COUNT", "400"))
BY_HAND = "ARC_DIFF_SEEDS" in os.environ or "ARC_DIFF_COUNT" in os.environ
NOW = int(time.time())
CLIENT_IP = "192.0.2.10"
HOP_DOMAINS = ("example.org", "example.com", "example.net", "example.org")
AAR, AMS, AS = b"arc-authentication-results", b"arc-message-signature", b"arc-seal"
NAMES = {AAR: b"ARC-Authentication-Results", AMS: b"ARC-Message-Signature", AS: b"ARC-Seal"}
DEFAULT_H = ("from", "to", "subject", "date", "message-id")


# ---- keys -----------------------------------------------------------------------------------
@dataclass
class Key:
    private: object
    public_b64: str


def _rsa(bits):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    private = rsa.generate_private_key(65537, bits)
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key(private, base64.b64encode(der).decode())


@pytest.fixture(scope="module")
def keys():
    return {"k2048": _rsa(2048), "k1024": _rsa(1024)}


def key_record(key, **tags):
    fields = {"v": "DKIM1", "k": "rsa", "p": key.public_b64}
    fields.update(tags)
    return "; ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


# ---- the sealer (RFC 8617 4.1, 5.1) -----------------------------------------------------------
INSTANCE = re.compile(rb"(?:^|;)\s*i\s*=\s*(\d+)")


def instance_of(raw_field):
    """The i= of an ARC field as written (None when there is none)."""
    value = raw_field.partition(b":")[2].replace(b"\r\n", b"")
    m = INSTANCE.search(value.strip())
    return int(m.group(1)) if m else None


@dataclass
class Message:
    fields: list          # raw fields, top first, "Name: value", folds as CRLF WSP, no final CRLF
    body: bytes

    def raw(self):
        return b"".join(f + b"\r\n" for f in self.fields) + b"\r\n" + self.body

    def arc_sets(self):
        """{instance: {name: first raw field}} of the ARC fields present."""
        sets = {}
        for f in self.fields:
            name = field_name(f)
            if name in NAMES:
                sets.setdefault(instance_of(f), {}).setdefault(name, f)
        return sets


def _rsa_sign(key, data):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    return base64.b64encode(key.private.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def _render(name, tags, b_value, fold, spaced=False):
    sep = ";\r\n\t" if fold else " ; " if spaced else "; "
    eq = " = " if spaced else "="
    return (name.decode() + ": " + sep.join(f"{k}{eq}{b_value if k == 'b' else v}" for k, v in tags)).encode()


def _tags(base, override, extra, drop, rng, order=None):
    tags = [(k, override.get(k, v)) for k, v in base]
    tags += [(k, v) for k, v in override.items() if k not in dict(base)]
    tags += list(extra)
    tags = [(k, v) for k, v in tags + [("b", "")] if k not in drop]
    if rng is not None:
        rng.shuffle(tags)
        tags.sort(key=lambda kv: kv[0] != "i")     # RFC 8617 4.1.2/4.1.3: the instance comes first
    if order is not None:
        tags.sort(key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order) - 0.5)
    return tags


@dataclass
class Hop:
    """One ARC set to add: who seals, and how this set departs from RFC 8617."""
    instance: int
    key: Key
    domain: str
    selector: str
    cv: str
    h: tuple = DEFAULT_H
    ams: dict = field(default_factory=dict)       # tag overrides (signed over)
    seal: dict = field(default_factory=dict)
    ams_extra: tuple = ()
    seal_extra: tuple = ()
    ams_drop: tuple = ()
    seal_drop: tuple = ()
    shuffle: random.Random | None = None
    ams_order: tuple | None = None  # tag names in this order (the rest after)
    seal_order: tuple | None = None
    fold: bool = False
    spaced: bool = False            # "i = 1 ; a = ..." (RFC 6376 3.2 tag-spec allows FWS around "=")
    ams_c: str = "relaxed/relaxed"
    seal_over: str = "rfc"          # rfc | reversed | own-set | no-aar | ams-first
    aar_text: str | None = None
    ams_key: Key | None = None      # sign the AMS with another key than the record's


def add_set(msg, hop, now=NOW):
    """Put ARC-Authentication-Results, ARC-Message-Signature and ARC-Seal for `hop` on top."""
    i = hop.instance
    aar = (f"ARC-Authentication-Results: i={i}; mx{i}.{hop.domain};\r\n\tspf=pass smtp.mailfrom=example.net;"
           f"\r\n\tarc={hop.cv}").encode() if hop.aar_text is None else hop.aar_text.encode()
    msg.fields.insert(0, aar)
    hc, _, bc = hop.ams_c.partition("/")
    bh = base64.b64encode(hashlib.sha256(canon_body(msg.body, bc or "simple")).digest()).decode()
    base = [("i", str(i)), ("a", "rsa-sha256"), ("c", hop.ams_c), ("d", hop.domain), ("s", hop.selector),
            ("t", str(now)), ("h", ":".join(hop.h)), ("bh", bh)]
    tags = _tags(base, hop.ams, hop.ams_extra, hop.ams_drop, hop.shuffle, hop.ams_order)
    data = b"".join(canon_header(f, hc) for f in select_fields(msg.fields, hop.h))
    data += canon_header(_render(NAMES[AMS], tags, "", hop.fold, hop.spaced), hc)[:-2]
    ams = _render(NAMES[AMS], tags, _rsa_sign(hop.ams_key or hop.key, data), hop.fold, hop.spaced)
    msg.fields.insert(0, ams)
    base = [("i", str(i)), ("a", "rsa-sha256"), ("t", str(now)), ("cv", hop.cv), ("d", hop.domain),
            ("s", hop.selector)]
    tags = _tags(base, hop.seal, hop.seal_extra, hop.seal_drop, hop.shuffle, hop.seal_order)
    sets = msg.arc_sets()
    order = sorted(k for k in sets if k is not None and k < i)
    over = []
    if hop.seal_over == "reversed":
        order.reverse()
    if hop.seal_over != "own-set":
        for k in order:
            over += [sets[k].get(n) for n in (AAR, AMS, AS)]
    own = [aar, ams]
    if hop.seal_over == "no-aar":
        own = [ams]
    elif hop.seal_over == "ams-first":
        own = [ams, aar]
    over = [f for f in over + own if f is not None]
    data = b"".join(canon_header(f, "relaxed") for f in over)
    data += canon_header(_render(NAMES[AS], tags, "", hop.fold, hop.spaced), "relaxed")[:-2]
    msg.fields.insert(0, _render(NAMES[AS], tags, _rsa_sign(hop.key, data), hop.fold, hop.spaced))


# ---- the generator ----------------------------------------------------------------------------
def base_message(rng):
    def words(lo, hi):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))
    lines = [("" if rng.random() < 0.15 else words(1, 9)) for _ in range(rng.randint(1, 6))]
    fields = [b"Received: from mail.example.net by mx0.example.net; Mon, 01 Jan 2024 10:00:00 +0000",
              b"From: Alice <alice@example.net>", b"To: bob@example.com",
              b"Subject: " + words(1, 5).encode(), b"Date: Mon, 01 Jan 2024 10:00:00 +0000",
              b"Message-ID: <%d@example.net>" % rng.randrange(10**9)]
    return Message(fields, "\r\n".join(lines).encode() + b"\r\n")


@dataclass
class Case:
    kind: str
    msg: Message
    records: dict = field(default_factory=dict)    # DNS name -> TXT text, or "SERVFAIL"
    raw: bytes | None = None

    def data(self):
        return self.raw if self.raw is not None else self.msg.raw()


class Generator:
    """Case `n` of a seed: the kind cycles through KINDS, the details come from rng."""

    def __init__(self, keys):
        self.keys = keys

    def make(self, rng, n, kind):
        self.rng, self.n, self.records = rng, n, {}
        self.msg = base_message(rng)
        case = getattr(self, "k_" + kind)()
        if case is None:
            case = Case(kind, self.msg)
        case.kind = kind
        case.records.update(self.records)
        return case

    # helpers
    def hop(self, i, cv=None, key="k2048", record=None, **kw):
        """A Hop for instance i with its key published (record= replaces the key record's text)."""
        domain = HOP_DOMAINS[(i - 1) % len(HOP_DOMAINS)] if 0 < i < 60 else "example.org"
        selector = f"c{self.n}h{i}x{len(self.records)}"
        self.records[f"{selector}._domainkey.{domain}"] = record if record is not None else key_record(self.keys[key])
        cv = cv if cv is not None else ("none" if i == 1 else "pass")
        return Hop(i, self.keys[key], domain, selector, cv, **kw)

    def chain(self, n, **by_instance):
        """Seal n sets in order; by_instance["h2"] = dict of Hop arguments for instance 2."""
        for i in range(1, n + 1):
            add_set(self.msg, self.hop(i, **by_instance.get(f"h{i}", {})))

    def depth(self, lo=1, hi=4):
        return self.rng.randint(lo, hi)

    def drop_field(self, name, instance):
        for j, f in enumerate(self.msg.fields):
            if field_name(f) == name and instance_of(f) == instance:
                del self.msg.fields[j]
                return

    # kinds: good chains
    def k_none(self):
        pass

    def k_good(self):
        self.chain(self.depth())

    def k_good_folded(self):
        n = self.depth()
        self.chain(n, **{f"h{i}": dict(fold=True, shuffle=self.rng if self.rng.random() < 0.5 else None)
                         for i in range(1, n + 1)})

    def k_good_shuffled_tags(self):
        n = self.depth()
        self.chain(n, **{f"h{i}": dict(shuffle=self.rng) for i in range(1, n + 1)})

    def k_good_1024(self):
        self.chain(self.depth(), **{f"h{i}": dict(key="k1024") for i in range(1, 5)})

    def k_received_added_between_hops(self):
        n = self.depth(2, 4)
        for i in range(1, n + 1):
            add_set(self.msg, self.hop(i))
            self.msg.fields.insert(0, b"Received: from hop%d.example.org by hop%d.example.com" % (i, i + 1))

    def k_eight_bit(self):
        self.msg.fields[3] = "Subject: Grüße aus Köln — ½".encode()
        n = self.depth()
        aar = "ARC-Authentication-Results: i={i}; mx.example.org; spf=pass smtp.mailfrom=jürgen@example.net"
        self.chain(n, **{f"h{i}": dict(aar_text=aar.format(i=i)) for i in range(1, n + 1)})

    def k_spaced_tags(self):
        # "i = 1 ; a = rsa-sha256 ; ..." sealed that way: FWS around "=" and before ";" (RFC 6376
        # 3.2 tag-spec; RFC 8617 3.9 instance allows CFWS there too)
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(spaced=True)})

    def arc_fields_rewritten(self, how):
        n = self.depth()
        self.chain(n)
        for j, f in enumerate(self.msg.fields):
            if field_name(f) in NAMES:
                name, _, value = f.partition(b":")
                self.msg.fields[j] = name + b":" + how(value)

    def k_no_space_after_colon(self):
        # relaxed canonicalisation drops the blank after the colon (RFC 6376 3.4.2): still valid
        self.arc_fields_rewritten(lambda value: value.lstrip())

    def k_refolded(self):
        # a hop folded the ARC fields again: relaxed canonicalisation undoes folds (RFC 6376 3.4.2)
        self.arc_fields_rewritten(lambda value: b" \t " + value.lstrip().replace(b"; ", b";\r\n   ", 2))

    def k_blanks_added_around_equals(self):
        # "i=1;" made "i = 1 ;" after sealing: relaxed keeps those blanks, so every signature breaks
        self.arc_fields_rewritten(lambda value: re.sub(rb"\bi=(\d+);", rb"i = \1 ;", value, count=1))

    def k_lowercase_names(self):
        self.chain(self.depth())
        self.msg.fields = [(b"arc-" + f[4:]) if field_name(f) in NAMES else f for f in self.msg.fields]

    def k_instance_not_first(self):
        # i= not the first tag of an AMS or AS (RFC 8617 4.1.2/4.1.3: arc-ams-info and arc-as-info
        # start with the instance), the rest in any order (RFC 6376 3.2)
        n = self.depth()
        last = self.rng.choice((("a", "c", "d", "s", "t", "cv", "h", "bh", "b", "i"),
                                ("a", "i", "b", "c", "cv", "d", "s", "t", "h", "bh")))
        which = self.rng.choice((("ams_order",), ("seal_order",), ("ams_order", "seal_order")))
        self.chain(n, **{f"h{self.rng.randint(1, n)}": {w: last for w in which}})

    def k_sets_out_of_order(self):
        # a later hop moved the older set above its own (RFC 8617 5.1.1 orders by instance, not position)
        n = self.depth(2, 3)
        self.chain(n)
        arc = [f for f in self.msg.fields if field_name(f) in NAMES]
        rest = [f for f in self.msg.fields if field_name(f) not in NAMES]
        self.rng.shuffle(arc)
        self.msg.fields = arc + rest

    def k_body_changed_after_older_seal(self):
        n = self.depth(2, 4)
        k = self.rng.randint(1, n - 1)
        for i in range(1, n + 1):
            add_set(self.msg, self.hop(i))
            if i == k:
                self.msg.body += b"-- \r\nfooter added by list %d\r\n" % i

    def k_subject_changed_after_older_seal(self):
        n = self.depth(2, 4)
        k = self.rng.randint(1, n - 1)
        for i in range(1, n + 1):
            add_set(self.msg, self.hop(i))
            if i == k:
                self.msg.fields[-3] = b"Subject: [list] " + self.msg.fields[-3][9:]

    def k_ams_h_with_aar_ams(self):
        n = self.depth()
        h = DEFAULT_H + tuple(self.rng.sample(("arc-authentication-results", "arc-message-signature",
                                               "dkim-signature"), 2))
        self.chain(n, **{f"h{i}": dict(h=h) for i in range(1, n + 1)})

    def k_ams_h_with_arc_seal(self):
        n = self.depth()
        k = self.rng.randint(1, n)
        self.chain(n, **{f"h{k}": dict(h=DEFAULT_H + ("arc-seal",))})

    def k_ams_without_from(self):
        self.chain(self.depth(), h1=dict(h=("to", "subject", "date")))

    def k_ams_v_tag(self):
        # AMS has no v= (RFC 8617 4.1.2): one seen MUST be ignored
        n = self.depth()
        k = self.rng.randint(1, n)
        self.chain(n, **{f"h{k}": dict(ams_extra=(("v", self.rng.choice(("1", "2"))),))})

    def k_ams_simple(self):
        n = self.depth()
        self.chain(n, **{f"h{n}": dict(ams_c=self.rng.choice(("simple/simple", "relaxed/simple", "simple/relaxed")))})

    def k_ams_no_c(self):
        # no c=: RFC 6376 3.5 default simple/simple (the AMS is DKIM's syntax and semantics, RFC 8617 4.1.2)
        n = self.depth()
        self.chain(n, **{f"h{n}": dict(ams_c="simple/simple", ams_drop=("c",))})

    def k_unknown_tags(self):
        n = self.depth()
        k = self.rng.randint(1, n)
        self.chain(n, **{f"h{k}": dict(ams_extra=(("zz", "what ever"),), seal_extra=(("q9", "x"),))})

    # kinds: structure
    def k_gap(self):
        n = self.depth(2, 4)
        skip = self.rng.randint(1, n - 1)
        for i in range(1, n + 1):
            if i != skip:
                add_set(self.msg, self.hop(i))

    def k_starts_at_2(self):
        add_set(self.msg, self.hop(2, cv=self.rng.choice(("none", "pass"))))

    def k_instance_zero(self):
        if self.rng.random() < 0.5:
            add_set(self.msg, self.hop(0, cv="none"))
        else:
            add_set(self.msg, self.hop(1))
            add_set(self.msg, self.hop(0, cv="pass"))

    def k_instance_too_high(self):
        i = self.rng.choice((51, 99, 1000))
        add_set(self.msg, self.hop(i, cv=self.rng.choice(("none", "pass"))))

    def k_fifty_one_sets(self):
        # one more set than RFC 8617 5.2 step 1 allows (the case kind is rare: it costs 51 seals)
        self.msg.body = b"short\r\n"
        for i in range(1, 52):
            add_set(self.msg, self.hop(i, key="k1024"))

    def k_fifty_sets(self):
        self.msg.body = b"short\r\n"
        for i in range(1, 51):
            add_set(self.msg, self.hop(i, key="k1024"))

    def k_duplicate_set(self):
        n = self.depth(1, 3)
        self.chain(n)
        twin = self.rng.randint(1, n)
        add_set(self.msg, self.hop(twin, cv="none" if twin == 1 else "pass"))

    def k_missing_field(self):
        n = self.depth()
        self.chain(n)
        self.drop_field(self.rng.choice((AAR, AMS, AS)), self.rng.randint(1, n))

    def k_two_ams_one_instance(self):
        n = self.depth()
        self.chain(n)
        k = self.rng.randint(1, n)
        other = Message(list(self.msg.fields), self.msg.body)
        add_set(other, self.hop(k, h=("from", "to")))
        extra = next(f for f in other.fields[:3] if field_name(f) == AMS)
        self.msg.fields.insert(self.rng.randint(0, 3 * n), extra)

    def k_two_as_one_instance(self):
        n = self.depth()
        self.chain(n)
        k = self.rng.randint(1, n)
        other = Message(list(self.msg.fields), self.msg.body)
        add_set(other, self.hop(k, cv="none" if k == 1 else "pass", seal=dict(t=str(NOW - 5))))
        extra = other.fields[0]
        self.msg.fields.insert(self.rng.randint(0, 3 * n), extra)

    def k_two_aar_one_instance(self):
        n = self.depth()
        self.chain(n)
        k = self.rng.randint(1, n)
        self.msg.fields.insert(self.rng.randint(0, 3 * n), b"ARC-Authentication-Results: i=%d; forged.example; dkim=pass" % k)

    def k_aar_without_instance(self):
        n = self.depth()
        self.chain(n, h1=dict(aar_text="ARC-Authentication-Results: mx.example.org; spf=pass"))

    def stray(self, keep):
        # one ARC field without the rest of its set (no complete set at all)
        add_set(self.msg, self.hop(1))
        self.msg.fields = [f for f in self.msg.fields if field_name(f) not in NAMES or field_name(f) == keep]

    def k_stray_aar(self):
        self.stray(AAR)

    def k_stray_ams(self):
        self.stray(AMS)

    def k_stray_seal(self):
        self.stray(AS)

    # kinds: cv
    def k_cv_none_above_1(self):
        n = self.depth(2, 4)
        self.chain(n, **{f"h{self.rng.randint(2, n)}": dict(cv="none")})

    def k_cv_pass_at_1(self):
        self.chain(self.depth(), h1=dict(cv="pass"))

    def k_cv_fail_top(self):
        n = self.depth(2, 4)
        self.chain(n, **{f"h{n}": dict(cv="fail")})

    def k_cv_fail_then_more(self):
        n = self.depth(2, 4)
        k = self.rng.randint(2, n - 1) if n > 2 else 2
        if k == n:
            n += 1
        self.chain(n, **{f"h{k}": dict(cv="fail")})

    def k_cv_missing(self):
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(seal_drop=("cv",))})

    def k_cv_bogus(self):
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(cv=self.rng.choice(("neutral", "passed", "")))})

    def k_cv_uppercase(self):
        # RFC 5234 2.3: ABNF strings ("none" / "fail" / "pass", RFC 8617 4.1.3) are case-insensitive
        n = self.depth(2, 4)
        k = self.rng.randint(1, n)
        self.chain(n, **{f"h{k}": dict(cv=self.rng.choice(("NONE", "None")) if k == 1 else self.rng.choice(("PASS", "Pass")))})

    # kinds: what the seal covers
    def k_seal_wrong_set(self):
        n = self.depth(2, 4)
        self.chain(n, **{f"h{self.rng.randint(2, n)}": dict(
            seal_over=self.rng.choice(("reversed", "own-set", "no-aar", "ams-first")))})

    def k_seal_own_set_only_at_1(self):
        self.chain(1, h1=dict(seal_over=self.rng.choice(("no-aar", "ams-first"))))

    def k_seal_with_h(self):
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(seal_extra=(("h", "from:to"),))})

    def k_body_changed_after_last_seal(self):
        self.chain(self.depth())
        self.msg.body += b"appended\r\n"

    def k_aar_changed(self):
        n = self.depth()
        self.chain(n)
        k = self.rng.randint(1, n)
        for j, f in enumerate(self.msg.fields):
            if field_name(f) == AAR and instance_of(f) == k:
                self.msg.fields[j] = f.replace(b"spf=pass", b"spf=fail")

    # kinds: tags
    def k_missing_tag(self):
        n = self.depth()
        k = self.rng.randint(1, n)
        if self.rng.random() < 0.6:
            self.chain(n, **{f"h{k}": dict(ams_drop=(self.rng.choice(("d", "s", "b", "bh", "h", "a")),))})
        else:
            self.chain(n, **{f"h{k}": dict(seal_drop=(self.rng.choice(("d", "s", "b", "a")),))})

    def k_ams_h_with_authentication_results(self):
        # RFC 8617 4.1.2 says A-R fields MUST NOT be in the AMS h= (not enforced: see arc_verify)
        self.msg.fields.insert(0, b"Authentication-Results: mx0.example.net; spf=pass smtp.mailfrom=example.net")
        n = self.depth()
        self.chain(n, **{f"h{n}": dict(h=DEFAULT_H + ("authentication-results",))})

    def k_huge_h(self):
        # h= naming 3,000 fields, most of them absent (they add nothing to the hash)
        n = self.depth()
        names = list(DEFAULT_H) + [self.rng.choice(("x-absent", "received", "from", "subject")) for _ in range(3000)]
        self.chain(n, **{f"h{n}": dict(h=tuple(names))})

    def k_unknown_a(self):
        n = self.depth()
        where = self.rng.choice(("ams", "seal"))
        self.chain(n, **{f"h{self.rng.randint(1, n)}": {where: dict(a=self.rng.choice(("rsa-sha1", "rsa-sha512",
                                                                                          "ed25519-sha256")))}})

    def k_t_future_ams(self):
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(ams=dict(t=str(NOW + 86400 * 3)))})

    def k_t_future_seal(self):
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(seal=dict(t=str(NOW + 86400 * 3)))})

    def k_x_expired_ams(self):
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(ams=dict(t=str(NOW - 86400 * 3)),
                                                            ams_extra=(("x", str(NOW - 86400 * 2)),))})

    def k_x_expired_seal(self):
        # x= is no AS tag (RFC 8617 4.1.3): an unknown tag, ignored (RFC 6376 3.2)
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(seal=dict(t=str(NOW - 86400 * 3)),
                                                            seal_extra=(("x", str(NOW - 86400 * 2)),))})

    def bad_instance(self, name):
        n = self.depth()
        self.chain(n)
        k = self.rng.randint(1, n)
        bad = self.rng.choice((b"i=%dX" % k, b"i=-%d" % k, b"i=0%d" % k, b"i=%d.0" % k))
        for j, f in enumerate(self.msg.fields):
            if field_name(f) == name and instance_of(f) == k:
                self.msg.fields[j] = re.sub(rb"\bi=\d+", bad, f, count=1)

    def k_bad_instance_ams(self):
        self.bad_instance(AMS)

    def k_bad_instance_seal(self):
        self.bad_instance(AS)

    # kinds: keys
    def k_key_missing(self):
        n = self.depth()
        k = self.rng.randint(1, n)
        self.chain(n)
        for name in [r for r in self.records if r.startswith(f"c{self.n}h{k}x")]:
            del self.records[name]
        self.records[f"c{self.n}zz._domainkey.example.org"] = key_record(self.keys["k2048"])

    def k_key_revoked(self):
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(record=key_record(self.keys["k2048"], p=""))})

    def k_key_bad(self):
        n = self.depth()
        p = self.keys["k2048"].public_b64
        bad = self.rng.choice((key_record(self.keys["k2048"], p=p[:40] + "!" + p[41:]),
                               key_record(self.keys["k2048"], k="dsa"),
                               key_record(self.keys["k2048"], v="DKIM2")))
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(record=bad)})

    def k_key_h_sha1(self):
        # RFC 6376 6.1.2: a key record whose h= leaves out the signature's hash is ignored
        n = self.depth()
        self.chain(n, **{f"h{self.rng.randint(1, n)}": dict(record=key_record(self.keys["k2048"], h="sha1"))})

    def k_key_wrong(self):
        # the record holds another key than the one that sealed
        n = self.depth()
        k = self.rng.randint(1, n)
        self.chain(n, **{f"h{k}": dict(record=key_record(self.keys["k1024"]))})

    def k_key_servfail(self):
        n = self.depth()
        k = self.rng.randint(1, n)
        self.chain(n)
        for name in [r for r in self.records if r.startswith(f"c{self.n}h{k}x")]:
            self.records[name] = "SERVFAIL"


KINDS = sorted(name[2:] for name in vars(Generator) if name.startswith("k_"))
RARE = {"fifty_one_sets", "fifty_sets"}       # once per run: 50 seals each


def generate(keys, count=COUNT, seeds=SEEDS):
    gen = Generator(keys)
    cases = []
    common = [k for k in KINDS if k not in RARE]
    for s, seed in enumerate(seeds):
        rng = random.Random(seed)
        per_seed = count // len(seeds) + (1 if s < count % len(seeds) else 0)
        for _ in range(per_seed):
            n = len(cases)
            cases.append(gen.make(rng, n, common[n % len(common)]))
    rng = random.Random(seeds[0])
    for kind in sorted(RARE):
        cases.append(gen.make(rng, len(cases), kind))
    return cases


def publish(dns, cases):
    for case in cases:
        for name, value in case.records.items():
            if value == "SERVFAIL":
                dns.fail(name)
            else:
                dns.set(name, "TXT", value)


# ---- the three verdicts --------------------------------------------------------------------------
RSPAMD_VERDICT = {"ARC_ALLOW": "pass", "ARC_REJECT": "fail", "ARC_INVALID": "fail",
                  "ARC_DNSFAIL": "temperror", "ARC_NA": "none"}


def rspamd_verdict(reply):
    found = sorted(RSPAMD_VERDICT[s] for s in reply.get("symbols", {}) if s in RSPAMD_VERDICT)
    return "+".join(found) or "absent"


def rspamd_detail(reply):
    return {s: v.get("options") for s, v in reply.get("symbols", {}).items() if s in RSPAMD_VERDICT}


ARC_RESULT = re.compile(r"(?:^|;)\s*arc=(\w+)")


def owlery_verdict(run, case):
    code, ctx = run(case.data(), sender="<alice@example.net>", client=("mail.example.net", CLIENT_IP))
    assert code == Milter.ACCEPT, (case.kind, ctx.replies)
    ar = " ".join((ctx.header_value("Authentication-Results") or "").split())
    found = ARC_RESULT.findall(ar)
    assert len(found) == 1, (case.kind, ar)
    return found[0], ar


def dkimpy_verdict(raw, dnsfunc):
    """dkimpy's own ARC.verify over the message, as arc_verify used it before."""
    import dkim

    from owlery.errors import TemporaryFailure
    try:
        cv, _, _ = dkim.ARC(raw).verify(dnsfunc=dnsfunc)
    except TemporaryFailure:
        return "temperror"
    except Exception:  # noqa: BLE001 - dkimpy raises IndexError, KeyError, ValueError on bad sets
        return "fail"
    return {dkim.CV_Pass: "pass", dkim.CV_None: "none"}.get(cv, "fail")


# ---- what differs on purpose ----------------------------------------------------------------------
# Rspamd 3.4's arc module settles the verdict in the callback of the newest seal: that seal's key
# is cached by then (the newest AMS used it), so its callback runs before the answers for the
# older seals' keys come back, and a failing older seal no longer changes ARC_ALLOW. RFC 8617
# 5.2 step 6: every AS from N down to 1 must validate, else the chain fails.
OLDER_SEAL = ("an AS older than the newest one does not validate; Rspamd's verdict is taken before "
              "that seal's key answer arrives (see above), RFC 8617 5.2 step 6 says fail.")
NO_VERDICT = "Rspamd adds no ARC symbol at all (its arc module stops on the field); "

# (kind, Owlery's arc=, Rspamd's verdict) -> why. An entry no run needs fails the test (stale).
ALLOWED = {
    **{(kind, "fail", "pass"): OLDER_SEAL
       for kind in ("key_missing", "key_revoked", "key_bad", "key_wrong", "seal_wrong_set", "unknown_a")},
    ("key_servfail", "fail", "pass"): "SERVFAIL for an older seal's key (RFC 8617 5.2.1: a DNS failure is a "
                                      "failure too): " + OLDER_SEAL,
    ("key_h_sha1", "fail", "pass"): (
        "the key record's h= leaves out sha256: RFC 6376 6.1.2 says ignore the key record (PERMFAIL), "
        "so the signature is not verified and the chain fails; Rspamd uses the key."),
    ("instance_not_first", "fail", "pass"): (
        "an AMS or AS whose first tag is not i=: RFC 8617 4.1.2/4.1.3 (arc-ams-info, arc-as-info = "
        "instance [CFWS] \";\" tag-list) put the instance first; Rspamd reads i= anywhere (and then "
        "fails only a seal over such a field)."),
    ("ams_h_with_arc_seal", "fail", "pass"): (
        "the newest AMS lists ARC-Seal in h=: RFC 8617 4.1.2 MUST NOT (the AS comes after the AMS); the "
        "ValiMail ARC test suite fails it (ams_fields_h_includes_as), as dkimpy does; Rspamd passes it."),
    **{(kind, "fail", "none"): (
        "one ARC field without the rest of its set: Rspamd wants both an AMS and an AS before it looks "
        "and says ARC_NA; RFC 8617 5.2 step 3.1: each ARC Set MUST hold exactly one AAR, AMS and AS, "
        "else fail.") for kind in ("stray_aar", "stray_ams", "stray_seal")},
    ("missing_field", "fail", "none"): (
        "the only set lacks its AS: Rspamd says ARC_NA; RFC 8617 5.2 step 3.1: an incomplete set fails."),
    ("two_aar_one_instance", "fail", "pass"): (
        "two AAR with one i=: RFC 8617 5.2 step 3.1 (exactly one AAR per set) fails the chain; Rspamd "
        "never counts AAR fields."),
    ("aar_without_instance", "fail", "absent"): NO_VERDICT + (
        "an AAR without i= (RFC 8617 4.1.1 arc-info starts with the instance) leaves a set incomplete: fail."),
    ("bad_instance_seal", "fail", "absent"): NO_VERDICT + (
        "an AS whose i= is not 1*2DIGIT (RFC 8617 3.9 position, 1-50): no valid instance, fail."),
    ("missing_tag", "fail", "absent"): NO_VERDICT + (
        "an AS without a=, b=, d= or s= (required, RFC 6376 3.5) cannot be verified: fail."),
    ("seal_with_h", "fail", "absent"): NO_VERDICT + (
        "an AS with h=: RFC 8617 4.1.3 says an h= found MUST result in cv=fail."),
    ("t_future_seal", "fail", "absent"): NO_VERDICT + (
        "an AS with t= days ahead: RFC 6376 3.5 lets verifiers ignore such signatures; we do, as for "
        "DKIM (dkim_verify), so the chain fails."),
    ("x_expired_seal", "pass", "fail"): (
        "x= on an AS: RFC 8617 4.1.3 (the only supported tags are i, a, b, d, s, t, and cv) makes it "
        "an unknown tag, which MUST be ignored (RFC 6376 3.2); Rspamd expires the seal."),
    ("x_expired_seal", "pass", "absent"): NO_VERDICT + "x= is no AS tag and is ignored (as above).",
    ("ams_v_tag", "pass", "fail"): (
        "v= on an AMS: RFC 8617 4.1.2 defines none and says one seen MUST be ignored; Rspamd fails it."),
    ("spaced_tags", "pass", "fail"): (
        "'i = 1 ; a = rsa-sha256 ; ...' as sealed: RFC 6376 3.2 tag-spec allows FWS around '=' and "
        "before ';', RFC 8617 3.9 CFWS in the instance, and the b= value with its white space is what "
        "is emptied (RFC 6376 3.7); Rspamd fails such a signature, or the seal over it."),
    ("cv_uppercase", "pass", "fail"): (
        "cv=PASS / cv=None: RFC 8617 3.9 writes chain-status as ABNF strings, case-insensitive "
        "(RFC 5234 2.3; the tag name is %s\"cv\", case-sensitive); Rspamd compares the value as written."),
    ("fifty_sets", "pass", "fail"): (
        "50 sets: Rspamd refuses any i= above 10 ('i parameter missing or invalid for ARC'); RFC 8617 "
        "4.2.1 allows 1..50."),
}
# Allowances a run may leave unused: where Rspamd's answer hangs on the order of its DNS answers.
MAY_GO_UNUSED = {key for key, why in ALLOWED.items() if OLDER_SEAL in why}
# (kind, Owlery's arc=, dkimpy's verdict) -> why dkimpy 1.1.8's ARC.verify is wrong by RFC 8617.
OLDER_AMS = ("dkimpy validates the tags of every AMS; RFC 8617 5.2 step 4 validates only the newest one "
             "(older ones count for oldest-pass alone, step 5).")
DKIMPY_ALLOWED = {
    **{(kind, "pass", "fail"): OLDER_AMS
       for kind in ("missing_tag", "t_future_ams", "x_expired_ams", "ams_h_with_arc_seal", "unknown_a")},
    ("ams_v_tag", "pass", "fail"): "v= on an AMS MUST be ignored (RFC 8617 4.1.2); dkimpy wants v=1.",
    ("ams_no_c", "pass", "fail"): (
        "an AMS without c=: RFC 6376 3.5's default simple/simple (the AMS is DKIM's syntax and "
        "semantics, RFC 8617 4.1.2); dkimpy assumes relaxed/relaxed."),
    ("ams_without_from", "fail", "pass"): "the newest AMS leaves From out of h=: RFC 6376 6.1.1 PERMFAIL.",
    ("no_space_after_colon", "pass", "fail"): (
        "dkimpy finds the AMS again by the text ' i=N;' (IndexError when 'i=N;' follows the colon "
        "at once, or is written 'i = N ;'); RFC 5322 2.2 and RFC 6376 3.2 allow both."),
    ("spaced_tags", "pass", "fail"): "'i = N ;': dkimpy's ' i=N;' lookup again (see above).",
    ("instance_not_first", "fail", "pass"): (
        "dkimpy takes i= from anywhere in the field; RFC 8617 4.1.2/4.1.3 put the instance first."),
    ("sets_out_of_order", "pass", "fail"): (
        "sets not on top of each other in instance order: RFC 8617 5.1.1 orders what an AS covers by "
        "instance; dkimpy takes the fields by their place in the header."),
    ("instance_zero", "fail", "none"): "i=0: RFC 8617 4.2.1 (1..50), an ARC field present: fail, not none.",
    ("fifty_one_sets", "fail", "pass"): "51 sets: RFC 8617 5.2 step 1 (at most 50).",
    ("key_h_sha1", "fail", "pass"): "key h=sha1 for rsa-sha256: RFC 6376 6.1.2 (dkimpy never reads key h=).",
    ("key_servfail", "fail", "temperror"): (
        "SERVFAIL for a key: RFC 8617 5.2.1, all failures are permanent, DNS failures included; "
        "dkimpy raises the DNS error (arc_verify said temperror)."),
    ("x_expired_seal", "pass", "fail"): "x= is no AS tag and MUST be ignored (RFC 8617 4.1.3, RFC 6376 3.2).",
    ("cv_uppercase", "pass", "fail"): "cv= values are case-insensitive (RFC 5234 2.3).",
}


def test_owlery_and_rspamd_agree(tmp_path, keys, milter_env, dns, harness_dirs):
    from milters import dns as mdns

    cases = generate(keys)
    assert {c.kind for c in cases} == set(KINDS)
    publish(dns, cases)
    rspamd = Rspamd(harness_dirs("rspamd-arc-diff"), dns.port).start()
    try:
        theirs = [rspamd.check(c.data(), ip=CLIENT_IP, sender="alice@example.net", rcpts=["bob@example.com"])
                  for c in cases]
    finally:
        rspamd.stop()
    run = milter_env(milter_inbound_stages=["arc_verify", "authres"])
    dnsfunc = mdns.dkim_dnsfunc(dns.resolver(lifetime=2.0))
    differences, used, dkimpy_differences, dkimpy_used = [], set(), [], set()
    tally = Counter()
    for n, case in enumerate(cases):
        ours, ar = owlery_verdict(run, case)
        rs = rspamd_verdict(theirs[n])
        dk = dkimpy_verdict(case.data(), dnsfunc)
        tally[case.kind, ours, rs, dk] += 1
        if case.kind == os.environ.get("ARC_DIFF_SHOW"):
            print(f"#{n} {case.kind}: owlery {ar} rspamd {rspamd_detail(theirs[n])} dkimpy {dk}")
        if ours != dk:
            key = (case.kind, ours, dk)
            if key in DKIMPY_ALLOWED:
                dkimpy_used.add(key)
            else:
                dkimpy_differences.append(f"#{n} {case.kind}: owlery {ours} dkimpy {dk}")
        if ours == rs:
            continue
        key = (case.kind, ours, rs)
        if key in ALLOWED:
            used.add(key)
            continue
        if os.environ.get("ARC_DIFF_DUMP"):
            with open(os.path.join(os.environ["ARC_DIFF_DUMP"], f"{n}-{case.kind}.eml"), "wb") as f:
                f.write(case.data())
        differences.append(f"#{n} {case.kind}: owlery {ours} ({ar}) rspamd {rs} {rspamd_detail(theirs[n])}\n"
                           f"{case.data()[:1500]!r}")
    if os.environ.get("ARC_DIFF_TALLY"):        # by hand: (kind, owlery, rspamd, dkimpy) counts
        for key, count in sorted(tally.items()):
            print(count, *key)
    assert not differences, f"{len(differences)} unexplained differences:\n" + "\n".join(differences)
    assert not dkimpy_differences, (f"{len(dkimpy_differences)} unexplained differences from dkimpy:\n"
                                    + "\n".join(dkimpy_differences))
    if not BY_HAND:
        assert set(ALLOWED) - used - MAY_GO_UNUSED == set(), f"allowances never needed: {set(ALLOWED) - used}"
        assert set(DKIMPY_ALLOWED) - dkimpy_used == set(), f"never needed: {set(DKIMPY_ALLOWED) - dkimpy_used}"


# ---- Owlery's fixes, one message each (each failed on the stage that handed dkimpy the chain) -----
_SELECTORS = iter(range(10**6, 10**7))


def built(keys, build):
    """A Case from build(gen): gen is a Generator with its own selectors and a fixed rng."""
    gen = Generator(keys)
    gen.rng, gen.n, gen.records = random.Random(7), next(_SELECTORS), {}
    gen.msg = base_message(gen.rng)
    build(gen)
    return Case("fix", gen.msg, gen.records)


def on_top_by_instance_reversed(gen):
    """Put the ARC sets in the header oldest first (set 1 on top), the other fields below."""
    arc = [f for f in gen.msg.fields if field_name(f) in NAMES]
    rest = [f for f in gen.msg.fields if field_name(f) not in NAMES]
    gen.msg.fields = sorted(arc, key=instance_of) + rest


def servfail_for(instance):
    def build(gen):
        gen.chain(2)
        for name in [r for r in gen.records if r.startswith(f"c{gen.n}h{instance}x")]:
            gen.records[name] = "SERVFAIL"
    return build


def fifty_one(gen):
    gen.msg.body = b"short\r\n"
    for i in range(1, 52):
        add_set(gen.msg, gen.hop(i, key="k1024"))


I_LAST = ("a", "c", "d", "s", "t", "cv", "h", "bh", "b", "i")
FIXES = [
    # RFC 8617 5.1.1: an AS covers the sets by instance, not by their place in the header
    ("sets-oldest-on-top", lambda g: (g.chain(3), on_top_by_instance_reversed(g)), "pass"),
    # RFC 8617 4.1.2 + RFC 6376 3.5: an AMS without c= is simple/simple
    ("ams-without-c", lambda g: g.chain(2, h2=dict(ams_c="simple/simple", ams_drop=("c",))), "pass"),
    # RFC 8617 4.1.2: an AMS v= MUST be ignored
    ("ams-v2-ignored", lambda g: g.chain(1, h1=dict(ams_extra=(("v", "2"),))), "pass"),
    # RFC 6376 6.1.1: From not signed
    ("ams-without-from", lambda g: g.chain(1, h1=dict(h=("to", "subject", "date"))), "fail"),
    # RFC 8617 4.2.1: i= is 1..50; an ARC field with i=0 is a broken chain, not no chain
    ("instance-zero", lambda g: add_set(g.msg, g.hop(0, cv="none")), "fail"),
    # RFC 8617 5.2 step 3.1: an AAR or AMS alone is an incomplete set
    ("lone-aar", lambda g: g.stray(AAR), "fail"),
    ("lone-ams", lambda g: g.stray(AMS), "fail"),
    # RFC 8617 5.2 step 1: at most 50 sets
    ("fifty-one-sets", fifty_one, "fail"),
    # RFC 8617 4.1.3: x= is no AS tag, ignored
    ("seal-x-expired-ignored", lambda g: g.chain(2, h1=dict(seal=dict(t=str(NOW - 86400 * 3)),
                                                            seal_extra=(("x", str(NOW - 86400 * 2)),))), "pass"),
    # RFC 6376 6.1.2: key h= without sha256
    ("key-h-sha1", lambda g: g.chain(1, h1=dict(record=key_record(g.keys["k2048"], h="sha1"))), "fail"),
    # RFC 8617 5.2.1: all failures are permanent, DNS failures included
    ("key-servfail-newest", servfail_for(2), "fail"),
    ("key-servfail-older", servfail_for(1), "fail"),
    # RFC 8617 4.1.2/4.1.3: arc-ams-info / arc-as-info start with the instance
    ("ams-i-not-first", lambda g: g.chain(1, h1=dict(ams_order=I_LAST)), "fail"),
    ("seal-i-not-first", lambda g: g.chain(2, h2=dict(seal_order=I_LAST)), "fail"),
    # RFC 5234 2.3: chain-status strings are case-insensitive
    ("cv-uppercase", lambda g: g.chain(2, h2=dict(cv="PASS")), "pass"),
    # RFC 6376 3.2 / 3.4.2: white space dkimpy's ' i=N;' lookup missed
    ("no-space-after-colon", lambda g: g.arc_fields_rewritten(lambda v: v.lstrip()), "pass"),
    ("spaced-tags", lambda g: g.chain(1, h1=dict(spaced=True)), "pass"),
    # RFC 8617 5.2 step 4: only the newest AMS decides (an older one without bh= is no failure)
    ("older-ams-without-bh", lambda g: g.chain(2, h1=dict(ams_drop=("bh",))), "pass"),
]


@pytest.fixture
def verify(dns, milter_env):
    run = milter_env(milter_inbound_stages=["arc_verify", "authres"])

    def go(case):
        publish(dns, [case])
        return owlery_verdict(run, case)
    return go


@pytest.mark.parametrize("build,expected", [f[1:] for f in FIXES], ids=[f[0] for f in FIXES])
def test_rfc8617_verdict(keys, verify, build, expected):
    verdict, ar = verify(built(keys, build))
    assert verdict == expected, ar


@pytest.mark.parametrize("changed_after,oldest", [(None, 0), (1, 2), (2, 3)])
def test_oldest_pass_is_reported(keys, verify, changed_after, oldest):
    """RFC 8617 5.2 step 5 and 6: header.oldest-pass, the oldest AMS that still validates (0: all)."""
    def build(gen):
        for i in range(1, 4):
            add_set(gen.msg, gen.hop(i))
            if i == changed_after:
                gen.msg.body += b"-- \r\nlist footer\r\n"
    verdict, ar = verify(built(keys, build))
    assert verdict == "pass" and f"header.oldest-pass={oldest}" in ar, ar


# ---- hostile chains: the work is bounded (counted, not timed) ------------------------------------
def junk_sets(count, first=1):
    """`count` ARC sets that look complete (tags, no real signatures), newest on top."""
    out = []
    for i in range(first + count - 1, first - 1, -1):
        out += [b"ARC-Seal: i=%d; a=rsa-sha256; cv=%s; d=example.org; s=junk%d; b=AAAA" % (i, b"pass" if i > 1 else b"none", i),
                b"ARC-Message-Signature: i=%d; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=junk%d; "
                b"h=from:from:from; bh=AAAA; b=AAAA" % (i, i),
                b"ARC-Authentication-Results: i=%d; mx.example.org; spf=pass" % i]
    return out


@pytest.mark.parametrize("fields", [
    junk_sets(330),                                                          # 990 ARC fields, i up to 330
    [b"ARC-Authentication-Results: i=%d; mx.example.org; none" % (i % 50 + 1) for i in range(990)],
    junk_sets(40) + junk_sets(40),                                           # every instance twice
    junk_sets(50, first=2),                                                  # 2..51: no set 1
], ids=["330-sets", "990-aar", "80-sets-doubled", "no-set-1"])
def test_hostile_chain_fails_before_any_key_lookup(verify, dns, fields):
    """A chain RFC 8617 5.2 steps 1-3 refuse costs no DNS query (dkimpy asked for 2 keys per
    set, 660 lookups for the first message, or answered none for the second)."""
    msg = base_message(random.Random(3))
    msg.fields[0:0] = fields
    before = len(dns.queries)
    verdict, ar = verify(Case("hostile", msg))
    assert verdict == "fail", ar
    assert len(dns.queries) == before, dns.queries[before:before + 5]


def test_huge_h_list_selects_no_more_than_the_message_has(keys, verify, monkeypatch):
    """An AMS naming 20,000 fields: dkimpy walks the header once per name it cannot find (20,000
    x the header's length); the names past the message's own fields select nothing and add
    nothing to the hash (RFC 6376 5.4.2), so they are cut first and the chain still passes."""
    import dkim
    sizes = []
    select = dkim.select_headers

    def counting(headers, include_headers):
        sizes.append(len(include_headers))
        return select(headers, include_headers)
    monkeypatch.setattr(dkim, "select_headers", counting)
    names = DEFAULT_H + ("x-absent", "received", "from") * 6666
    case = built(keys, lambda g: g.chain(1, h1=dict(h=names)))
    verdict, ar = verify(case)
    assert verdict == "pass", ar
    assert sizes and max(sizes) <= len(case.msg.fields) + 1, sizes    # +1: dkimpy's extra "from"


def test_each_canonical_body_is_made_once_for_fifty_sets(keys, verify, monkeypatch):
    """A 50-set chain validates one AMS (step 4) and, for oldest-pass, 49 more (step 5): the body
    is canonicalised once per canonicalisation (dkimpy did it once per AMS, 50 times for a body
    of up to milter_message_size_limit)."""
    import dkim.canonicalization
    calls = []
    original = dkim.canonicalization.CanonicalizationPolicy.canonicalize_body

    def counting(self, body):
        calls.append(len(body))
        return original(self, body)
    monkeypatch.setattr(dkim.canonicalization.CanonicalizationPolicy, "canonicalize_body", counting)

    def fifty(gen):
        for i in range(1, 51):
            add_set(gen.msg, gen.hop(i, key="k1024"))
    verdict, ar = verify(built(keys, fifty))
    assert verdict == "pass" and "header.oldest-pass=0" in ar, ar
    assert len(calls) == 1, calls
