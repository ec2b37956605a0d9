"""Shared pytest set-up: the real-server fixtures live in tests/harness/fixtures.py.

Hypothesis runs derandomized by default (the same examples on every run, no example
database, no deadline: a loaded CI machine must not fail a test for being slow), so the
suite gives the same answer every time; for a longer, random hunt run e.g.
`HYPOTHESIS_PROFILE=hunt scripts/test tests/sieve/test_fuzz.py`.
"""

import logging
import os

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.harness.fixtures"]

settings.register_profile("ci", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("hunt", max_examples=20_000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _owlery_logging_left_as_found():
    """A test that runs an `owlery` command in-process gets the command's stderr handler on
    the root logger (owlery.log.setup), writing to that test's captured stderr; left there,
    a later test's command logs through it after pytest closed that stream ("Logging error",
    ValueError: I/O operation on closed file). Handlers and the root level are put back as
    the test found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers and getattr(handler, "_owlery", False):
            root.removeHandler(handler)
    for handler in handlers:
        if getattr(handler, "_owlery", False) and handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
