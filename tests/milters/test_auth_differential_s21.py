"""Authentication differential round s21: message shapes the earlier differentials do not make.

Owlery's dkim_verify, dmarc and arc_verify stages against OpenDKIM, OpenDMARC and Rspamd, with the
harnesses of test_dkim_differential.py, test_dmarc_differential.py and test_arc_differential.py
(imported, not copied: their signers, peers, verdict readers and DNS stub records). New here:

- DKIM: a signer that writes the DKIM-Signature text as given (tag names and values in any case,
  blanks around '=', duplicate tags, q= lists), header folding and blank extremes under both
  canonicalisations, three signatures of one d= (rsa-sha256, ed25519-sha256, rsa-sha1) with one
  broken, x=/t= edges (x=t, x just past, 40-bit x=, t=0), l= edges (l=0 then appended content,
  leading zeros, 77 digits), h= edges (blanks around ':', over-signed absent fields, an empty
  name), bare LF in part of the message, lines of 5,000 octets, Latin-1 header bytes, key
  records with s=, k= and v= edges;
- DMARC: duplicate tags, odd pct=, rua= syntax errors, blanks before v=, records split over TXT
  strings, a subdomain with two records, groups and quoted commas in From, PSL wildcard,
  exception and private-section domains, IDN From domains;
- ARC: cv=fail in the middle of a chain with every later set saying fail, 11, 12 and 60 sets, an
  AMS with l= and content appended, a= rsa-sha1 on an AMS or AS, instances written i=0N.

Each kind has numbered variants. CI's sample (ci_sample, ~35 messages, a peer answers one in ~0.14 s)
is every variant an Owlery fix or a CI allowance is about, and variant 0 of a few agreeing kinds;
by hand, variants are drawn from the seed. Disagreements the RFCs (6376, 7489, 8617, 8601, 8616, 9091)
decide against a peer, or leave open, are in the *_ALLOWED lists with the reason; any other fails
the test, and so does a CI allowance the sample no longer meets. Below: the recorded messages of
this round's fixes (dkim_verify: q= lists, x= not after t=, key s= lists).

By hand, N messages per peer from seed SEED (allowances may then go unused):
    PYTHONPATH=. .venv/bin/python -m tests.milters.test_auth_differential_s21 N SEED
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from . import test_dkim_differential as dkd
from . import test_arc_differential as arcd
from . import test_dmarc_differential as dmd
from .test_dkim_differential import DOMAIN, NOW, Case, Generator, canon_body, canon_header, select_fields

# The peers' and keys' fixtures of the earlier differentials, registered here under these names
dkim_keys = dkd.keys
opendkim_base = dkd.opendkim_verifier
opendmarc_base = dmd.opendmarc
port53_dns = dmd.port53_dns  # opendmarc's own fixture asks for it by this name

SEED = int(os.environ.get("S21_SEED", "21"))
COUNT = int(os.environ.get("S21_COUNT", "0"))  # messages per peer by hand; 0: CI's sample (ci_sample)
BY_HAND = "S21_COUNT" in os.environ
BATCH = 300  # messages per miltertest run (each run may last 120 s; a peer takes ~0.14 s a message)


# ---- the peers, ended by SIGKILL: libmilter takes seconds to exit on SIGTERM ----------------------
@pytest.fixture(scope="module")
def opendkim_peer(opendkim_base):
    """test_dkim_differential's OpenDKIM (verify mode), killed when the module is done: it keeps
    nothing worth a clean stop, and its harness stop waits ~4 s for libmilter."""
    yield opendkim_base
    opendkim_base["proc"].kill_group()


@pytest.fixture(scope="module")
def opendmarc_peer(opendmarc_base):
    """test_dmarc_differential's OpenDMARC, killed when the module is done (as above)."""
    yield opendmarc_base
    opendmarc_base["proc"].kill_group()


# ---- a signer that writes the signature text as given ----------------------------------------
def sign_text(msg, key, tag_text, *, h, hc="relaxed", bc="relaxed", alg="sha256", length=None):
    """A DKIM-Signature field whose value is `tag_text` with "{BH}" and "{B}" filled in: the body
    hash of `bc` (cut to `length`) and the signature over the fields `h` selects, canonicalised
    with `hc` (RFC 6376 3.4, 3.7). Nothing of the text is parsed, so its tags may be anything."""
    digest = getattr(hashlib, alg)
    body = canon_body(msg.body, bc)
    if length is not None:
        body = body[:length]
    text = tag_text.replace("{BH}", base64.b64encode(digest(body).digest()).decode())
    unsigned = ("DKIM-Signature: " + text.replace("{B}", "")).encode()
    data = b"".join(canon_header(f, hc) for f in select_fields(msg.fields, [n.lower() for n in h]))
    data += canon_header(unsigned, hc)[:-2]
    if key.kind == "ed25519":
        signature = key.private.sign(digest(data).digest())
    else:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = key.private.sign(data, padding.PKCS1v15(), hashes.SHA1() if alg == "sha1" else hashes.SHA256())
    return ("DKIM-Signature: " + text.replace("{B}", base64.b64encode(signature).decode())).encode()


H4 = ("from", "to", "subject", "date")


