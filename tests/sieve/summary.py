"""Lines the conformance test leaves for the terminal summary (tests/sieve/conftest.py)."""

LINES: list[str] = []
