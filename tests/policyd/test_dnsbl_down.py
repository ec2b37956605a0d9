"""A list that is down: after dnsbl_down_after failed lookups in a row it is skipped (read as not
listed, no wait), probed once per dnsbl_down_retry, and back at its first answer.

Against the in-process DNS stub, through the pipeline with the inline executor (as
tests/policyd/test_dnsbl.py).
"""

from __future__ import annotations

import logging

from owlery import dnsbl as core
from tests.policyd import test_dnsbl
from tests.policyd.test_dnsbl import T0, make, run

zone = test_dnsbl.zone       # the DNS stub with test_dnsbl's records, as a fixture here too

SITES = ["bl.example=127.0.0.[2..11]*2"]


def asked(dns, client: str) -> bool:
    name = core.ip_query_name(client, "bl.example")
    return any(q == name for q, _ in dns.queries)


def test_a_failing_list_is_skipped_then_probed_and_comes_back(zone, caplog):
    caplog.set_level(logging.WARNING, "owlery.policyd")
    pipe = make(zone, dnsbl_sites=SITES, dnsbl_down_after=2, dnsbl_down_retry=30)
    for last in ("20", "21", "22", "10"):
        zone.fail(f"{last}.2.0.192.bl.example")
    for i, last in enumerate(("20", "21")):
        d, score = run(pipe, T0 + i, client_address=f"192.0.2.{last}")
        assert d.action.verb == "DUNNO" and score.errors == (("bl.example", "server failure"),)
    assert "list bl.example is down (2 failed lookups in a row)" in caplog.text
    # down: no lookup goes out, the client is not held up and is read as not listed
    zone.queries.clear()
    d, score = run(pipe, T0 + 5, client_address="192.0.2.22")
    assert d.action.verb == "DUNNO" and score.errors == (("bl.example", "list down"),)
    assert zone.queries == []
    # the probe, once the retry period is over, finds the list answering again
    zone.remove("10.2.0.192.bl.example")
    zone.add("10.2.0.192.bl.example", "A", "127.0.0.2")
    d, _ = run(pipe, T0 + 1 + 30, client_address="192.0.2.10")
    assert d.action.render().startswith("554 5.7.1") and asked(zone, "192.0.2.10")
    assert "list bl.example answers again" in caplog.text
    zone.remove("22.2.0.192.bl.example")
    zone.queries.clear()
    d, score = run(pipe, T0 + 32, client_address="192.0.2.22")
    assert asked(zone, "192.0.2.22") and score.errors == ()


def test_a_skipped_answer_is_not_cached(zone):
    pipe = make(zone, dnsbl_sites=SITES, dnsbl_down_after=1, dnsbl_down_retry=30)
    zone.fail("10.2.0.192.bl.example")
    run(pipe, T0, client_address="192.0.2.10")                  # marks the list down
    assert run(pipe, T0 + 1, client_address="192.0.2.10")[1].errors == (("bl.example", "list down"),)
    zone.remove("10.2.0.192.bl.example")
    zone.add("10.2.0.192.bl.example", "A", "127.0.0.2")
    d, _ = run(pipe, T0 + 31, client_address="192.0.2.10")     # probe: a fresh lookup, listed
    assert d.action.render().startswith("554 5.7.1")


def test_one_answer_resets_the_count_and_zero_never_skips():
    health = core.ListHealth(down_after=2, retry=10)
    assert not health.failed("bl", 0) and not health.answered("bl")
    assert not health.failed("bl", 1)                        # the answer in between reset the count
    assert health.failed("bl", 2) and health.down() == ["bl"]
    assert health.skipped("bl", 3) and not health.skipped("other", 3)
    assert not health.skipped("bl", 12) and health.skipped("bl", 13)   # one probe per period
    assert health.answered("bl") and health.down() == []
    never = core.ListHealth(down_after=0, retry=10)
    assert not any(never.failed("bl", t) for t in range(100)) and not never.skipped("bl", 100)
