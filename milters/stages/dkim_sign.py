"""Stage `dkim_sign`: DKIM-sign outbound mail (relaxed/relaxed, From oversigned, RSA and/or Ed25519).

The signing domain is the From header's domain, or its nearest parent listed in
`dkim_sign_keys` (domain -> selectors). Each selector's key file is
`dkim_key_directory/DOMAIN.SELECTOR.key` (see `owlery dkim genkey`); listing an RSA and an
Ed25519 selector signs twice. The fields signed are the ones that leave: with the header edits
of the stages listed before this one (`outgoing_headers`). Keys are loaded once at start, so a
bad key stops the milter with a clear message instead of failing mail later. Run it only for
outbound mail (it is in `milter_outbound_stages`).
Talks to: the file system at start. Tests: tests/milters/test_auth_stages.py,
tests/milters/test_units.py (a missing key stops the milter), tests/milters/test_dkim_interop.py,
tests/milters/test_sign_differential.py (odd messages against OpenDKIM and Rspamd; header edits of
earlier stages are signed).
"""

from __future__ import annotations

import email.utils
import logging
from typing import Any

from owlery.settings import Int, Str, StrList, list_of, matching, setting, table_of

from milters import dkimkeys
from milters.effects import AddHeader, ChangeHeader, StageReport
from milters.stages import ConfigError, Stage

DKIM_KEY_DIRECTORY = setting(
    "dkim_key_directory", Str, "/etc/owlery/dkim",
    "Directory of DKIM private keys named DOMAIN.SELECTOR.key (mode 0600).")
DKIM_SIGN_KEYS = setting(
    "dkim_sign_keys",
    table_of(list_of(matching(dkimkeys._SELECTOR_RE.pattern, "a DKIM selector"), non_empty=True),
             keys=matching(dkimkeys._DOMAIN_RE.pattern, "a domain name"),
             name="table of domain = [selectors]"), {},
    "Signing selectors by domain, e.g. { \"example.org\" = [\"2025r\", \"2025e\"] }: one "
    "signature per selector (an RSA and an Ed25519 key give a dual signature).")
DKIM_SIGN_HEADERS = setting(
    "dkim_sign_headers", StrList,
    ["from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc", "mime-version",
     "content-type", "content-transfer-encoding", "content-disposition", "in-reply-to",
     "references", "list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post",
     "list-subscribe", "list-post", "list-owner", "list-archive"],
    "Header fields signed (each present instance).")
DKIM_OVERSIGN_HEADERS = setting(
    "dkim_oversign_headers", StrList, ["from"],
    "Header fields signed once more than present, so that none can be added later.")
DKIM_MIN_KEY_BITS = setting(
    "dkim_min_key_bits", Int, 1024,
    "Smallest RSA key used for signing or accepted when verifying.", unit="bits")

log = logging.getLogger("owlery.milter")


def from_domain(message: Any) -> str | None:
    """The domain of the single From address, lower-cased; None if absent or ambiguous."""
    froms = message.get_all("From")
    if len(froms) != 1:
        return None
    addresses = [a for _, a in email.utils.getaddresses([froms[0].text]) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    return addresses[0].rsplit("@", 1)[1].strip().rstrip(".").lower() or None


def outgoing_headers(message: Any, report: StageReport) -> list[tuple[bytes, bytes]]:
    """The header fields as the MTA will pass them on: the received ones with the edits the stages
    so far asked for (report.effects, in the order the adapter hands them to the MTA: an insert at
    its index, None appends; a change or deletion hits the n-th field of that name). (name, value)
    with the value as sent: a leading space (we negotiate P_HDR_LEADSPC) and CRLF folds."""
    out = [(h.name.encode("ascii", "surrogateescape"), h.value) for h in message.headers]
    for e in report.effects:
        if isinstance(e, AddHeader):
            field = (e.name.encode("ascii"), _wire_value(e.value))
            if e.index is None:
                out.append(field)
            else:
                out.insert(e.index, field)
        elif isinstance(e, ChangeHeader):
            name = e.name.lower().encode("ascii")
            hits = [i for i, (n, _) in enumerate(out) if n.lower() == name]
            if e.occurrence - 1 < len(hits):
                i = hits[e.occurrence - 1]
                if e.value is None:
                    del out[i]
                else:
                    out[i] = (out[i][0], _wire_value(e.value))
            elif e.value is not None:                # the MTA adds a field it cannot find
                out.append((e.name.encode("ascii"), _wire_value(e.value)))
    return out


def _wire_value(value: str) -> bytes:
    return b" " + value.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")


class DkimSign(Stage):
    name = "dkim_sign"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        self.keys: dict[str, list[dkimkeys.SigningKey]] = {}
        for domain, selectors in settings.dkim_sign_keys.items():
            loaded = []
            for selector in selectors:
                path = dkimkeys.key_path(settings.dkim_key_directory, domain, selector)
                try:
                    loaded.append(dkimkeys.load_key(path, domain.lower(), selector, settings.dkim_min_key_bits,
                                                    owner=dkimkeys.KeyOwner.from_settings(settings)))
                except OSError as e:
                    raise ConfigError(f"dkim_sign_keys.{domain}: cannot read {path}: {e.strerror}") from None
                except ValueError as e:
                    raise ConfigError(f"dkim_sign_keys.{domain}: {e}") from None
            self.keys[domain.lower()] = loaded

    def keys_for(self, domain: str) -> list[dkimkeys.SigningKey]:
        labels = domain.split(".")
        for i in range(len(labels) - 1):
            found = self.keys.get(".".join(labels[i:]))
            if found:
                return found
        return []

    def check(self, message: Any, report: StageReport) -> None:
        domain = from_domain(message)
        if domain is None:
            report.data["dkim_sign"] = "no single From address"
            return
        keys = self.keys_for(domain)
        if not keys:
            report.data["dkim_sign"] = f"no key for {domain}"
            return
        if message.truncated:
            log.warning("milter: %s: not signed: message larger than milter_message_size_limit",
                        message.queue_id or "NOQUEUE")
            report.data["dkim_sign"] = "message too large"
            return
        # Sign what leaves: with the header edits of the stages before this one (a Subject tag...)
        headers = outgoing_headers(message, report)
        h_list = dkimkeys.select_headers(headers, self.settings.dkim_sign_headers,
                                         self.settings.dkim_oversign_headers)
        bh = dkimkeys.body_hash(message.iter_body())
        now = self.services.now()
        signed = []
        # Inserted at the top one after the other: the last added ends up first.
        for key in keys:
            report.add_header("DKIM-Signature", dkimkeys.sign(key, headers, bh, h_list, now))
            signed.append(f"{key.domain}/{key.selector}/{key.algorithm}")
        report.data["dkim_sign"] = "signed " + ",".join(signed)
