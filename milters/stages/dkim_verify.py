"""Stage `dkim_verify`: verify every DKIM signature of a message (dkimpy, injected DNS).

Each signature gives one `dkim=` result (pass, fail, policy, neutral, temperror, permerror) with
header.d, header.s, header.a and header.b; no signature gives `dkim=none`. The passing
domains go to `report.data["dkim"]` for the dmarc stage. Symbols: DKIM_VALID,
DKIM_INVALID, DKIM_TEMPERROR, DKIM_NONE. At most `dkim_verify_signature_limit` signatures
are checked.
Talks to: DNS (through milters.dns). Tests: tests/milters/test_auth_stages.py,
tests/milters/test_dkim_interop.py (OpenDKIM's signatures), tests/milters/test_dkim_differential.py
and tests/milters/test_auth_differential_s21.py (verdicts against OpenDKIM's).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from owlery.errors import TemporaryFailure
from owlery.settings import Float, Int, setting

from milters import dns as mdns
from milters.effects import StageReport
from milters.stages import Stage

DKIM_VERIFY_SIGNATURE_LIMIT = setting(
    "dkim_verify_signature_limit", Int, 5,
    "Most DKIM signatures verified per message (the rest get dkim=neutral).")
DKIM_INVALID_SCORE = setting(
    "dkim_invalid_score", Float, 1.0,
    "Score of symbol DKIM_INVALID (a signature present but none verifies).")

log = logging.getLogger("owlery.milter")


def _int2str(n: int, length: int = -1) -> bytearray:
    """dkim.crypto.int2str's result (big-endian, `length` low bytes when given, else the
    fewest, at least one) made by int.to_bytes instead of a Python loop over every byte."""
    assert n >= 0
    if length < 0:
        return bytearray(n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big"))
    return bytearray((n & ((1 << (8 * length)) - 1)).to_bytes(length, "big"))


def _str2int(s: bytes) -> int:
    """dkim.crypto.str2int's result, by int.from_bytes."""
    return int.from_bytes(bytes(s), "big")


# dkimpy's RE_BTAG (the b= tag emptied before hashing the signature field) writes folding
# white space as (?:(?:\s*\r?\n)?\s+)?, which matches exactly what \s* matches, and repeats
# it before every character of the value; (\s*C+)* matches what (FWS C)* matches, and this
# greedy loop ends at the same place (the last base64 character): the same substitution,
# 6 us instead of 45 for a 2048-bit signature.
_BTAG = re.compile(rb"([;\s]b\s*=)(?:\s*[a-zA-Z0-9+/=]+)*(?:\r?\n\Z)?")
_WSP_RUN = re.compile(rb"[\t ]+")
_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_NEWLINE = re.compile(rb"\r?\n")


def _compress_whitespace(content: bytes) -> bytes:
    """dkim.canonicalization.compress_whitespace's result (each run of blanks and tabs made one
    space). Text without a tab or two blanks in a row has nothing to change: checking that is
    a hundred times cheaper than the substitution, which replaces every single space."""
    if b"\t" not in content and b"  " not in content:
        return content
    return _WSP_RUN.sub(b" ", content)


def _strip_trailing_whitespace(content: bytes) -> bytes:
    """dkim.canonicalization.strip_trailing_whitespace's result, without a scan when no line
    ends in a blank or a tab."""
    if b" \r\n" not in content and b"\t\r\n" not in content:
        return content
    return _TRAILING_WSP.sub(b"\r\n", content)


def _unfold_header_value(content: bytes) -> bytes:
    """dkim.canonicalization.unfold_header_value's result (every LF and the CR before it gone)."""
    if b"\n" not in content:
        return content
    return content.replace(b"\r\n", b"").replace(b"\n", b"")


