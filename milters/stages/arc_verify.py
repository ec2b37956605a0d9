"""Stage `arc_verify`: validate the ARC chain (RFC 8617) with dkimpy over the injected DNS.

Records `arc=pass|fail|none` (temperror when DNS fails) and leaves the chain validation
status in `report.data["arc"]` for arc_seal. Symbols: ARC_VALID, ARC_INVALID.
Talks to: DNS (through milters.dns). Tests: tests/milters/test_auth_stages.py (seal, then verify).
"""

from __future__ import annotations

from typing import Any

from owlery.errors import TemporaryFailure
from owlery.settings import Float, setting

from milters import dns as mdns
from milters.effects import StageReport
from milters.stages import Stage
from milters.stages.dkim_verify import _Quiet, dkimpy_parts, speed_up_dkimpy

ARC_INVALID_SCORE = setting(
    "arc_invalid_score", Float, 1.0,
    "Score of symbol ARC_INVALID (an ARC chain is present and does not validate).")


class ArcVerify(Stage):
    name = "arc_verify"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        speed_up_dkimpy()

    def check(self, message: Any, report: StageReport) -> None:
        import dkim
        if not message.get_all("ARC-Seal"):
            report.data["arc"] = "none"
            report.auth_result("arc", "none")
            return
        dnsfunc = mdns.dkim_dnsfunc(self.services.resolver, self.settings.milter_dns_txt_size_limit)
        verifier = dkim.ARC(None, logger=_Quiet(), minkey=self.settings.dkim_min_key_bits)
        verifier.headers, verifier.body = dkimpy_parts(message)     # parsed once, with dkim_verify
        try:
            cv, results, reason = verifier.verify(dnsfunc=dnsfunc)
        except TemporaryFailure as e:
            report.data["arc"] = "temperror"
            report.auth_result("arc", "temperror", comment=str(e)[:80])
            return
        except (dkim.DKIMException, ValueError, IndexError, KeyError) as e:
            # dkimpy raises ValueError on some bad tags, and IndexError or KeyError on others (an
            # AMS whose i= holds an upper-case letter, i=1X: it looks the tag up lower-cased): a
            # set the sender broke is a failed chain (RFC 8617 5.2), not an internal error
            cv, results, reason = dkim.CV_Fail, [], str(e) or e.__class__.__name__
        status = {dkim.CV_Pass: "pass", dkim.CV_Fail: "fail", dkim.CV_None: "none"}.get(cv, "fail")
        report.data["arc"] = status
        instances = len(results)
        report.auth_result("arc", status, comment=f"i={instances}" if status == "pass" else reason[:80])
        if status == "pass":
            report.symbol("ARC_VALID", 0.0, f"i={instances}")
        elif status == "fail":
            report.symbol("ARC_INVALID", self.settings.arc_invalid_score, reason[:80])
