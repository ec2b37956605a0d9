"""Stage `arc_verify`: validate the ARC chain (RFC 8617 5.2) over the injected DNS.

RFC 8617 5.2's steps are ours, in its order: the structure first, with no DNS lookup (at most
50 ARC Sets, each field starting with i= 1..50, no gap or repeat, exactly one AAR, AMS and AS
per instance, cv= none at i=1 and pass above, never fail), then the newest AMS, then every AS
from the newest down, stopping at the first failure; dkimpy does the DKIM parts of each
signature (tags, key record, header hash, RSA). An AS covers the sets in instance order
(5.1.1), wherever a hop put the fields; an AMS is a DKIM-Signature by syntax and semantics
(4.1.2: no v=, c= defaults to simple/simple, From signed, no ARC-Seal in h=). A passing chain
reports header.oldest-pass (5.2 step 5, section 6). Hostile chains cost little: the structure
is read once, no key is fetched for a chain whose structure fails, h= lists are cut to the
fields the message has, and each canonical body is made and hashed once for all AMS.

Records `arc=pass|fail|none` (a DNS failure too is fail: RFC 8617 5.2.1) and leaves the
status in `report.data["arc"]` for arc_seal. Symbols: ARC_VALID, ARC_INVALID.
Talks to: DNS (through milters.dns). Tests: tests/milters/test_auth_stages.py (seal, then
verify), tests/milters/test_arc_differential.py (verdicts against Rspamd's, and the bounds).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from owlery.errors import TemporaryFailure
from owlery.settings import Float, setting

from milters import dns as mdns
from milters.effects import StageReport
from milters.stages import Stage
from milters.stages.dkim_verify import _key_tags, _Quiet, dkimpy_parts, speed_up_dkimpy

ARC_INVALID_SCORE = setting(
    "arc_invalid_score", Float, 1.0,
    "Score of symbol ARC_INVALID (an ARC chain is present and does not validate).")

ARC_SET_LIMIT = 50          # RFC 8617 4.2.1 (i= is 1..50) and 5.2 step 1 (more sets: fail)
AAR, AMS, AS = 0, 1, 2
_SLOTS = {b"arc-authentication-results": AAR, b"arc-message-signature": AMS, b"arc-seal": AS}
_SLOT_NAMES = ("ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal")
_SLOT_FIELDS = tuple(name.lower().encode() for name in _SLOT_NAMES)
# RFC 8617 4.1.1-4.1.3: each ARC field starts with its instance (arc-info, arc-ams-info and
# arc-as-info = instance [CFWS] ";" ...); 3.9: instance = [CFWS] %s"i" [CFWS] "=" [CFWS] position,
# position = 1*2DIGIT, 1-50 (comments in the CFWS are not read: such a field fails)
_LEAD_INSTANCE = re.compile(rb"[ \t]*i[ \t]*=[ \t]*([0-9]{1,2})[ \t]*;")
_FOLD = re.compile(rb"\r?\n")
_AS_TAGS = frozenset((b"i", b"a", b"b", b"d", b"s", b"t", b"cv"))


def _broken() -> tuple[type[Exception], ...]:
    """What dkimpy raises for a signature it cannot read. Its error for a c= naming no
    canonicalization is no DKIMException (found by the fuzz suite: an AMS with c=rdlaxed ended
    the stage with an internal error, a 451 for the message on every retry)."""
    import dkim
    return (dkim.DKIMException, dkim.InvalidCanonicalizationPolicyError, ValueError, IndexError, KeyError)


class ChainFail(Exception):
    """The chain fails (RFC 8617 5.2); the text says why."""


def _unfolded(value: bytes) -> bytes:
    return _FOLD.sub(b"", value)


def _instance(flat: bytes, what: str) -> int:
    m = _LEAD_INSTANCE.match(flat)
    if m is None:
        raise ChainFail(f"{what} does not start with i=")
    if not 1 <= int(m.group(1)) <= ARC_SET_LIMIT:
        raise ChainFail(f"{what}: i= is not 1..{ARC_SET_LIMIT}")
    return int(m.group(1))


def read_chain(headers: list[list[bytes]]) -> list[list[Any]]:
    """RFC 8617 5.2 steps 1-3 over dkimpy's [name, value] fields: [[aar, ams, as], ...] for
    i=1..N, each [field index, tags or None]; raises ChainFail. Reads every field once and at
    most 3 * ARC_SET_LIMIT ARC fields; fetches nothing."""
    import dkim.util
    sets: dict[int, list[Any]] = {}
    count = 0
    for idx, (name, value) in enumerate(headers):
        slot = _SLOTS.get(name.strip().lower())
        if slot is None:
            continue
        count += 1
        if count > 3 * ARC_SET_LIMIT:
            raise ChainFail(f"more than {ARC_SET_LIMIT} ARC sets")
        what = _SLOT_NAMES[slot]
        flat = _unfolded(value)
        i = _instance(flat, what)
        tags = None
        if slot != AAR:
            try:
                tags = dkim.util.parse_tag_value(flat)
            except (dkim.util.InvalidTagValueList, ValueError) as e:
                raise ChainFail(f"{what}: bad tag list ({str(e)[:40]})") from None
        entry = sets.setdefault(i, [None, None, None])
        if entry[slot] is not None:
            raise ChainFail(f"two {what} with i={i}")
        entry[slot] = [idx, tags]
    if not sets:
        return []
    n = max(sets)
    seal = sets[n][AS]
    if seal is not None and seal[1].get(b"cv", b"").lower() == b"fail":
        raise ChainFail(f"ARC-Seal i={n} says cv=fail")                           # step 2
    if len(sets) != n:
        raise ChainFail(f"instances are not 1..{n}")                              # step 3.2
    chain = [sets[i] for i in range(1, n + 1)]
    for i, entry in enumerate(chain, 1):
        for slot in (AAR, AMS, AS):
            if entry[slot] is None:
                raise ChainFail(f"no {_SLOT_NAMES[slot]} with i={i}")             # step 3.1
        cv = entry[AS][1].get(b"cv", b"").lower()                                 # step 3.3
        if cv != (b"none" if i == 1 else b"pass"):
            raise ChainFail(f"ARC-Seal i={i} says cv={cv.decode('ascii', 'replace')[:10]}")
    return chain


def _cut_h(names: list[bytes], headers: list[list[bytes]]) -> list[bytes]:
    """h= without the names past the number of fields of that name: they select nothing and
    add nothing to the hash (RFC 6376 5.4.2), so a hostile list of 100,000 names costs no
    more than the message's own fields."""
    have = Counter(name.strip().lower() for name, _ in headers)
    out = []
    for name in names:
        if have[name] > 0:
            have[name] -= 1
            out.append(name)
    return out


