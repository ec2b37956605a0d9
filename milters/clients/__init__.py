"""Clients for the scanners the content stages consult: clamd (ClamAV) and spamd (SpamAssassin).

Blocking, deadline-bounded clients meant to run in libmilter's per-connection thread.
Tests: tests/milters/test_content_clients.py (fake sockets and real servers).
"""

from __future__ import annotations

from owlery.errors import TemporaryFailure
from owlery.reply import Reply


class ScannerUnavailable(TemporaryFailure):
    """A scanner did not answer in time, refused the connection or spoke nonsense."""

    reply = Reply(451, "4.7.1", "Content scanner temporarily unavailable, please try again later")
