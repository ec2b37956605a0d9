"""Stage `arc_seal`: add an ARC set (RFC 8617) over the message and our Authentication-Results.

Put it after `authres` (it seals the A-R header that stage is adding) and after
`arc_verify` (whose result becomes cv=). Uses dkimpy's ARC signer with an RSA key from
`dkim_key_directory/ARC_SEAL_DOMAIN.ARC_SEAL_SELECTOR.key`. Optional: configure
arc_seal_domain and arc_seal_selector and list the stage.
It seals the header as it leaves (the edits of the stages before it applied) and folds the AAR
within 78 columns. Talks to: the file system at start. Tests: tests/milters/test_auth_stages.py
(seal, then verify), tests/milters/test_sign_differential.py (against Rspamd, both directions).
"""

from __future__ import annotations

from typing import Any

from owlery.settings import Str, setting

from milters import dkimkeys
from milters.effects import StageReport, fold
from milters.stages import ConfigError, Stage
from milters.stages.authres import authserv_id
from milters.stages.dkim_sign import outgoing_headers
from milters.stages.dkim_verify import _Quiet

ARC_SEAL_DOMAIN = setting("arc_seal_domain", Str, None, "Domain (d=) of our ARC seals.")
ARC_SEAL_SELECTOR = setting("arc_seal_selector", Str, None, "Selector (s=) of our ARC seals (an RSA key).")


class ArcSeal(Stage):
    name = "arc_seal"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        if settings.arc_seal_domain is None or settings.arc_seal_selector is None:
            raise ConfigError("stage arc_seal needs arc_seal_domain and arc_seal_selector")
        path = dkimkeys.key_path(settings.dkim_key_directory, settings.arc_seal_domain,
                                 settings.arc_seal_selector)
        try:
            key = dkimkeys.load_key(path, settings.arc_seal_domain, settings.arc_seal_selector,
                                    settings.dkim_min_key_bits, owner=dkimkeys.KeyOwner.from_settings(settings))
            with open(path, "rb") as f:
                self.pem = f.read()
        except OSError as e:
            raise ConfigError(f"arc_seal: cannot read {path}: {e.strerror}") from None
        except ValueError as e:
            raise ConfigError(f"arc_seal: {e}") from None
        if key.algorithm != "rsa-sha256":
            raise ConfigError("arc_seal: ARC needs an RSA key")

    def check(self, message: Any, report: StageReport) -> None:
        import dkim
        if message.truncated:
            return
        # Seal what leaves: the received fields with the edits of the stages before this one
        # (our A-R on top, forged ones removed, a changed Subject...).
        fields = outgoing_headers(message, report)
        raw = b"".join(n + b":" + v + b"\r\n" for n, v in fields) + b"\r\n" + message.body_bytes()
        srv_id = authserv_id(self.settings, message).encode()
        signer = dkim.ARC(raw, logger=_Quiet(), minkey=self.settings.dkim_min_key_bits)
        headers = signer.sign(self.settings.arc_seal_selector.encode(),
                              self.settings.arc_seal_domain.encode(), self.pem, srv_id,
                              timestamp=int(self.services.now()))
        # dkimpy returns [ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results];
        # inserting each at the top in reverse keeps that order at the top of the message.
        for line in reversed(headers):
            name, _, value = line.decode("ascii").partition(":")
            value = value.strip().replace("\r\n", "\n")
            if name == "ARC-Authentication-Results":
                # a fold before existing white space is one relaxed canonicalisation undoes, so
                # the ARC-Seal over the AAR (RFC 8617 5.1.1) still holds; dkimpy writes one
                # resinfo per line, often 80-90 octets (RFC 5322 2.1.1: SHOULD stay within 78)
                value = fold(name, value)
            report.add_header(name, value)
