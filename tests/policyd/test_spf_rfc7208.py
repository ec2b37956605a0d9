"""RFC 7208 conformance: the openspf.org YAML suite through Owlery's SPF evaluation.

Reads <repo>/../shared/conformance/spf/rfc7208-tests.yml at run time (fails if missing),
answers DNS from each scenario's zonedata (TIMEOUT markers included) and compares the
result (and explanation, where given) with the suite's. Prints the totals.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from owlery.dns import evaluate
from tests.policyd.spf_zone import zone_lookup

SUITE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "spf" / "rfc7208-tests.yml"


def load_cases():
    if not SUITE.exists():
        return [pytest.param(None, None, None, id="suite-missing")]
    cases = []
    with open(SUITE, encoding="utf-8") as f:
        for scenario in yaml.safe_load_all(f):
            if not scenario:
                continue
            for name, test in scenario["tests"].items():
                cases.append(pytest.param(scenario, name, test, id=name))
    return cases


CASES = load_cases()
_totals = {"passed": 0, "failed": 0}


@pytest.mark.parametrize("scenario,name,test", CASES)
def test_rfc7208_case(scenario, name, test):
    assert SUITE.exists(), f"SPF conformance suite not found at {SUITE.resolve()}"
    expected = test["result"]
    expected = expected if isinstance(expected, list) else [expected]
    r = evaluate(zone_lookup(scenario.get("zonedata")), ip=test["host"], sender=test.get("mailfrom", ""),
                 helo=test.get("helo", ""), query_time_limit=20, receiver="receiver.example",
                 default_explanation="DEFAULT")
    ok = r.result in expected and ("explanation" not in test or r.explanation == test["explanation"])
    _totals["passed" if ok else "failed"] += 1
    assert r.result in expected, f"{name}: got {r.result}, expected {expected} ({scenario['description']})"
    if "explanation" in test:
        assert r.explanation == test["explanation"], name


def test_zz_print_totals():
    total = _totals["passed"] + _totals["failed"]
    print(f"\nRFC 7208 suite: {_totals['passed']}/{total} cases pass ({_totals['failed']} failed), "
          f"{len(CASES)} in the suite")
    assert len(CASES) > 100
