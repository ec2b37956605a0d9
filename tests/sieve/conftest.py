"""Sieve test set-up: prints the conformance totals in the terminal summary (so CI logs
show them whatever the capture mode)."""

from tests.sieve import summary


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if summary.LINES:
        terminalreporter.section("Sieve conformance (Pigeonhole testsuite)")
        for line in summary.LINES:
            terminalreporter.write_line(line)
