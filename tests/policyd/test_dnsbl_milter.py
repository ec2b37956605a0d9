"""The milter's DNSBL evidence (spam stage, RBL_<ZONE>) uses the same site parser and error filter as policyd.

Before the shared parser, any 127.x answer was a listing: a resolver refused by Spamhaus
(127.255.255.254) put RBL_ZEN_* on every message. Here the stage's evidence step runs
against the DNS stub with a fake message and report.
"""

from __future__ import annotations

import ipaddress
import logging
import types

import pytest

from milters.stages.spam import SpamStage
from owlery.settings import Settings, SettingsError


class Report:
    def __init__(self):
        self.symbols: dict[str, tuple[float, str]] = {}

    def symbol(self, name, score, detail=""):
        self.symbols[name] = (score, detail)


def evidence(zones, resolver, client="81.2.69.142", **overrides):
    s = Settings().replace(spam_dnsbl_zones=zones, spam_use_spamd=False, **overrides)
    stage = SpamStage(s, types.SimpleNamespace(resolver=resolver))
    message = types.SimpleNamespace(client_ip=lambda: ipaddress.ip_address(client), queue_id="QID1")
    report = Report()
    stage._dnsbl_evidence(message, report)
    return report.symbols


@pytest.fixture
def zone(dns_zone):
    dns_zone.add("142.69.2.81.refused.example", "A", "127.255.255.254")
    dns_zone.add("142.69.2.81.outside.example", "A", "192.0.2.1")
    dns_zone.add("142.69.2.81.bl.example", "A", "127.0.0.2")
    dns_zone.add("142.69.2.81.bl.example", "A", "127.0.0.4")
    dns_zone.add("142.69.2.81.wl.example", "A", "127.0.10.2")
    return dns_zone


def test_error_answers_add_no_symbol(zone, caplog):
    caplog.set_level(logging.WARNING, "owlery.milter")
    got = evidence(["refused.example", "outside.example"], zone.resolver())
    assert got == {}
    assert "DNSBL refused.example: error answer 127.255.255.254; not counted" in caplog.text
    assert "DNSBL outside.example: error answer 192.0.2.1; not counted" in caplog.text


def test_plain_zone_still_scores_as_before(zone):
    got = evidence(["bl.example"], zone.resolver())
    assert got["RBL_BL_EXAMPLE"][0] == 3.0       # spam_evidence_scores RBL default, weight 1
    assert got["RBL_BL_EXAMPLE"][1] == "81.2.69.142 listed in bl.example (127.0.0.2,127.0.0.4)"


def test_filters_and_weights(zone):
    resolver = zone.resolver()
    assert evidence(["bl.example=127.0.0.3"], resolver) == {}
    got = evidence(["bl.example=127.0.0.[2..3]*2", "bl.example=127.0.0.4"], resolver)
    assert got["RBL_BL_EXAMPLE"][0] == 9.0       # 3.0 x (2 + 1): each entry counted once
    got = evidence(["wl.example=127.0.[0..255].[1..3]*-1"], resolver,
                   spam_evidence_scores={"RBL_WL_EXAMPLE": 2.0})
    assert got["RBL_WL_EXAMPLE"][0] == -2.0      # a DNSWL is negative evidence


def test_timeout_is_no_symbol_and_bad_entries_are_refused(zone):
    zone.drop("142.69.2.81.bl.example")
    assert evidence(["bl.example"], zone.resolver(lifetime=0.2)) == {}
    with pytest.raises(SettingsError, match="numeric range error"):
        Settings().replace(spam_dnsbl_zones=["bl.example=127.0.0.[4..2]"])
