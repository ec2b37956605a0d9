"""One message through a real MilterSession with a fixed list of stages, as Postfix would call it.

`FixedPipeline(stages, on_error)` is the pipeline the session asks: always those stages; a
stage that fails answers `on_error`. `run_session(settings, stages, raw, ...)` connects,
says HELO, MAIL FROM <alice@sender.test>, one RCPT per address (macro i = queue_id), sends
the header fields of `raw` one by one and its body (whole, or in `chunk`-byte pieces) and
returns end_of_message's outcome. `run_alone(settings, stage, raw)` is the short way for one
stage: no HELO, DATA or end of headers, and the stage is closed afterwards.
"""

from __future__ import annotations

from milters.session import MilterSession
from milters.testing import split_message

NOW = 1_800_000_000.0          # Fri, 15 Jan 2027 08:00:00 +0000


class FixedPipeline:
    def __init__(self, stages, on_error="tempfail"):
        self.stages = stages
        self.policy = on_error

    def select(self, message):
        return self.stages

    def on_error(self, name):
        return self.policy


def run_session(settings, stages, raw, *, rcpts=("bob@example.test",), client=("mx.sender.test", "203.0.113.5"),
                helo="mx.sender.test", mta="mx.owlery.test", queue_id="QID1", on_error="tempfail", chunk=None,
                macros=None, now=NOW):
    session = MilterSession(settings, FixedPipeline(stages, on_error), now=lambda: now)
    session.connect(client[0], client[1], {"j": mta})
    session.helo(helo, {})
    session.mail_from("<alice@sender.test>", (), {})
    for r in rcpts:
        session.rcpt(f"<{r}>", (), {"i": queue_id})
    session.data({})
    fields, body = split_message(raw)
    for name, value in fields:
        session.header(name, value)
    session.end_of_headers({})
    for piece in [body[i:i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]:
        session.body(piece)
    return session.end_of_message(macros or {})


def run_alone(settings, stage, raw):
    session = MilterSession(settings, FixedPipeline([stage]))
    session.connect("c.test", "192.0.2.1", {})
    session.mail_from("<a@sender.test>", (), {})
    session.rcpt("<b@example.test>", (), {"i": "Q1"})
    fields, body = split_message(raw)
    for name, value in fields:
        session.header(name, value)
    session.body(body)
    try:
        return session.end_of_message({})
    finally:
        stage.close()