class DkimShapes(Generator):
    """test_dkim_differential's generator with this round's shapes. Each k_ method takes `how`,
    the variant (DKIM_VARIANTS[kind] of them): drawn from the seed by hand, chosen in CI."""

    def make(self, rng, n, kind, **forced):
        self.variant = None
        case = super().make(rng, n, kind, **forced)
        case.variant = self.variant
        return case

    def pick(self, kind, how):
        self.variant = self.rng.randrange(DKIM_VARIANTS[kind]) if how is None else how
        return self.variant

    def tagged(self, template, *, key="k2048", h=H4, **kw):
        """Sign with `template` (str.format fields: d, s, t, h, a; {BH} and {B} filled by
        sign_text) and put the field on top."""
        selector = self.publish(key)
        a = "ed25519-sha256" if key == "ked" else "rsa-sha256"
        text = template.format(d=DOMAIN, s=selector, S=selector.upper(), t=NOW, h=":".join(h), a=a,
                               BH="{BH}", B="{B}")
        self.msg.fields.insert(0, sign_text(self.msg, self.keys[key], text, h=h, **kw))

    # header folding and blanks under both canonicalisations (RFC 6376 3.4.1, 3.4.2)
    def k_fold_extremes(self, how=None, c=None, transit=None):
        if c is not None:
            self.c = c
        i = self.subject_index()
        value = self.msg.fields[i][9:].strip() or b"x"
        shapes = (
            b"Subject:\r\n\t" + value,  # the value starts on a continuation line
            b"Subject: " + value.replace(b" ", b" \t \t ") + b" \t",
            b"Subject: " + value.replace(b" ", b"   \r\n\t  ", 1) + b"\r\n \t",  # a last fold of blanks only
            b"Subject:",  # empty value
            b"Subject: \t ",  # blanks only
            b"Subject:" + value,  # no blank after the colon
            b"Subject:\t\t" + value + b"\t",
        )
        self.msg.fields[i] = shapes[self.pick("fold_extremes", how)]
        self.sign_top(h=H4)
        if self.rng.random() < 0.5 if transit is None else transit:  # re-whitespaced: relaxed passes, simple fails
            self.msg.fields[self.subject_index()] = b"Subject: " + b" ".join(shapes[self.variant][8:].split())

    # three signatures of one d= with three algorithms, one of them broken
    def k_three_algorithms(self, how=None):
        broken = self.pick("three_algorithms", how)
        sigs = []
        for j, (key, a) in enumerate((("k2048", "rsa-sha256"), ("ked", "ed25519-sha256"), ("k1024", "rsa-sha1"))):
            msg = self.msg
            if j == broken:
                msg = self.msg.copy()
                msg.body += b"another body\r\n"
            sigs.append(self.signed(key=key, j=j, msg=msg, a=a))
        self.rng.shuffle(sigs)
        self.msg.fields[0:0] = sigs

    # tag names and values in other cases (RFC 6376 3.2)
    def k_case_of_tags(self, how=None):
        rest = "s={s}; t={t}; h={h}; bh={BH}; b={B}"
        self.tagged((
            "v=1; a={a}; c=relaxed/relaxed; D={d}; d={d}; " + rest,
            "v=1; a=RSA-SHA256; c=relaxed/relaxed; d={d}; " + rest,
            "v=1; a={a}; c=Relaxed/Relaxed; d={d}; " + rest,
            "v=1; a={a}; c=relaxed/relaxed; d={d}; s={s}; t={t}; h=FROM:To:SUBJECT:date; bh={BH}; b={B}",
            "v=1; a={a}; c=relaxed/relaxed; d={d}; s={S}; t={t}; h={h}; bh={BH}; b={B}",
            "v=1; a={a}; c=relaxed/relaxed; q=DNS/TXT; d={d}; " + rest,
            "V=1; a={a}; c=relaxed/relaxed; d={d}; " + rest,  # OpenDKIM never answers: by hand only
        )[self.pick("case_of_tags", how)])

    def k_q_list(self, how=None):
        q = ("dns/txt:http/well-known", "dns", "foo/bar", "dns/txt:dns/txt", "x-other:dns/txt")[self.pick("q_list", how)]
        self.tagged("v=1; a={a}; c=relaxed/relaxed; q=" + q + "; d={d}; s={s}; t={t}; h={h}; bh={BH}; b={B}")

    def k_duplicate_tag(self, how=None):
        self.tagged((
            "v=1; a={a}; c=relaxed/relaxed; d={d}; d={d}; s={s}; h={h}; bh={BH}; b={B}",
            "v=1; a={a}; c=relaxed/relaxed; d={d}; s={s}; s={s}; h={h}; bh={BH}; b={B}",
            "v=1; a={a}; c=relaxed/relaxed; d={d}; s={s}; t={t}; t={t}; h={h}; bh={BH}; b={B}",
            "v=1; a={a}; c=relaxed/relaxed; d={d}; s={s}; zz=1; zz=2; h={h}; bh={BH}; b={B}",
        )[self.pick("duplicate_tag", how)])

    def k_blanks_around_equals(self, how=None):
        sep = (" = ", "\t=\t", " =\r\n\t", "=\r\n ")[self.pick("blanks_around_equals", how)]
        tags = (("v", "1"), ("a", "{a}"), ("c", "relaxed/relaxed"), ("d", "{d}"), ("s", "{s}"), ("t", "{t}"),
                ("h", "{h}"), ("bh", "{BH}"))
        self.tagged(";\r\n ".join(f"{k}{sep}{v}" for k, v in tags) + f"; b{sep}{{B}}")

    # timestamps (RFC 6376 3.5 t=, x=)
    def k_x_t_edges(self, how=None):
        t, x = ((NOW - 100, NOW - 100), (NOW - 3600, None), (NOW - 60, NOW - 3600), (NOW, 2**40), (0, NOW + 3600),
                (None, NOW - 7200), (NOW - 86400 * 365 * 30, NOW + 86400), (NOW, NOW))[self.pick("x_t_edges", how)]
        tags = "v=1; a={a}; c=relaxed/relaxed; d={d}; s={s}; " + (f"t={t}; " if t is not None else "")
        self.tagged(tags + (f"x={x}; " if x is not None else "") + "h={h}; bh={BH}; b={B}")

    # body length limits (RFC 6376 3.5 l=, 8.2), then content appended
    def k_l_edges(self, how=None):
        body_len = len(canon_body(self.msg.body, "relaxed"))
        form = ("0", f"{body_len:05d}", "9" * 77, "", f"{body_len}", "-1")[self.pick("l_edges", how)]
        length = int(form) if form.isdigit() and len(form) <= 76 else None
        self.tagged("v=1; a={a}; c=relaxed/relaxed; d={d}; s={s}; t={t}; l=" + form + "; h={h}; bh={BH}; b={B}",
                    length=length)
        if self.rng.random() < 0.7:
            self.msg.body += self.rng.choice((b"appended\r\n", b"--\r\n<a href=x>click</a>\r\n", b"\r\n\r\nX\r\n"))

    # h= edges (RFC 6376 3.5 h=, 5.4, 5.4.2)
    def k_h_edges(self, how=None):
        h = ("from : to : subject", "from:to:subject:reply-to:reply-to:cc", "from:from:from:to", "from::to", "from:to:",
             ":from:to", "from:to:subject:dkim-signature", "from\r\n\t:to:subject")[self.pick("h_edges", how)]
        names = tuple(n.strip() for n in h.replace("\r\n", "").split(":") if n.strip())
        self.tagged("v=1; a={a}; c=relaxed/relaxed; d={d}; s={s}; t={t}; h=" + h + "; bh={BH}; b={B}", h=names)

    # line ends (RFC 6376 5.3: the verifier works on CRLF) and long lines
    def k_line_ends(self, how=None):
        self.sign_top()
        head, _, body = self.msg.raw().partition(b"\r\n\r\n")
        how = self.pick("line_ends", how)
        if how == 0:  # the body alone in bare LF
            return Case("", self.msg, raw=head + b"\r\n\r\n" + body.replace(b"\r\n", b"\n"))
        if how == 1:  # two header lines in bare LF
            return Case("", self.msg, raw=head.replace(b"\r\n", b"\n", 2) + b"\r\n\r\n" + body)
        return Case("", self.msg, raw=head + b"\r\n\r\n" + body.replace(b"\r\n", b"\n", 1))

    def k_long_lines(self, how=None):
        word = (b"x", b"ab ", b"\t", b"a  ")[self.pick("long_lines", how)]
        self.msg.body = word * (5000 // len(word)) + b"\r\n" + self.msg.body + b"y" * 3000 + b"\r\n"
        self.msg.fields[self.subject_index()] = b"Subject: " + b"long " * 150
        self.sign_top()

    def k_latin1_headers(self, how=None):
        self.pick("latin1_headers", how)
        self.msg.fields[self.subject_index()] = b"Subject: Gr\xfc\xdfe aus K\xf6ln \xbd"
        self.msg.fields[0] = b"From: J\xfcrgen <alice@example.net>"
        self.sign_top()

    # key records (RFC 6376 3.6.1)
    def k_key_edges(self, how=None):
        p = self.keys["k2048"].public_b64
        record = (
            f"v=DKIM1; k=RSA; p={p}",
            f"v=DKIM1; k=rsa; s=email; p={p}",
            f"v=DKIM1; k=rsa; s=*; p={p}",
            f"v=DKIM1; k=rsa; s=other; p={p}",
            f"v=DKIM1; k=rsa; s=email:other; p={p}",
            f"k=rsa; v=DKIM1; p={p}",
            f"v=DKIM1; k=rsa; p={p[:100]} {p[100:200]}\t{p[200:]}",
            f"v=DKIM1; k=rsa; h=SHA256; p={p}",
            f"v=DKIM1; k=rsa; n=a note; g=*; zz=unknown; p={p}",
            f"v=DKIM1; k=rsa; p={p}; p={p}",
            f"v=DKIM1; k=rsa; t=y:s; p={p}",
            f"p={p}",
            f"v=DKIM1; k=rsa; s = other : email ; p={p}",
        )[self.pick("key_edges", how)]
        self.sign_top(key="k2048")
        self.records[f"t{self.n}x0._domainkey.{DOMAIN}"] = record


DKIM_VARIANTS = {
    "fold_extremes": 7, "three_algorithms": 3, "case_of_tags": 7, "q_list": 5, "duplicate_tag": 4,
    "blanks_around_equals": 4, "x_t_edges": 8, "l_edges": 6, "h_edges": 8, "line_ends": 3, "long_lines": 4,
    "latin1_headers": 1, "key_edges": 13,
}
assert set(DKIM_VARIANTS) == {k[2:] for k in vars(DkimShapes) if k.startswith("k_")}
# The variants of the fixes of this round (each also has its recorded test below)
DKIM_FIXED = {("q_list", 0), ("key_edges", 4), ("x_t_edges", 7)}
# What CI's sample forces: the simple header canonicalisation an allowance is about, untouched in transit
DKIM_CI_FORCED = {"fold_extremes": dict(c="simple/simple", transit=False)}


def ci_sample(variants, allowed, fixed=(), agreeing=()):
    """CI's sample (a peer answers a message in ~0.14 s): every (kind, variant) a fix or an allowance
    not marked by_hand is about, and variant 0 of the `agreeing` kinds; the rest runs by hand."""
    shapes = {tuple(a.shape.split("/")) for a in allowed if not a.by_hand}
    wanted = {(k, int(v)) for k, v in shapes} | set(fixed) | {(k, 0) for k in agreeing}
    assert {k for k, _ in wanted} <= set(variants)
    return sorted(wanted)


def dkim_cases(keys, count=COUNT, seed=SEED):
    """By hand: `count` cases drawn from `seed`. CI: ci_sample's."""
    gen = DkimShapes(keys)
    rng = random.Random(seed)
    kinds = sorted(DKIM_VARIANTS)
    if count:
        return [gen.make(rng, n, kinds[n % len(kinds)]) for n in range(count)]
    wanted = ci_sample(DKIM_VARIANTS, DKIM_ALLOWED, DKIM_FIXED, agreeing=("line_ends",))
    return [gen.make(rng, n, kind, how=v, **DKIM_CI_FORCED.get(kind, {})) for n, (kind, v) in enumerate(wanted)]


# ---- what differs on purpose --------------------------------------------------------------------
@dataclass(frozen=True)
class Allowed:
    """A disagreement explained: `shape` is "kind/variant"; None for a verdict means any;
    `when(case, ours, theirs)` narrows the entry further; by_hand: CI's sample never meets it."""

    shape: str
    owlery: tuple | str | None
    peer: tuple | str | None
    reason: str
    when: Callable | None = None
    by_hand: bool = False


def allowance(allowed, shape, ours, theirs, detail):
    """The entry of `allowed` that explains Owlery's `ours` against the peer's `theirs` for a case of
    `shape`; `detail` is what an entry's `when` is given."""
    for a in allowed:
        if a.shape == shape and a.owlery in (None, ours) and a.peer in (None, theirs) \
                and (a.when is None or a.when(*detail)):
            return a
    return None


def _simple_header(case, ours, theirs):
    """The signature hashes the header with simple canonicalisation."""
    return all(t.get("c", "simple").lower().startswith("simple") for t in dkd.signature_tags(case).values())


def _only_rsa_sha1(case, ours, theirs):
    """Each signature judged apart is a=rsa-sha1, and Owlery says policy to it."""
    found = dkd.disputed(case, ours, theirs)
    return bool(found) and all(t.get("a", "").lower() == "rsa-sha1" and o == "policy" for t, o, _ in found)


EMPTY_BH = base64.b64encode(hashlib.sha256(b"").digest()).decode()


def _empty_signed_body(case, ours, theirs):
    """Every signature's bh= is the hash of no octets: the signed body canonicalises to nothing."""
    return all(t.get("bh") == EMPTY_BH for t in dkd.signature_tags(case).values())


NO_ANSWER = "OpenDKIM 2.11 never answers the end of message (as for a missing tag, test_dkim_differential)"
DKIM_ALLOWED = [
    *(Allowed(f"blanks_around_equals/{v}", ("pass",), ("fail",),
              "blanks before '=' in the signature's tags: RFC 6376 3.2 tag-spec = [FWS] tag-name [FWS] \"=\" "
              "[FWS] tag-value [FWS]; OpenDKIM fails such a signature (the signer's text is what is hashed).",
              by_hand=v != 0) for v in (0, 1, 2)),
    Allowed("case_of_tags/1", ("permerror",), ("pass",),
            "a=RSA-SHA256: RFC 6376 3.2, values are case-sensitive unless the tag says otherwise, and a= does "
            "not: an unknown algorithm, PERMFAIL (6.1.1). OpenDKIM compares without case (RFC 5234 2.3 would "
            "allow that for ABNF strings: the RFC is not one-sided, we keep dkimpy's exact reading)."),
    Allowed("case_of_tags/2", ("permerror",), ("pass",),
            "c=Relaxed/Relaxed: as a= above (RFC 6376 3.2 case-sensitive values; c= names no exception).",
            by_hand=True),
    Allowed("case_of_tags/6", ("permerror",), ("no-answer",),
            "V=1: tag names are case-sensitive (RFC 6376 3.2), so v= is missing: PERMFAIL (6.1.1); " + NO_ANSWER,
            by_hand=True),
    *(Allowed(f"duplicate_tag/{v}", ("permerror",), ("pass",),
              "a tag twice in the DKIM-Signature: RFC 6376 3.2, the entire tag-list is invalid (PERMFAIL, "
              "RFC 8601 2.7.1 permerror); OpenDKIM takes one of them.", by_hand=v != 0) for v in range(4)),
    *(Allowed(f"fold_extremes/{v}", ("pass",), ("fail",),
              "simple header canonicalisation (RFC 6376 3.4.1: no change) of a field with no blank, a fold or a "
              "tab right after the colon, or no value at all: OpenDKIM does not ask for SMFIP_HDR_LEADSPC, so the "
              "milter protocol hands it the value without its leading white space and it puts back one space; "
              "Owlery asks for it (milters/adapter.py) and hashes the field as sent.", _simple_header, v != 0)
      for v in (0, 3, 5, 6)),
    Allowed("key_edges/0", ("permerror",), ("pass",),
            "key k=RSA: RFC 6376 3.2 case-sensitive values (3.6.1 k= names no exception): an unknown key type, "
            "PERMFAIL (6.1.2 inappropriate key algorithm); OpenDKIM compares without case."),
    Allowed("key_edges/3", ("permerror",), ("fail",),
            "key s=other: RFC 6376 3.6.1, a key for no service type we know is not for email: PERMFAIL (6.1.2), "
            "permerror (RFC 8601 2.7.1: never verified); OpenDKIM writes fail (as for key_unknown_k)."),
    Allowed("key_edges/9", ("permerror",), ("pass",),
            "p= twice in the key record: RFC 6376 3.2, a tag-list with a repeated tag is invalid, so no usable key "
            "(PERMFAIL, 6.1.2); OpenDKIM takes one."),
    Allowed("l_edges/3", ("permerror",), ("fail",),
            "l= empty: RFC 6376 3.5 sig-l-tag = 1*76DIGIT, a syntax error: PERMFAIL, permerror; OpenDKIM fail."),
    Allowed("l_edges/3", ("permerror",), ("pass",),
            "l= empty over a body that canonicalises to nothing: RFC 6376 3.5 sig-l-tag = 1*76DIGIT, a syntax "
            "error: PERMFAIL (6.1.1), permerror; OpenDKIM reads the empty value as l=0, so the empty body hash "
            "matches and it says pass (found by hand, seeds 2311 and 2312).", _empty_signed_body, by_hand=True),
    Allowed("x_t_edges/4", ("pass",), ("permerror",),
            "t=0 with x= ahead: RFC 6376 3.5 puts no lower bound on t= (x= > t= holds); OpenDKIM refuses it."),
    Allowed("x_t_edges/5", ("pass",), ("permerror",),
            "x= two hours past: RFC 6376 3.5 and 6.1.1 say a verifier MAY ignore an expired signature; dkimpy "
            "allows 10 hours for the signer's clock, OpenDKIM none. Left open by the RFC."),
    *(Allowed(f"three_algorithms/{v}", None, None,
              "rsa-sha1 (RFC 8301 3.1: MUST NOT be considered valid): policy whatever the hashes say; OpenDKIM "
              "verifies it (pass or fail).", _only_rsa_sha1, v != 0) for v in range(3)),
]


def test_dkim_shapes_agree_with_opendkim(tmp_path, dkim_keys, dns, milter_env, opendkim_peer):
    cases = dkim_cases(dkim_keys)
    dkd.publish_records(dns, cases)
    found, silent = {}, set()
    for at in range(0, len(cases), BATCH):  # one miltertest run may last 120 s
        part_found, part_silent, _ = dkd.opendkim_results(tmp_path, opendkim_peer, cases[at:at + BATCH])
        found.update({at + n: v for n, v in part_found.items()})
        silent.update(at + n for n in part_silent)
    run = milter_env(milter_inbound_stages=["dkim_verify", "authres"])
    differences, used, tally = [], set(), Counter()
    for n, case in enumerate(cases):
        ours = dkd.owlery_verdicts(run, case)
        theirs = (("", "no-answer"),) if n in silent else dkd.verdicts(found[n])
        mine, peer = tuple(r for _, r in ours), tuple(r for _, r in theirs)
        tally[case.kind, str(case.variant), mine, peer] += 1
        if ours == theirs:
            continue
        a = allowance(DKIM_ALLOWED, f"{case.kind}/{case.variant}", mine, peer, (case, ours, theirs))
        if a is not None:
            used.add(a)
            continue
        differences.append(f"#{n} {case.kind}/{case.variant}: owlery {ours} opendkim {theirs}\n{case.data()[:700]!r}")
    report("dkim", tally)
    assert not differences, f"{len(differences)} unexplained differences:\n" + "\n".join(differences)
    if not BY_HAND:
        unused = [a.shape for a in DKIM_ALLOWED if a not in used and not a.by_hand]
        assert not unused, f"allowances never needed: {unused}"


def report(peer, tally):
    """By hand: one line per (kind, variant, Owlery's verdict, the peer's) with its count."""
    if BY_HAND:
        for key, number in sorted(tally.items()):
            print(peer, number, *key)


# ---- DMARC shapes ---------------------------------------------------------------------------------
P_REJECT = "v=DMARC1; p=reject"


def _org(n):
    return f"d21c{n}.com"


def _case(name, n, records, *, spf=False, dkim=(), froms=("<a@{o}>",), sub=None):
    """A dmarc differential Case for the organizational domain o of case n: `records` {name
    template: TXT}, SPF pass or fail for o (the MAIL FROM domain), DKIM signatures (d=, good)."""
    o = _org(n)
    recs = {k.format(o=o): v for k, v in records.items()}
    recs.setdefault(o, dmd.SPF_PASS if spf else dmd.SPF_FAIL)
    recs.setdefault("other" + o, dmd.SPF_FAIL)  # the zone is known: NXDOMAIN below it
    if sub:
        recs.setdefault(f"{sub}.{o}", "192.0.2.1")
    return dmd.Case(name, [f.format(o=o, O=o.upper()).encode() for f in froms], f"b@{o}",
                    [(d.format(o=o), good) for d, good in dkim], recs)


def _records(name, texts, **kw):
    """A kind whose variants are the `texts` of the From domain's DMARC record."""
    return name, len(texts), lambda n, v: _case(name, n, {"_dmarc.{o}": texts[v]}, **kw)


FROM_FORMS = ("Friends: <a@{o}>;", "Friends: a@{o}, m@evil.example;", "undisclosed-recipients:;",
              '"Doe, John" <a@{o}>', "<a@{O}>", "<a@{o}.>", "a@{o} (Alice)", "<@relay.example:a@{o}>",
              "=?utf-8?q?J=C3=BCrgen?= <a@{o}>", '"a@evil.example" <a@{o}>', "a@{o}, a@{o}")

SUB_RECORDS = (("RRSET", "v=DMARC1; p=none", "v=DMARC1; p=quarantine"), "v=spf1 -all", ("RRSET", "v=DMARC1; p=none", "x"))

# (From domain, MAIL FROM domain, DKIM d=, where the record is): PSL wildcard, exception and
# private-section rules, and a public suffix as the From domain
PSL_SHAPES = (
    ("mail.x{n}.ck", "x{n}.ck", None, "_dmarc.x{n}.ck"),  # *.ck: x.ck is a suffix, org = mail.x.ck
    ("www.ck", "www.ck", None, "_dmarc.www.ck"),  # !www.ck: www.ck is an organizational domain
    ("a.www.ck", "www.ck", None, "_dmarc.www.ck"),
    ("foo{n}.github.io", "github.io", None, "_dmarc.foo{n}.github.io"),  # a private-section rule
    ("a.foo{n}.github.io", "foo{n}.github.io", None, "_dmarc.foo{n}.github.io"),
    ("b.city.kawasaki.jp", "city.kawasaki.jp", None, "_dmarc.city.kawasaki.jp"),
    ("a.x{n}.kawasaki.jp", "b.x{n}.kawasaki.jp", None, "_dmarc.a.x{n}.kawasaki.jp"),
    ("co.uk", "co.uk", None, "_dmarc.co.uk"),
    ("sub.x{n}.co.uk", "x{n}.co.uk", "other.x{n}.co.uk", "_dmarc.x{n}.co.uk"),
)


def _psl(n, v):
    frm, mail_from, d, rec = (x.format(n=n) if x else x for x in PSL_SHAPES[v])
    records = {rec: "v=DMARC1; p=reject; sp=reject", mail_from: dmd.SPF_PASS}
    records.setdefault(frm, "192.0.2.1")
    return dmd.Case("psl_edges", [f"<a@{frm}>".encode()], f"b@{mail_from}", [(d, True)] if d else [], records)


def _idn(n, v):
    """An internationalised From domain (RFC 8616): U-label or A-label From, A-label identifiers."""
    ulabel = f"bücher{n}.example"
    alabel = ulabel.encode("idna").decode()
    froms, spf, dkim = (
        (f"<a@{ulabel}>", True, []),  # U-label From, A-label SPF pass
        (f"<a@{ulabel}>", False, [(alabel, True)]),  # A-label d= pass
        (f"<a@{alabel}>", False, []),
        (f"<a@{ulabel}>", False, []),  # fails: the A-label's p=reject applies
        (f"<a@{alabel.upper()}>", True, []),
    )[v]
    records = {"_dmarc." + alabel: P_REJECT, alabel: dmd.SPF_PASS if spf else dmd.SPF_FAIL}
    return dmd.Case("idn", [froms.encode()], f"b@{alabel}", dkim, records)


# (kind, number of variants, build(n, variant) -> dmd.Case)
DMARC_KINDS = [
    _records("duplicate_tags", ("v=DMARC1; p=reject; p=none", "v=DMARC1; p=none; p=reject",
                                "v=DMARC1; p=reject; adkim=s; adkim=r", "v=DMARC1; v=DMARC1; p=reject"),
             dkim=[("mail.{o}", True)]),
    _records("pct_odd", tuple(f"{P_REJECT}; pct={v}" for v in ("abc", "150", "-5", "50.5", "", "0100", "+50"))),
    _records("rua_syntax", tuple(f"{P_REJECT}; rua={v}" for v in (
        "foo", "mailto:", "mailto:d@example.org!10x", "mailto:d@example.org,bogus", "http://x.example/r",
        "mailto:d@example.org ; ruf=bad"))),
    _records("no_valid_policy_rua", tuple(f"v=DMARC1; p=bogus; rua={v}" for v in (
        "foo", "mailto:", "mailto:d@example.org!10x", "mailto:d@example.org,bogus"))),
    _records("record_blanks", (" v=DMARC1; p=reject", "v=DMARC1 ; p=reject", "v=DMARC1;p=reject;", "v=DMARC1; p=reject;;",
                               "v=DMARC1;\tp=reject", "v=DMARC1; p=reject ", "V=DMARC1; p=reject", "v=DMARC1; p =reject",
                               "v=DMARC1 p=reject")),
    _records("mode_values", tuple(f"{P_REJECT}; {t}" for t in ("adkim=S", "adkim=x", "aspf=S", "aspf=strict", "adkim=r; aspf=R")),
             dkim=[("mail.{o}", True)]),
    _records("sp_np", ("v=DMARC1; p=none; sp=reject", "v=DMARC1; p=none; np=reject", "v=DMARC1; p=none; sp=quarantine; np=reject",
                       "v=DMARC1; p=reject; sp=none", "v=DMARC1; p=none; sp=bogus"), froms=("<a@nx.{o}>",)),
    ("from_forms", len(FROM_FORMS), lambda n, v: _case("from_forms", n, {"_dmarc.{o}": P_REJECT}, spf=True,
                                                      froms=(FROM_FORMS[v],))),
    ("sub_records", len(SUB_RECORDS), lambda n, v: _case(
        "sub_records", n, {"_dmarc.x.{o}": SUB_RECORDS[v], "_dmarc.{o}": "v=DMARC1; p=reject; sp=reject"},
        froms=("<a@x.{o}>",), sub="x")),
    ("split_strings", 3, lambda n, v: _case("split_strings", n, {"_dmarc.{o}": ["SPLIT", P_REJECT[:3 + 5 * v],
                                                                                 P_REJECT[3 + 5 * v:]]})),
    ("psl_edges", len(PSL_SHAPES), _psl),
    ("idn", 5, _idn),
]
# pct= sampling decides, on both sides: only the result is compared
DMARC_SAMPLED = {("pct_odd", 3), ("pct_odd", 6)}


def dmarc_cases(count=COUNT, seed=SEED):
    """By hand: `count` cases drawn from `seed`. CI: ci_sample's."""
    rng = random.Random(seed)
    if count:
        wanted = [(DMARC_KINDS[n % len(DMARC_KINDS)], None) for n in range(count)]
    else:
        by_name = {kind[0]: kind for kind in DMARC_KINDS}
        wanted = [(by_name[k], v) for k, v in ci_sample(by_name, DMARC_ALLOWED, agreeing=("split_strings",))]
    cases = []
    for n, ((name, variants, build), v) in enumerate(wanted):
        v = rng.randrange(variants) if v is None else v
        case = build(n, v)
        case.variant, case.deterministic = v, (name, v) not in DMARC_SAMPLED
        cases.append(case)
    return cases


def dmarc_publish(dns, case):
    """test_dmarc_differential's publish, and a record of several TXT strings (["SPLIT", ...])."""
    for name, value in list(case.records.items()):
        if isinstance(value, list) and value[:1] == ["SPLIT"]:
            dns.set(name, "TXT", value[1:])
            del case.records[name]
    dmd.publish(dns, case)


def _no_domain(v):
    return (v[0], v[1], "", v[3])


R_FAIL, BAD_FROM = ("fail", "reject", "", "reject"), dmd.BAD_FROM
PERMERROR, NONE = ("permerror", "", "", ""), ("none", "", "", "")
DUPLICATE = ("a tag twice in the record: RFC 7489 6.4 takes DKIM's tag-value syntax, under which (RFC 6376 3.2) "
             "the whole tag-list is invalid; neither side says so: Owlery keeps the first value, OpenDMARC the "
             "last. Left for a decision (permerror would drop a sloppy p=reject).")
STRICT = "OpenDMARC reads the value as relaxed"
DMARC_ALLOWED = [
    Allowed("duplicate_tags/0", ("pass", "reject", "", "none"), ("pass", "none", "", "none"), DUPLICATE),
    Allowed("duplicate_tags/1", ("pass", "none", "", "none"), ("pass", "reject", "", "none"), DUPLICATE),
    Allowed("duplicate_tags/2", R_FAIL, ("pass", "reject", "", "none"), DUPLICATE),
    Allowed("pct_odd/0", R_FAIL, ("fail", "reject", "", "none"),
            "pct=abc: RFC 7489 6.3 pct = 1*3DIGIT; Owlery reads a malformed pct= as absent (100), OpenDMARC as 0 "
            "and samples every message out."),
    *(Allowed(f"pct_odd/{v}", R_FAIL, PERMERROR,
              "pct= out of 0..100: RFC 7489 6.6.3 makes a record unusable only for an invalid p= or sp=; Owlery "
              "reads the pct= as absent (100), OpenDMARC refuses the record.", by_hand=v != 1) for v in (1, 2)),
    Allowed("no_valid_policy_rua/3", ("fail", "none", "", "none"), PERMERROR,
            "p=bogus, rua= with one valid URI of two: RFC 7489 6.6.3, at least one syntactically valid reporting "
            "URI makes the record act as p=none; OpenDMARC says permerror."),
    Allowed("record_blanks/6", R_FAIL, NONE,
            "V=DMARC1: RFC 7489 6.4 dmarc-version = \"v\" ... (an ABNF string, case-insensitive by RFC 5234 2.3; "
            "only DMARC1 is given as case-sensitive octets); OpenDMARC finds no record."),
    Allowed("record_blanks/8", NONE, PERMERROR,
            "\"v=DMARC1 p=reject\" (no ';'): the v= value is \"DMARC1 p=reject\", not DMARC1, so RFC 7489 6.6.3 "
            "step 4 discards the record (none); OpenDMARC calls it a broken DMARC record (permerror, 11.2). "
            "The RFC allows either reading."),
    Allowed("mode_values/0", R_FAIL, ("pass", "reject", "", "none"),
            "adkim=S: RFC 7489 6.4 (\"r\" / \"s\") are ABNF strings, case-insensitive (RFC 5234 2.3): strict, "
            "and the d= is a subdomain; " + STRICT + "."),
    Allowed("mode_values/1", ("pass", "reject", "", "none"), PERMERROR,
            "adkim=x: RFC 7489 6.6.3 makes a record unusable only for an invalid p= or sp=; Owlery applies the "
            "default (relaxed), OpenDMARC refuses the record."),
    *(Allowed(f"sp_np/{v}", R_FAIL, None,
              "np= for a subdomain that does not exist (RFC 9091 4.1); OpenDMARC 1.4.2 has no np= and applies sp=/p=.",
              by_hand=v != 1) for v in (1, 2)),
    *(Allowed(f"from_forms/{v}", BAD_FROM, None, dmd.FROM_REASON + "evaluates it or skips DMARC.", by_hand=v != 1)
      for v in (1, 2, 10)),
    Allowed("from_forms/5", BAD_FROM, None,
            "From <a@domain.>: a dot-atom cannot end in '.' (RFC 5322 3.4.1), so the field does not parse and the "
            "Author Domain is not well defined: RFC 7489 6.6.1 MAY reject; OpenDMARC drops the dot."),
    *(Allowed(f"idn/{v}", None, NONE,
              "a U-label From domain: its policy is published and its identifiers aligned under the A-label (RFC 8616 "
              "section 6, RFC 7489 3.1; tests/milters/test_idn_alignment.py); OpenDMARC looks up the UTF-8 name.",
              by_hand=v != 0) for v in (0, 1, 3)),
    *(Allowed(f"psl_edges/{v}", None, ("pass", "reject", "", "none"),
              "a wildcard rule of the Public Suffix List (*.ck, *.kawasaki.jp) makes x.ck a public suffix, so the "
              "organizational domain (RFC 7489 3.2) of mail.x.ck is mail.x.ck itself; OpenDMARC 1.4.2 does not apply "
              "wildcard rules.", by_hand=v != 0) for v in (0, 6)),
    Allowed("sub_records/0", NONE, ("fail", "none", "", "none"),
            "two DMARC records at the From domain x.o: RFC 7489 6.6.3 asks the organizational domain only when "
            "the From domain has none (step 3), and several records end policy discovery (step 5): no DMARC; "
            "OpenDMARC uses one of them (as in test_dmarc_differential's several_records). Owlery applied o's "
            "sp=reject before this round."),
    Allowed("psl_edges/3", R_FAIL, ("pass", "reject", "", "none"),
            "github.io is a rule of the list's private section, so foo.github.io is an organizational domain "
            "(RFC 7489 3.2 uses the list; publicsuffix.org says to use both sections); OpenDMARC aligns it "
            "with github.io."),
]


def test_dmarc_shapes_agree_with_opendmarc(tmp_path, dns, milter_env, opendmarc_peer):
    key = dkd._ed25519_key()
    cases = dmarc_cases()
    pairs = [dmd.message(c, key, n) for n, c in enumerate(cases)]
    for c in cases:
        dmarc_publish(dns, c)
    theirs = {}
    for at in range(0, len(cases), BATCH):
        part, _ = dmd.opendmarc_results(tmp_path, opendmarc_peer, cases[at:at + BATCH],
                                        [t for _, t in pairs[at:at + BATCH]])
        theirs.update({at + n: v for n, v in part.items()})
    run = milter_env(milter_inbound_stages=["spf", "dkim_verify", "dmarc", "authres"],
                     dmarc_public_suffix_list=dmd.psl_path())
    differences, used, tally = [], set(), Counter()
    for n, (case, (data, _)) in enumerate(zip(cases, pairs)):
        ours, _, _ = dmd.owlery_result(run, case, data)
        o = _no_domain(dmd.comparable(ours, True))
        t = _no_domain(dmd.comparable(theirs[n], True))
        tally[case.name, str(case.variant), o, t] += 1
        if (o, t)[0][: 4 if case.deterministic else 1] == (o, t)[1][: 4 if case.deterministic else 1]:
            continue
        a = allowance(DMARC_ALLOWED, f"{case.name}/{case.variant}", o, t, (case, o, t))
        if a is not None:
            used.add(a)
            continue
        differences.append(f"#{n} {case.name}/{case.variant}: owlery {ours} opendmarc {theirs[n]} "
                           f"{case.records} {case.froms} {case.mail_from} {case.dkim}")
    report("dmarc", tally)
    assert not differences, f"{len(differences)} unexplained differences:\n" + "\n".join(differences)
    if not BY_HAND:
        unused = [a.shape for a in DMARC_ALLOWED if a not in used and not a.by_hand]
        assert not unused, f"allowances never needed: {unused}"


# ---- ARC shapes (RFC 8617) ------------------------------------------------------------------------
class ArcShapes(arcd.Generator):
    """test_arc_differential's generator with this round's shapes (k_ methods taking the variant)."""

    def make(self, rng, n, kind, how=None):
        self.rng, self.n, self.records = rng, n, {}
        self.msg = arcd.base_message(rng)
        self.variant = rng.randrange(ARC_VARIANTS[kind]) if how is None else how
        getattr(self, "k_" + kind)(self.variant)
        case = arcd.Case(kind, self.msg)
        case.records.update(self.records)
        case.variant = self.variant
        return case

    def k_many_sets(self, v):
        self.chain((11, 60, 12)[v])  # RFC 8617 4.2.1: up to 50

    def k_cv_fail_and_after(self, v):
        # cv=fail at set k and every later sealer says fail too (RFC 8617 5.1.2): (sets, k)
        n, k = ((3, 2), (4, 2), (4, 3))[v]
        self.chain(n, **{f"h{i}": dict(cv="fail") for i in range(k, n + 1)})

    def k_ams_length_appended(self, v):
        n = v + 1 if v < 3 else 1
        if v == 3:  # a body of one empty line: its relaxed form is empty (RFC 6376 3.4.4, erratum 1376): l=0
            self.msg.body = b"\r\n"
        self.chain(n, **{f"h{n}": dict(ams=dict(l=str(len(canon_body(self.msg.body, "relaxed")))))})
        self.msg.body += b"appended after the newest seal\r\n"

    def k_sha1(self, v):
        # a= says rsa-sha1 (over a SHA-256 signature): no valid set either way
        n = self.depth(1, 3)
        self.chain(n, **{f"h{n}": dict(ams=dict(a="rsa-sha1")) if v == 0 else dict(seal=dict(a="rsa-sha1"))})

    def k_instance_leading_zero(self, v):
        n = v + 1  # every set's AMS and AS written i=0N (RFC 8617 3.9 position = 1*2DIGIT)
        self.chain(n, **{f"h{i}": dict(ams=dict(i=f"0{i}"), seal=dict(i=f"0{i}")) for i in range(1, n + 1)})


ARC_VARIANTS = {"many_sets": 3, "cv_fail_and_after": 3, "ams_length_appended": 4, "sha1": 2, "instance_leading_zero": 3}
assert set(ARC_VARIANTS) == {k[2:] for k in vars(ArcShapes) if k.startswith("k_")}


def arc_cases(keys, count=COUNT, seed=SEED):
    """By hand: `count` cases drawn from `seed`. CI: ci_sample's."""
    gen = ArcShapes(keys)
    rng = random.Random(seed)
    kinds = sorted(ARC_VARIANTS)
    if count:
        return [gen.make(rng, n, kinds[n % len(kinds)]) for n in range(count)]
    wanted = ci_sample(ARC_VARIANTS, ARC_ALLOWED, agreeing=("cv_fail_and_after", "sha1", "many_sets"))
    return [gen.make(rng, n, kind, v) for n, (kind, v) in enumerate(wanted)]


def _ams_l_zero(case, ours, theirs):
    """The newest AMS says l=0 (the body it covered was empty once canonicalised)."""
    return any(re.search(rb"[;\s]l=0\s*(;|$)", f) for f in case.msg.fields if f.lower().startswith(b"arc-message-"))


ARC_ALLOWED = [
    *(Allowed(f"ams_length_appended/{v}", "pass", "fail",
              "an AMS with l=0 (the body was one empty line, whose relaxed form is empty: RFC 6376 3.4.4 and "
              "erratum 1376) and content appended since: RFC 6376 3.5 l= counts canonical octets, so the body "
              "hash covers nothing and holds; Rspamd fails it (longer bodies with l= pass there).", _ams_l_zero,
              v != 3) for v in range(4)),
    *(Allowed(f"instance_leading_zero/{v}", "pass", "fail",
              "i=01: RFC 8617 3.9 position = 1*2DIGIT, so 01 is instance 1; Rspamd compares the text and fails "
              "the seal.", by_hand=v != 0) for v in (0, 1, 2)),
    *(Allowed(f"many_sets/{v}", "pass", "fail",
              "11 or 12 sets: Rspamd refuses any i= above 10 ('i parameter missing or invalid for ARC'); RFC 8617 "
              "4.2.1 allows 1..50.", by_hand=v != 0) for v in (0, 2)),
]


def test_arc_shapes_agree_with_rspamd(dkim_keys, dns, milter_env, harness_dirs):
    cases = arc_cases({"k2048": dkim_keys["k2048"]})  # the sealer wants .private and .public_b64
    arcd.publish(dns, cases)
    rspamd = arcd.Rspamd(harness_dirs("rspamd-arc-s21"), dns.port).start()
    try:
        theirs = [rspamd.check(c.data(), ip=arcd.CLIENT_IP, sender="alice@example.net", rcpts=["bob@example.com"])
                  for c in cases]
    finally:
        rspamd.stop()
    run = milter_env(milter_inbound_stages=["arc_verify", "authres"])
    differences, used, tally = [], set(), Counter()
    for n, case in enumerate(cases):
        ours, ar = arcd.owlery_verdict(run, case)
        rs = arcd.rspamd_verdict(theirs[n])
        tally[case.kind, str(case.variant), ours, rs] += 1
        if ours == rs:
            continue
        a = allowance(ARC_ALLOWED, f"{case.kind}/{case.variant}", ours, rs, (case, ours, rs))
        if a is not None:
            used.add(a)
            continue
        differences.append(f"#{n} {case.kind}/{case.variant}: owlery {ours} ({ar}) rspamd {rs} "
                           f"{arcd.rspamd_detail(theirs[n])}")
    report("arc", tally)
    assert not differences, f"{len(differences)} unexplained differences:\n" + "\n".join(differences)
    if not BY_HAND:
        unused = [a.shape for a in ARC_ALLOWED if a not in used and not a.by_hand]
        assert not unused, f"allowances never needed: {unused}"


# ---- Owlery's fixes of this round, one recorded message each (each failed before) -------------------
_SELECTORS = itertools.count(10**6)  # selector numbers of the recorded messages


@pytest.fixture
def verify_dkim(dns, dkim_keys, milter_env):
    """dkim= results of Owlery's dkim_verify for a message signed with `template` (DkimShapes.tagged)
    and the key record `record` (None: the 2048-bit key's own)."""
    run = milter_env(milter_inbound_stages=["dkim_verify", "authres"])

    def go(template, record=None):
        gen = DkimShapes(dkim_keys)
        gen.rng, gen.n, gen.records, gen.variant = random.Random(5), next(_SELECTORS), {}, None
        gen.msg = dkd.base_message(gen.rng)
        gen.tagged(template)
        for name, value in gen.records.items():
            dns.set(name, "TXT", record.format(p=dkim_keys["k2048"].public_b64) if record else value)
        return [r for _, r in dkd.owlery_verdicts(run, Case("", gen.msg))]

    return go


SIGNED = "v=1; a=rsa-sha256; c=relaxed/relaxed; {q}d={d}; s={s}; t={t}; {x}h={h}; bh={BH}; b={B}"


@pytest.mark.parametrize("q", ["dns/txt:http/well-known", "x-other:dns/txt", "dns/txt:dns/txt", "dns/txt : other"])
def test_q_list_with_dns_txt_is_verified(verify_dkim, q):
    """RFC 6376 3.5 q=: a colon-separated list of query methods, unrecognised ones MUST be ignored.
    dkimpy took anything but exactly "dns/txt" for a syntax error (permerror)."""
    assert verify_dkim(SIGNED.replace("{q}", f"q={q}; ").replace("{x}", "")) == ["pass"]


@pytest.mark.parametrize("q", ["dns", "http/well-known:other"])
def test_q_list_without_dns_txt_is_permerror(verify_dkim, q):
    """No method we know: the key cannot be fetched (RFC 6376 6.1.1 PERMFAIL). Passed before too."""
    assert verify_dkim(SIGNED.replace("{q}", f"q={q}; ").replace("{x}", "")) == ["permerror"]


@pytest.mark.parametrize("delta", [0, -3600])
def test_x_not_after_t_is_permerror(verify_dkim, delta):
    """RFC 6376 3.5: x= MUST be greater than t=; dkimpy refused only a smaller x=, so x=t passed."""
    at = NOW + delta
    template = SIGNED.replace("{q}", "").replace("t={t}; {x}", f"t={at}; x={at}; ")
    assert verify_dkim(template) == ["permerror"]


def test_x_after_t_still_passes(verify_dkim):
    template = SIGNED.replace("{q}", "").replace("{x}", f"x={NOW + 3600}; ")
    assert verify_dkim(template) == ["pass"]


@pytest.mark.parametrize("service", ["email:other", "other:email", " other : email ", "*:tlsrpt"])
def test_key_service_type_list_naming_email_is_usable(verify_dkim, service):
    """RFC 6376 3.6.1 s=: a colon-separated list of service types, unrecognised ones ignored; dkimpy
    compared the whole value with "email" and "*" and refused the key (permerror)."""
    template = SIGNED.replace("{q}", "").replace("{x}", "")
    assert verify_dkim(template, "v=DKIM1; k=rsa; s=" + service + "; p={p}") == ["pass"]


def test_key_service_type_list_without_email_is_permerror(verify_dkim):
    template = SIGNED.replace("{q}", "").replace("{x}", "")
    assert verify_dkim(template, "v=DKIM1; k=rsa; s=other:tlsrpt2; p={p}") == ["permerror"]


def test_arc_key_with_service_type_list_is_usable(dkim_keys, dns, milter_env):
    """The same key record reading serves ARC (RFC 8617 4.1.2 and 4.1.3 use DKIM's keys): a chain
    whose key says s=email:other validates; it failed before."""
    gen = ArcShapes({"k2048": dkim_keys["k2048"]})
    gen.rng, gen.n, gen.records = random.Random(3), next(_SELECTORS), {}
    gen.msg = arcd.base_message(gen.rng)
    record = arcd.key_record(gen.keys["k2048"], s="email:other")
    gen.chain(2, h1=dict(record=record), h2=dict(record=record))
    case = arcd.Case("s", gen.msg)
    case.records.update(gen.records)
    arcd.publish(dns, [case])
    ours, ar = arcd.owlery_verdict(milter_env(milter_inbound_stages=["arc_verify", "authres"]), case)
    assert ours == "pass", ar


@pytest.mark.parametrize("own,want", [
    (("RRSET", "v=DMARC1; p=none", "v=DMARC1; p=quarantine"), "dmarc=none"),  # step 5: no DMARC at all
    (("RRSET", "v=spf1 -all", "x"), "reject"),  # no DMARC record of its own: o's sp=reject (step 3)
    (("RRSET", "v=DMARC1; p=none", "x"), "dmarc=fail"),  # one DMARC record (p=none): its own
])
def test_several_records_at_the_from_subdomain_end_policy_discovery(dns, milter_env, own, want):
    """RFC 7489 6.6.3 steps 3 and 5: two DMARC records at the From domain mean no DMARC; the
    organizational domain's record (here sp=reject) was used instead, and the message refused."""
    import Milter

    case = _case("sub_records", 1, {"_dmarc.x.{o}": own, "_dmarc.{o}": "v=DMARC1; p=reject; sp=reject"},
                 froms=("<a@x.{o}>",), sub="x")
    dmarc_publish(dns, case)
    run = milter_env(milter_inbound_stages=["spf", "dkim_verify", "dmarc", "authres"])
    code, ctx = run(dmd.message(case, None, 1)[0], sender=f"<{case.mail_from}>", client=("c.example", dmd.CLIENT_IP))
    if want == "reject":
        assert code == Milter.REJECT, ctx.header_value("Authentication-Results")
    else:
        assert code == Milter.ACCEPT, ctx.replies
        assert want in ctx.header_value("Authentication-Results")


def main(argv):
    """By hand: python -m tests.milters.test_auth_differential_s21 N SEED."""
    count, seed = (list(argv) + ["2000", "2121"][len(argv):])[:2]
    os.environ.update(S21_COUNT=str(int(count)), S21_SEED=str(int(seed)))
    return pytest.main(["-q", "-s", "-p", "no:cacheprovider", "-o", "timeout=0", "-k", "agree", __file__])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