@functools.lru_cache(maxsize=256)
def _openssl_public_key(modulus: int, exponent: int) -> Any:
    """The key as OpenSSL's (cryptography), or None when it refuses it (dkimpy's pure Python then)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except Exception:  # noqa: BLE001 - an exponent or modulus OpenSSL will not take
        return None


def _rsassa_pkcs1_v1_5_verify(python_verify: Any) -> Any:
    """dkim.crypto.RSASSA_PKCS1_v1_5_verify with the RSA operation done by OpenSSL, not by
    Python's pow() (0.15 ms of each verification, a sixth of the inbound milter's CPU).

    The same answers: dkimpy compares EMSA-PKCS1-v1_5(hash) with signature^e mod n (the
    signature taken as a number, so one >= n counts as itself mod n: we reduce it the same
    way). OpenSSL checks the type 1 padding (00 01 FF.. 00) and returns what follows, from
    which we rebuild the whole block and compare it as dkimpy does; a block OpenSSL finds
    badly padded is unequal to dkimpy's, which is always well padded. Keys OpenSSL refuses,
    and any error other than a bad signature, go to dkimpy's own code."""
    import dkim.crypto
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding
    pkcs1 = padding.PKCS1v15()

    def verify(hash: Any, signature: bytes, public_key: dict) -> bool:
        modulus, exponent = public_key["modulus"], public_key["publicExponent"]
        key = _openssl_public_key(modulus, exponent) if modulus > 0 else None
        if key is None:
            return python_verify(hash, signature, public_key)
        modlen = max(1, (modulus.bit_length() + 7) // 8)      # len(int2str(modulus))
        encoded = dkim.crypto.EMSA_PKCS1_v1_5_encode(hash, modlen)
        reduced = (int.from_bytes(bytes(signature), "big") % modulus).to_bytes(modlen, "big")
        try:
            data = key.recover_data_from_signature(reduced, pkcs1, None)
        except InvalidSignature:
            return False
        except Exception:  # noqa: BLE001 - whatever else OpenSSL says, dkimpy decides
            return python_verify(hash, signature, public_key)
        return encoded == b"\x00\x01" + b"\xff" * (modlen - 3 - len(data)) + b"\x00" + data
    verify.python_verify = python_verify       # type: ignore[attr-defined]
    return verify


def service_types_read(record: Any) -> Any:
    """The key record with its s= read as RFC 6376 3.6.1 says: a colon-separated list of
    service types, unrecognised types ignored, so "s=email:other" serves email. dkimpy compares
    the whole value with "*", "email" and "tlsrpt" and refuses the key otherwise; a list that
    holds "*" or "email" is handed to it as that one type. Anything else is left as it is."""
    import dkim.util
    raw = record.encode("ascii", "replace") if isinstance(record, str) else record
    if not isinstance(raw, bytes) or b":" not in raw:
        return record
    try:
        tags = dkim.util.parse_tag_value(raw)
    except (dkim.util.InvalidTagValueList, ValueError):
        return record                   # dkimpy reports the broken record itself
    types = [t.strip() for t in tags.get(b"s", b"").split(b":")]
    if len(types) < 2:
        return record
    tags[b"s"] = b"*" if b"*" in types else b"email" if b"email" in types else tags[b"s"]
    return b"; ".join(k + b"=" + v for k, v in tags.items())


def _cached_evaluate_pk(evaluate_pk: Any) -> Any:
    """dkim.evaluate_pk remembered: a key record's meaning (its tags, the RSA numbers, an Ed25519
    key) is a function of its name and text, so each distinct record is parsed once, not once
    per message (0.05 ms). A record that fails is not remembered: the error is raised each time.
    Its s= list is read first (service_types_read)."""
    cached = functools.lru_cache(maxsize=1024)(evaluate_pk)

    def evaluate(name: Any, s: Any) -> Any:
        s = service_types_read(s)
        if isinstance(name, (bytes, str)) and isinstance(s, (bytes, str)):
            return cached(name, s)
        return evaluate_pk(name, s)
    evaluate.python_evaluate_pk = evaluate_pk      # type: ignore[attr-defined]
    return evaluate


def speed_up_dkimpy() -> None:
    """dkimpy does RSA in Python and converts each 2048-bit number byte by byte: about 0.3 ms
    of every verification (and signature); its relaxed canonicalisation substitutes every
    space of the body (0.2 ms for 4 KB). The same results, from the interpreter's own
    conversions, OpenSSL's RSA and substitutions only where something changes; done once,
    where dkimpy is first used (the dkim_verify and arc_verify stages)."""
    import dkim
    import dkim.canonicalization
    import dkim.crypto
    dkim.crypto.int2str = _int2str
    dkim.crypto.str2int = _str2int
    dkim.canonicalization.compress_whitespace = _compress_whitespace
    dkim.canonicalization.strip_trailing_whitespace = _strip_trailing_whitespace
    dkim.canonicalization.unfold_header_value = _unfold_header_value
    dkim.RE_BTAG = _BTAG
    if not hasattr(dkim.evaluate_pk, "python_evaluate_pk"):
        dkim.evaluate_pk = _cached_evaluate_pk(dkim.evaluate_pk)
    current = dkim.crypto.RSASSA_PKCS1_v1_5_verify
    if not hasattr(current, "python_verify"):
        fast = _rsassa_pkcs1_v1_5_verify(current)
        dkim.crypto.RSASSA_PKCS1_v1_5_verify = fast
        dkim.RSASSA_PKCS1_v1_5_verify = fast          # dkim/__init__ imported it by name


# Header names dkimpy's rfc822_parse reads as we do: printable ASCII, no colon; blanks before
# the colon (RFC 5322 4.5.3, "Subject :") too, which rfc822_parse refuses though dkimpy's
# canonicalisations handle them (relaxed drops them, RFC 6376 3.4.2).
_PLAIN_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+[\t ]*")


def dkimpy_parts(message: Any) -> tuple[list[list[bytes]], bytes]:
    """What `dkim.rfc822_parse(message.as_bytes())` returns, ([name, value] lists, body), made
    from the fields the session already split instead of splitting the whole message again.

    Built once per message and shared by dkim_verify and arc_verify (`message.views`); each
    call returns new lists (dkimpy's ARC reorders its list). A field dkimpy would read
    differently (a name with other characters, a line break not followed by a blank) sends the
    whole message through rfc822_parse, as before; a body's bare LFs become CRLF, as there."""
    views = getattr(message, "views", None)
    parts = views.get("dkimpy") if views is not None else None
    if parts is None:
        parts = _dkimpy_parse(message)
        if views is not None:
            views["dkimpy"] = parts
    headers, body = parts
    return [[name, value] for name, value in headers], body


def _dkimpy_parse(message: Any) -> tuple[list[tuple[bytes, bytes]], bytes]:
    import dkim
    headers = []
    for header in message.headers:
        value = header.value
        if not _PLAIN_NAME.fullmatch(header.name) or (
                b"\n" in value and value.count(b"\n") != value.count(b"\r\n ") + value.count(b"\r\n\t")):
            found, body = dkim.rfc822_parse(message.as_bytes())
            return [(name, value) for name, value in found], body
        headers.append((header.name.encode("ascii"), value + b"\r\n"))
    body = message.body_bytes()
    if body.count(b"\n") != body.count(b"\r\n"):
        body = b"\r\n".join(_NEWLINE.split(body))          # as rfc822_parse rejoins the lines
    return headers, body


def _quiet(*args: Any, **kwargs: Any) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("dkimpy: %s", args[0] if args else "")


class _Quiet:
    """A logger for dkimpy that keeps its chatter at debug level."""

    debug = info = warning = error = exception = critical = staticmethod(_quiet)

    def isEnabledFor(self, level: int) -> bool:
        return log.isEnabledFor(logging.DEBUG)

    def __getattr__(self, name: str) -> Any:
        return _quiet


def tag_value(value: str, tag: str) -> str | None:
    for part in value.split(";"):
        k, eq, v = part.partition("=")
        if eq and k.strip() == tag:
            return "".join(v.split())
    return None


def tag_values(value: str, tags: tuple[str, ...]) -> dict[str, str]:
    """{tag: tag_value(value, tag)} for those of `tags` present, in one pass over `value`."""
    found: dict[str, str] = {}
    for part in value.split(";"):
        k, eq, v = part.partition("=")
        if eq:
            k = k.strip()
            if k in tags and k not in found:
                found[k] = "".join(v.split())
    return found


_RESULT_TAGS = ("d", "s", "a", "b", "c", "h", "i", "l", "t", "x")


def _prepared(verifier: Any, idx: int) -> tuple[dict, list[bytes], tuple[bytes, bytes]] | None:
    """dkimpy's verify_headerprep for signature `idx` (its tags checked, h= split), with q= read
    as RFC 6376 3.5 says: a colon-separated list of query methods in which unrecognised methods
    MUST be ignored, so "dns/txt" anywhere in it will do; dkimpy wants q= to be exactly
    "dns/txt" and refuses "dns/txt:other". A list without dns/txt names no usable method.
    None when dkimpy does not see signature `idx` (as verify_headerprep)."""
    import dkim
    import dkim.util
    sigheaders = [(x, y) for x, y in verifier.headers if x.lower() == b"dkim-signature"]
    if len(sigheaders) <= idx:
        return None
    try:
        sig = dkim.util.parse_tag_value(sigheaders[idx][1])
    except dkim.util.InvalidTagValueList as e:
        raise dkim.MessageFormatError(e) from None
    if b"q" in sig:
        if b"dns/txt" not in [m.strip() for m in sig[b"q"].split(b":")]:
            raise dkim.ValidationError("q= names no query method we know (RFC 6376 3.5)")
        sig[b"q"] = b"dns/txt"
    dkim.validate_signature_fields(sig)
    verifier.signature_fields, verifier.domain, verifier.selector = sig, sig[b"d"], sig[b"s"]
    include_headers = [x.lower() for x in re.split(rb"\s*:\s*", sig[b"h"])]
    verifier.include_headers = tuple(include_headers)
    return sig, include_headers, sigheaders[idx]


@functools.lru_cache(maxsize=1024)
def _key_tags(record: bytes) -> dict[bytes, bytes]:
    """A key record's tags (a record is parsed once, as _cached_evaluate_pk does)."""
    import dkim.util
    return dkim.util.parse_tag_value(record)


def _verify_one(verifier: Any, idx: int, tags: dict[str, str], dnsfunc: Any) -> tuple[str, str | None]:
    """(result, comment) of signature `idx`, with the RFC checks dkimpy leaves out.

    fail: the hashes or the signature do not match what the message says. permerror: the
    signature or its key cannot be used at all (RFC 6376 6.1.1/6.1.2 PERMFAIL: a syntax error,
    a missing tag, From not signed, x= past, no or an unusable key record); RFC 8601 2.7.1
    keeps fail for signatures that were verified and did not match. policy: RFC 8301 (rsa-sha1,
    keys below dkim_min_key_bits). Tests: tests/milters/test_dkim_differential.py."""
    import dkim
    a = (tags.get("a") or "").lower()
    if a == "rsa-sha1":
        return "policy", "rsa-sha1 is not accepted (RFC 8301)"
    if "h" in tags and "from" not in tags["h"].lower().split(":"):
        return "permerror", "From is not signed"
    records: list[tuple[Any, bytes]] = []

    def recording(name: Any, timeout: float = 5) -> bytes:
        answer = dnsfunc(name, timeout=timeout)
        records.append((name, answer))
        return answer
    t, x = tags.get("t") or "", tags.get("x") or ""
    if t.isdigit() and x.isdigit() and int(x) <= int(t):
        # RFC 6376 3.5: x= MUST be greater than t= (dkimpy refuses only a smaller one)
        return "permerror", "x= is not after t="
    try:
        prepared = _prepared(verifier, idx)
        ok = prepared is not None and verifier.verify_sig(*prepared, recording)
    except TemporaryFailure as e:
        return "temperror", str(e)[:80]
    except dkim.ValidationError as e:
        # dkimpy's syntax checks raise it too: only a body hash that differs is a failure
        if str(e).startswith("body hash mismatch"):
            return "fail", "body hash mismatch"
        return "permerror", str(e)[:60]
    except dkim.KeyFormatError as e:
        if "too small" in str(e):
            return "policy", str(e)[:60]
        return "permerror", str(e)[:60]
    except (dkim.DKIMException, ValueError) as e:
        # dkimpy raises ValueError too on some malformed tags (bh=, t=, an Ed25519 b=):
        # a broken signature is the sender's permerror, never our internal error
        return "permerror", str(e)[:60]
    if not records:
        return ("pass" if ok else "fail"), None
    name, record = records[-1]
    try:
        _, _, ktag, _ = dkim.evaluate_pk(name, record)
        key = _key_tags(record)
    except (dkim.DKIMException, ValueError) as e:
        # dkimpy returns False for a key it cannot use: that is no verification at all
        return "permerror", f"key record: {str(e)[:50]}"
    if ktag is None or not a.startswith(ktag.decode() + "-"):
        return "permerror", "key type does not match a="
    hashes = key.get(b"h")
    if hashes is not None and a.rpartition("-")[2].encode() not in [x.strip().lower() for x in hashes.split(b":")]:
        return "permerror", "key h= excludes the hash of a="
    flags = [x.strip() for x in key.get(b"t", b"").split(b":")]
    i_domain = (tags.get("i") or "").rpartition("@")[2].lower()
    if b"s" in flags and i_domain and i_domain != (tags.get("d") or "").lower():
        return "permerror", "key t=s: i= must be in d= itself"
    if not ok:
        return "fail", None
    if "l" in tags:
        canon = dkim.CanonicalizationPolicy.from_c_value((tags.get("c") or "simple/simple").encode())
        if int(tags["l"]) > len(canon.canonicalize_body(verifier.body)):
            return "fail", "l= is beyond the body"
    return "pass", f"{verifier.keysize}-bit key" if verifier.keysize else None


class DkimVerify(Stage):
    name = "dkim_verify"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        speed_up_dkimpy()

    def check(self, message: Any, report: StageReport) -> None:
        import dkim
        sigs = message.get_all("DKIM-Signature")
        report.data["dkim"] = []
        if not sigs:
            report.auth_result("dkim", "none")
            report.symbol("DKIM_NONE", 0.0)
            return
        if message.truncated:
            report.auth_result("dkim", "neutral", comment="message too large to verify")
            return
        verifier = dkim.DKIM(None, logger=_Quiet(), minkey=self.settings.dkim_min_key_bits,
                             timeout=self.settings.dns_timeout)
        try:
            verifier.headers, verifier.body = dkimpy_parts(message)
        except dkim.MessageFormatError as e:
            unparsable: str | None = str(e)[:60]      # no signature can be verified: permerror
        else:
            unparsable = None
        dnsfunc = mdns.dkim_dnsfunc(self.services.resolver, self.settings.milter_dns_txt_size_limit)
        limit = self.settings.dkim_verify_signature_limit
        passed, failed, temp = [], 0, 0
        for idx, sig in enumerate(sigs):
            text = sig.text
            tags = tag_values(text, _RESULT_TAGS)
            d = tags.get("d") or ""
            props = dict(header_d=d or None, header_s=tags.get("s"),
                         header_a=tags.get("a"), header_b=(tags.get("b") or "")[:8] or None)
            if idx >= limit:
                report.auth_result("dkim", "neutral", comment="signature limit reached", **props)
                continue
            if unparsable is not None:
                result, comment = "permerror", unparsable
            else:
                result, comment = _verify_one(verifier, idx, tags, dnsfunc)
            report.auth_result("dkim", result, comment=comment, **props)
            if result == "pass":
                passed.append(d.lower())
            elif result == "temperror":
                temp += 1
            else:
                failed += 1
        report.data["dkim"] = passed
        report.data["dkim_temperror"] = temp > 0
        if passed:
            report.symbol("DKIM_VALID", 0.0, ",".join(passed))
        elif temp:
            report.symbol("DKIM_TEMPERROR", 0.0)
        elif failed:
            report.symbol("DKIM_INVALID", self.settings.dkim_invalid_score)
