"""Test helpers for milters: a fake libmilter context and a driver that feeds a message.

`FakeMilterContext` stands in for pymilter's C context (pymilter's TestCtx cannot
quarantine and answers no-reply callbacks oddly): it records header edits, replies,
quarantine reasons and removed recipients, and serves macros. `drive(milter, ...)` runs one message through a
milter instance in libmilter order and returns the EOM code. Used by tests/milters/ and
by the content-stage tests; no pymilter import here (the milter instance brings it).
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any


@dataclasses.dataclass
class FakeMilterContext:
    """Records what a milter asked the MTA to do."""

    macros: dict[str, str] = dataclasses.field(default_factory=dict)
    added: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)      # (name, value, idx)
    changed: list[tuple[str, int, str | None]] = dataclasses.field(default_factory=list)
    replies: list[tuple[str, str | None, str | None]] = dataclasses.field(default_factory=list)
    quarantined: list[str] = dataclasses.field(default_factory=list)
    deleted_rcpts: list[str] = dataclasses.field(default_factory=list)
    progress_calls: int = 0
    symlists: dict[int, str] = dataclasses.field(default_factory=dict)
    _priv: Any = None

    # the C context's API
    def getpriv(self) -> Any:
        return self._priv

    def setpriv(self, priv: Any) -> None:
        self._priv = priv

    def getsymval(self, name: str) -> str | None:
        return self.macros.get(name)

    def setreply(self, rcode: str, xcode: str | None, msg: str | None, *more: str) -> None:
        self.replies.append((rcode, xcode, msg))

    def addheader(self, name: str, value: str, idx: int = -1) -> None:
        self.added.append((name, value, idx))

    def chgheader(self, name: str, idx: int, value: str | None) -> None:
        self.changed.append((name, idx, value))

    def quarantine(self, reason: str) -> None:
        self.quarantined.append(reason)

    def delrcpt(self, rcpt: str) -> None:
        self.deleted_rcpts.append(rcpt)

    def progress(self) -> None:
        self.progress_calls += 1

    def setsymlist(self, stage: int, macros: str) -> None:
        if not isinstance(macros, str):      # as pymilter's C context: bytes raise TypeError
            raise TypeError(f"setsymlist() argument 2 must be str, not {type(macros).__name__}")
        self.symlists[stage] = macros

    # reading results back
    def header_value(self, name: str) -> str | None:
        for n, v, _ in self.added:
            if n.lower() == name.lower():
                return v.strip()
        return None


def split_message(raw: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """Header fields (name, raw value without the colon, LF-joined folds) and body (CRLF)."""
    raw = raw.replace(b"\r\n", b"\n")
    head, _, body = raw.partition(b"\n\n")
    fields: list[tuple[str, bytes]] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\n" + line)
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append((name.decode("ascii"), value))
    return fields, body.replace(b"\n", b"\r\n")


def drive(milter: Any, ctx: FakeMilterContext, raw: bytes, *, sender: str = "<sender@example.org>",
          recipients: tuple[str, ...] = ("<rcpt@example.net>",), client: tuple[str, str] = ("client.example.org", "192.0.2.10"),
          helo: str = "client.example.org", connect_macros: dict[str, str] | None = None,
          mail_macros: dict[str, str] | None = None, queue_id: str = "4ABCDE1") -> int:
    """One message through a milter object as libmilter would call it, with P_HDR_LEADSPC on."""
    import Milter
    milter._setctx(ctx)
    milter._protocol = Milter.P_HDR_LEADSPC
    ctx.macros.update(connect_macros or {})
    milter.connect(client[0], socket.AF_INET, (client[1], 40000))
    milter.hello(helo)
    ctx.macros.update(mail_macros or {})
    milter.envfrom(sender)
    ctx.macros["i"] = queue_id
    for rcpt in recipients:
        milter.envrcpt(rcpt)
    milter.data()
    fields, body = split_message(raw)
    for name, value in fields:
        milter.header(name, value)
    milter.eoh()
    for i in range(0, len(body), 65536):
        milter.body(body[i:i + 65536])
    return milter.eom()


