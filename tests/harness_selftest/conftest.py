"""Loads the harness fixtures for the harness self-tests when tests/conftest.py does not."""

PLUGIN = "tests.harness.fixtures"


def pytest_configure(config):
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