def _recording(dnsfunc: Any, seen: list[bytes]) -> Any:
    def lookup(name: Any, timeout: float = 5) -> bytes:
        answer = dnsfunc(name, timeout=timeout)
        seen.append(answer)
        return answer
    return lookup


def _key_allows(seen: list[bytes]) -> bool:
    """RFC 6376 6.1.2: a key record whose h= leaves out sha256 or whose k= is not rsa cannot
    serve an rsa-sha256 signature (dkimpy checks neither); it is ignored, so no verification."""
    if not seen:
        return False
    try:
        tags = _key_tags(seen[-1])
    except _broken():
        return False
    hashes = tags.get(b"h")
    if hashes is not None and b"sha256" not in [x.strip().lower() for x in hashes.split(b":")]:
        return False
    return tags.get(b"k", b"rsa").strip().lower() == b"rsa"


def _verify(verifier: Any, sig: dict, names: list[bytes], field: list[bytes], dnsfunc: Any) -> bool:
    seen: list[bytes] = []
    try:
        ok = verifier.verify_sig(sig, names, field, _recording(dnsfunc, seen))
    except _broken():
        return False
    return bool(ok) and _key_allows(seen)


def _body_matches(verifier: Any, sig: dict, bodies: dict) -> bool:
    """Whether bh= is the hash of the body as c= and l= say (RFC 6376 3.7), each canonical body
    and hash made once per message (`bodies`): dkimpy would make them again for every AMS, and
    up to 50 are checked (5.2 steps 4 and 5)."""
    import base64
    import binascii
    import hashlib

    import dkim
    try:
        policy = dkim.CanonicalizationPolicy.from_c_value(sig[b"c"])
        bh = base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"]), validate=True)
        length = int(sig[b"l"]) if b"l" in sig else None
    except (*_broken(), binascii.Error):
        return False
    name = policy.body_algorithm.name
    if (name, length) not in bodies:
        if name not in bodies:
            bodies[name] = policy.canonicalize_body(verifier.body)
        body = bodies[name]
        bodies[(name, length)] = hashlib.sha256(body if length is None else body[:length]).digest()
    return bodies[(name, length)] == bh


def _ams_valid(verifier: Any, headers: list[list[bytes]], entry: list[Any], dnsfunc: Any,
               bodies: dict) -> bool:
    """The AMS of one set, as a DKIM-Signature (RFC 8617 4.1.2, RFC 6376 6.1)."""
    import dkim
    idx, tags = entry[AMS]
    sig = dict(tags)
    sig.pop(b"v", None)                 # 4.1.2: not defined for the AMS; a v= seen MUST be ignored
    try:
        dkim.validate_signature_fields(sig, [b"i", b"a", b"b", b"bh", b"d", b"h", b"s"], True)
    except _broken():
        return False
    names = [x.lower() for x in re.split(rb"\s*:\s*", sig[b"h"].strip())]
    # RFC 6376 6.1.1 (From not signed). RFC 8617 4.1.2 keeps ARC fields (and Authentication-
    # Results) out of h= "to reduce the chances of accidental invalidation"; only ARC-Seal makes
    # the AMS unusable (it is written after the AMS of its own set), the one the ValiMail ARC test
    # suite fails (ams_fields_h_includes_as; an AAR or AMS in h= passes there), as dkimpy does.
    if b"from" not in names or b"arc-seal" in names:
        return False
    sig.setdefault(b"c", b"simple/simple")          # RFC 6376 3.5's default
    if not _body_matches(verifier, sig, bodies):
        return False
    del sig[b"bh"]                                  # checked: dkimpy then hashes the header only
    verifier.headers = headers
    return _verify(verifier, sig, _cut_h(names, headers), headers[idx], dnsfunc)


