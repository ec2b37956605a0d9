"""Stage `arc_seal`: add an ARC set (RFC 8617) over the message and our Authentication-Results.

Put it after `authres` (it seals the A-R header that stage is adding) and after
`arc_verify` (whose result becomes cv=). Uses dkimpy's ARC signer with an RSA key from
`dkim_key_directory/ARC_SEAL_DOMAIN.ARC_SEAL_SELECTOR.key`. Optional: configure
arc_seal_domain and arc_seal_selector and list the stage.
Talks to: the file system at start. Tests: tests/milters/test_auth_stages.py (seal, then verify).
"""

from __future__ import annotations

from typing import Any

from owlery.settings import Str, setting

from milters import dkimkeys
from milters.effects import AddHeader, ChangeHeader, StageReport
from milters.stages import ConfigError, Stage
from milters.stages.authres import authserv_id
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
        removed = {(e.name.lower(), e.occurrence) for e in report.effects
                   if isinstance(e, ChangeHeader) and e.value is None}
        seen: dict[str, int] = {}
        kept = []
        for h in message.headers:
            n = seen[h.name.lower()] = seen.get(h.name.lower(), 0) + 1
            if (h.name.lower(), n) not in removed:
                kept.append(h.raw)
        added = [f"{e.name}: {e.value}".replace("\n", "\r\n").encode() + b"\r\n"
                 for e in reversed(report.effects) if isinstance(e, AddHeader) and e.index == 0]
        raw = b"".join(added) + b"".join(kept) + b"\r\n" + message.body_bytes()
        srv_id = authserv_id(self.settings, message).encode()
        signer = dkim.ARC(raw, logger=_Quiet(), minkey=self.settings.dkim_min_key_bits)
        headers = signer.sign(self.settings.arc_seal_selector.encode(),
                              self.settings.arc_seal_domain.encode(), self.pem, srv_id,
                              timestamp=int(self.services.now()))
        # dkimpy returns [ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results];
        # inserting each at the top in reverse keeps that order at the top of the message.
        for line in reversed(headers):
            name, _, value = line.decode("ascii").partition(":")
            report.add_header(name, value.strip().replace("\r\n", "\n"))
