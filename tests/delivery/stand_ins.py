"""Stand-ins for what lmtpd and the milter open and must close once: they count close() calls."""

from __future__ import annotations


class Closable:
    """A directory, state store or quarantine store: `closed` counts close() calls."""

    def __init__(self):
        self.closed = 0

    def close(self):
        self.closed += 1


class ResolverStandIn:
    """A UserResolver as lmtpd holds it: only its `directory` (a Closable)."""

    def __init__(self):
        self.directory = Closable()