def _as_valid(verifier: Any, headers: list[list[bytes]], chain: list[list[Any]], i: int, dnsfunc: Any) -> bool:
    """The AS of set i over AAR, AMS, AS of sets 1..i-1 and AAR, AMS of set i, in that order
    (RFC 8617 5.1.1), relaxed header canonicalisation, no body."""
    import dkim
    idx, tags = chain[i - 1][AS]
    if b"h" in tags:
        return False                    # 4.1.3: an h= found on an AS MUST give cv=fail
    # 4.1.3: "the only supported tags are i, a, b, d, s, t" and cv; others (bh, x, c, v...) are
    # unknown tags, ignored (RFC 6376 3.2); the header canonicalisation is always relaxed
    sig = {k: v for k, v in tags.items() if k in _AS_TAGS}
    sig[b"cv"] = sig.get(b"cv", b"").lower()    # RFC 5234 2.3: "none" / "fail" / "pass" in any case
    try:
        dkim.validate_signature_fields(sig, [b"i", b"a", b"b", b"cv", b"d", b"s"], True)
    except _broken():
        return False
    sig[b"c"] = b"relaxed/relaxed"
    # dkimpy picks each listed name's fields from the bottom up: list set i on top, set 1 last
    # (a name written "ARC-Seal :" is the same field, RFC 5322 4.5.3: its blank goes)
    fields: list[list[bytes]] = []
    for j in range(i, 0, -1):
        for slot in (AMS, AAR) if j == i else (AS, AMS, AAR):
            name, value = headers[chain[j - 1][slot][0]]
            fields.append([name.strip(), value])
    names = list(_SLOT_FIELDS) * (i - 1) + [_SLOT_FIELDS[AAR], _SLOT_FIELDS[AMS]]
    verifier.headers = fields
    try:
        return _verify(verifier, sig, names, headers[idx], dnsfunc)
    finally:
        verifier.headers = headers


def validate(verifier: Any, dnsfunc: Any) -> tuple[str, str, int, int | None]:
    """(status, reason, N, oldest-pass) of the chain in verifier.headers (RFC 8617 5.2).
    TemporaryFailure (a key lookup that timed out or got SERVFAIL) passes up."""
    headers = verifier.headers
    try:
        chain = read_chain(headers)
    except ChainFail as e:
        return "fail", str(e), 0, None
    n = len(chain)
    if not n:
        return "none", "", 0, None
    bodies: dict = {}
    if not _ams_valid(verifier, headers, chain[n - 1], dnsfunc, bodies):         # step 4
        return "fail", f"ARC-Message-Signature i={n} does not validate", n, None
    for i in range(n, 0, -1):                                                    # step 6
        if not _as_valid(verifier, headers, chain, i, dnsfunc):
            return "fail", f"ARC-Seal i={i} does not validate", n, None
    oldest = 0                                                                   # step 5
    for i in range(n - 1, 0, -1):
        try:
            ok = _ams_valid(verifier, headers, chain[i - 1], dnsfunc, bodies)
        except TemporaryFailure:
            ok = False
        if not ok:
            oldest = i + 1
            break
    return "pass", "", n, oldest


class ArcVerify(Stage):
    name = "arc_verify"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        speed_up_dkimpy()

    def check(self, message: Any, report: StageReport) -> None:
        import dkim
        if not any(h.name.strip().lower().encode() in _SLOTS for h in message.headers):
            report.data["arc"] = "none"
            report.auth_result("arc", "none")
            return
        dnsfunc = mdns.dkim_dnsfunc(self.services.resolver, self.settings.milter_dns_txt_size_limit)
        verifier = dkim.ARC(None, logger=_Quiet(), minkey=self.settings.dkim_min_key_bits)
        verifier.headers, verifier.body = dkimpy_parts(message)     # parsed once, with dkim_verify
        try:
            status, reason, instances, oldest = validate(verifier, dnsfunc)
        except TemporaryFailure as e:
            # RFC 8617 5.2.1: all failures are permanent, DNS failures included
            status, reason, instances, oldest = "fail", str(e), 0, None
        report.data["arc"] = status
        if status == "none":
            report.auth_result("arc", "none")
        elif status == "pass":
            report.auth_result("arc", "pass", comment=f"i={instances}", **{"header_oldest-pass": str(oldest)})
            report.symbol("ARC_VALID", 0.0, f"i={instances}")
        else:
            report.auth_result("arc", "fail", comment=reason[:80])
            report.symbol("ARC_INVALID", self.settings.arc_invalid_score, reason[:80])
