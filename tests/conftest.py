"""Shared pytest set-up: the real-server fixtures live in tests/harness/fixtures.py."""

pytest_plugins = ["tests.harness.fixtures"]
