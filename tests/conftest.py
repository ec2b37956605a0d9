"""Shared pytest set-up: the real-server fixtures live in tests/harness/fixtures.py.

Hypothesis runs derandomized by default (the same examples on every run, no example
database, no deadline: a loaded CI machine must not fail a test for being slow), so the
suite gives the same answer every time; for a longer, random hunt run e.g.
`HYPOTHESIS_PROFILE=hunt scripts/test tests/sieve/test_fuzz.py`.
"""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.harness.fixtures"]

settings.register_profile("ci", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("hunt", max_examples=20_000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
