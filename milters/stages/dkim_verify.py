"""Stage `dkim_verify`: verify every DKIM signature of a message (dkimpy, injected DNS).

Each signature gives one `dkim=` result (pass, fail, neutral, temperror, permerror) with
header.d, header.s, header.a and header.b; no signature gives `dkim=none`. The passing
domains go to `report.data["dkim"]` for the dmarc stage. Symbols: DKIM_VALID,
DKIM_INVALID, DKIM_TEMPERROR, DKIM_NONE. At most `dkim_verify_signature_limit` signatures
are checked.
Talks to: DNS (through milters.dns). Tests: tests/milters/test_auth_stages.py,
tests/milters/test_dkim_interop.py (OpenDKIM's signatures).
"""

from __future__ import annotations

import logging
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


def speed_up_dkimpy() -> None:
    """dkimpy does RSA in Python and converts each 2048-bit number byte by byte: about 0.3 ms
    of every verification (and signature). The same results, from the interpreter's own
    conversions; done once, where dkimpy is first used."""
    import dkim.crypto
    dkim.crypto.int2str = _int2str
    dkim.crypto.str2int = _str2int


class _Quiet:
    """A logger for dkimpy that keeps its chatter at debug level."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: log.debug("dkimpy: %s", a[0] if a else "")


def tag_value(value: str, tag: str) -> str | None:
    for part in value.split(";"):
        k, eq, v = part.partition("=")
        if eq and k.strip() == tag:
            return "".join(v.split())
    return None


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
        raw = message.as_bytes()
        verifier = dkim.DKIM(raw, logger=_Quiet(), minkey=self.settings.dkim_min_key_bits,
                             timeout=self.settings.dns_timeout)
        dnsfunc = mdns.dkim_dnsfunc(self.services.resolver, self.settings.milter_dns_txt_size_limit)
        limit = self.settings.dkim_verify_signature_limit
        passed, failed, temp = [], 0, 0
        for idx, sig in enumerate(sigs):
            text = sig.text
            d = tag_value(text, "d") or ""
            props = dict(header_d=d or None, header_s=tag_value(text, "s"),
                         header_a=tag_value(text, "a"), header_b=(tag_value(text, "b") or "")[:8] or None)
            if idx >= limit:
                report.auth_result("dkim", "neutral", comment="signature limit reached", **props)
                continue
            try:
                ok = verifier.verify(idx=idx, dnsfunc=dnsfunc)
                result = "pass" if ok else "fail"
                comment = f"{verifier.keysize}-bit key" if ok and verifier.keysize else None
            except TemporaryFailure as e:
                result, comment = "temperror", str(e)[:80]
            except dkim.ValidationError as e:
                # body hash mismatch, bad signature, expired: the signature fails
                result, comment = "fail", str(e).split(" got ")[0][:60]
            except (dkim.DKIMException, ValueError) as e:
                # dkimpy raises ValueError too on some malformed tags (bh=, t=, an Ed25519 b=):
                # a broken signature is the sender's permerror, never our internal error
                result, comment = "permerror", str(e)[:60]
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
