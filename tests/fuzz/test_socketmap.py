"""Fuzz: the socketmap netstring codec (socketmap/protocol.py) and its adapter (socketmap/service.py).

Oracle: a reference netstring reader written here from socketmap_table(5) and
https://cr.yp.to/proto/netstrings.txt (`LEN:DATA,`, LEN decimal without an extra leading zero,
at most socketmap_request_length_max). Whatever the bytes and however they are cut into reads:
- the decoder raises nothing, yields exactly the reference's requests (a request without a
  space is a non-fatal BadRequest) and, when the framing breaks, one fatal BadRequest after
  them and nothing ever again; a tail that cannot start a valid netstring may be refused
  before it is complete, a tail that still can must not be; it never keeps more than one
  netstring's worth of bytes (length field, colon, limit, comma);
- through the adapter (a files directory, a pool that runs lookups when the test says), the
  connection's output is a sequence of netstrings each `OK DATA`, `NOTFOUND `, `TEMP REASON`,
  `TIMEOUT REASON` or `PERM REASON`, one per request in order, no reply longer than
  socketmap_reply_length_max (found by atheris: an unknown map's PERM was not), never
  "internal error" (a table that raised); broken framing
  gets PERM and the connection closed; more requests queued than
  socketmap_requests_queued_max closes it; nothing else does.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport

from owlery.directory import open_directory
from owlery.settings import Settings
from socketmap.protocol import (STATUSES, BadRequest, SocketmapRequest, SocketmapRequestDecoder, encode_reply, encode_request,
                                ok, perm)
from socketmap.service import SocketmapApp
from tests.fuzz.fuzzlib import CUTS, budget, corpus, mutants, split

SEEDS = corpus("socketmap")
LIMITS = (4096, 32, 100)
TOKENS = [b"0:,", b"1: ,", b":", b",", b"00", b"01:", b"4096:", b"4097:", b"99999:", b"virtual_alias_maps ",
          b"virtual_mailbox_domains ", b"transport_maps ", b"virtual_mailbox_maps ", b"relay_recipient_maps ",
          b"alice@example.org", b"@example.org", b"sales@example.org", b"big@example.org", b"\x00", b"\xff",
          b"\r\n", b"-1:", b"+1:", "\u00b2:".encode(), b" ", b"a+b@example.org", b"*"]


# --- the reference reader -------------------------------------------------------------------

def _over(digits: bytes, length_max: int) -> bool:
    """A (leading-zero-free) length field over the limit (no int() of thousands of digits)."""
    return len(digits) > len(str(length_max)) or int(digits) > length_max


def _doomed(tail: bytes, length_max: int) -> bool:
    """True when no continuation of this incomplete tail (no colon yet) is a valid netstring."""
    if not all(0x30 <= b <= 0x39 for b in tail) or (len(tail) > 1 and tail[0] == 0x30):
        return True
    return bool(tail) and _over(tail, length_max)        # more digits only make it larger


def reference(data: bytes, length_max: int) -> tuple[list[bytes], str]:
    """(netstrings, status): status "ok", "error" (must be refused) or "maybe" (an incomplete
    tail no continuation can make valid: it may be refused now or later)."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        colon = data.find(b":", pos)
        if colon < 0:
            return out, "maybe" if _doomed(data[pos:], length_max) else "ok"
        digits = data[pos:colon]
        if not digits or not all(0x30 <= b <= 0x39 for b in digits) or (len(digits) > 1 and digits[0] == 0x30) \
                or _over(digits, length_max):
            return out, "error"
        end = colon + 1 + int(digits)
        if end >= len(data):
            return out, "ok"
        if data[end] != 0x2C:
            return out, "error"
        out.append(data[colon + 1:end])
        pos = end + 1
    return out, "ok"


def as_request(data: bytes) -> SocketmapRequest | BadRequest:
    name, sep, key = data.partition(b" ")
    if not sep or not name:
        return BadRequest("request is not NAME SPACE KEY", fatal=False)
    return SocketmapRequest(name.decode("utf-8", "surrogateescape"), key.decode("utf-8", "surrogateescape"))


def check_decoder(data: bytes, cuts, length_max: int) -> None:
    want, status = reference(data, length_max)
    decoder = SocketmapRequestDecoder(length_max)
    bound = length_max + len(str(length_max)) + 2
    got: list = []
    for chunk in split(data, cuts):
        out = decoder.feed(chunk)
        assert not got or not (isinstance(got[-1], BadRequest) and got[-1].fatal) or out == [], "output after a fatal"
        got += out
        assert len(decoder._netstrings._buf) <= bound, "buffered more than one netstring"   # noqa: SLF001
    fatal = [g for g in got if isinstance(g, BadRequest) and g.fatal]
    assert len(fatal) <= 1 and (not fatal or got[-1] is fatal[0])
    requests = [g for g in got if not (isinstance(g, BadRequest) and g.fatal)]
    assert requests == [as_request(s) for s in want[:len(requests)]]
    if fatal:
        assert status in ("error", "maybe"), f"refused a good stream: {fatal[0]}"
        assert len(requests) == len(want) and decoder.broken
        assert decoder.feed(encode_request("virtual_mailbox_domains", "example.org")) == []
    else:
        assert status != "error", "accepted a stream the reference refuses"
        assert len(requests) == len(want)


netstring_soup = st.lists(st.one_of(
    st.builds(lambda n, k: encode_request(n, k),
              st.sampled_from(["virtual_alias_maps", "virtual_mailbox_domains", "transport_maps", "virtual_mailbox_maps",
                               "relay_recipient_maps", "nosuch", "", "x y"]),
              st.one_of(st.sampled_from(["alice@example.org", "sales@example.org", "example.org", "@example.org",
                                         "alice+x@example.org", "big@example.org", "*", "", " ", "a@b@c"]),
                        st.text(max_size=20))),
    st.binary(max_size=12).map(lambda b: b"%d:%s," % (len(b), b)),
    st.sampled_from([b"0:,", b"00:,", b"01:x,", b"1:xx", b":,", b"3:abc;", b"4097:", b"9" * 30 + b":", b"-1:,",
                     b"\xc2\xb2:x,", b" 1:x,", b"1 :x,", b"2:\x00\xff,"]),
), max_size=20).map(b"".join)


@budget(300)
@given(data=st.one_of(netstring_soup, mutants(SEEDS, TOKENS), st.binary(max_size=200)), cuts=CUTS,
       length_max=st.sampled_from(LIMITS))
@example(data=b"00:,", cuts=[1], length_max=4096)
@example(data=b"5000", cuts=[], length_max=4096)
@example(data=b"12:abc", cuts=[2], length_max=4096)
@example(data=b"4097:" + b"x" * 4097 + b",", cuts=[3], length_max=4096)
@example(data=b"0:,0:,1: ,", cuts=[1, 2, 3, 4, 5, 6], length_max=32)
def test_decoder_any_bytes_any_split(data, cuts, length_max):
    check_decoder(data, cuts, length_max)


# --- through the adapter ----------------------------------------------------------------------

_WORK: list[Path] = []


def _files() -> dict[str, str]:
    """Map files for a small directory (made once per process)."""
    if not _WORK:
        work = Path(tempfile.mkdtemp(prefix="owlery-fuzz-socketmap-"))
        atexit.register(shutil.rmtree, work, True)
        (work / "mailboxes").write_text("alice@example.org\nbob@example.org\ncarol@example.net\n")
        members = ", ".join(f"m{i}@example.org" for i in range(120))
        (work / "aliases").write_text("sales@example.org alice@example.org, bob@example.org\n"
                                      f"big@example.org {members}\n@alias.test @example.org\n")
        (work / "mail_hosts").write_text("bob@example.org backend-b.example.org\n")
        _WORK.append(work)
    return {f"files_{n}": str(_WORK[0] / n) for n in ("mailboxes", "aliases", "mail_hosts")}


class StepPool:
    """Lookups run when the test calls run() (after each read), in order."""

    def __init__(self):
        self.jobs: list = []

    def submit(self, fn, *args):
        d = defer.Deferred()
        self.jobs.append((d, fn, args))
        return d

    def run(self):
        while self.jobs:
            d, fn, args = self.jobs.pop(0)
            if d.called:
                continue
            try:
                result = fn(*args)
            except Exception:  # noqa: BLE001 - the pool hands any failure to the Deferred, as Twisted's does
                d.errback()
            else:
                d.callback(result)

    def close(self):
        pass


def parse_replies(out: bytes) -> list[tuple[str, bytes]]:
    """The adapter's output as (status, text) pairs; AssertionError unless it is whole netstrings."""
    replies, pos = [], 0
    while pos < len(out):
        colon = out.index(b":", pos)
        digits = out[pos:colon]
        assert digits.isdigit() and (digits == b"0" or digits[:1] != b"0"), out[pos:pos + 20]
        end = colon + 1 + int(digits)
        assert out[end:end + 1] == b",", f"reply not ended by a comma: {out[pos:pos + 40]!r}"
        status, sep, text = out[colon + 1:end].partition(b" ")
        assert sep and status.decode("ascii", "replace") in STATUSES, f"bad reply {out[colon + 1:end][:60]!r}"
        replies.append((status.decode(), text))
        pos = end + 1
    return replies


def check_adapter(data: bytes, cuts, length_max: int, queued_max: int = 4) -> None:
    settings = Settings().replace(socketmap_request_length_max=max(length_max, 32), socketmap_requests_queued_max=queued_max,
                                  socketmap_reply_length_max=400, **_files())
    length_max = settings.socketmap_request_length_max
    clock = task.Clock()
    pool = StepPool()
    directory = open_directory(settings, clock=clock.seconds)
    app = SocketmapApp(settings, clock, directory=directory, pool=pool)
    try:
        proto = app.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        overflow = False
        for chunk in split(data, cuts):
            if transport.disconnecting:
                break
            before = len(proto.replies.queue)
            probe = SocketmapRequestDecoder(length_max)
            probe._netstrings._buf = bytearray(proto.decoder._netstrings._buf)     # noqa: SLF001 (what this read adds)
            overflow = overflow or before + len(probe.feed(chunk)) > queued_max
            proto.dataReceived(chunk)
            pool.run()
        replies = parse_replies(transport.value())
        want, status = reference(data, length_max)
        for (kind, text), request in zip(replies, [as_request(s) for s in want] + [None]):
            assert b"internal error" not in text, (request, text)
            assert len(text) + len(kind) + 1 <= 400, "reply over socketmap_reply_length_max"
            if isinstance(request, BadRequest):
                assert kind == "PERM"
        if transport.disconnecting:
            assert overflow or status in ("error", "maybe"), "closed without a framing error or queue overflow"
            if not overflow:
                assert len(replies) == len(want) + 1 and replies[-1][0] == "PERM"
        else:
            assert status != "error", "broken framing left the connection open"
            assert len(replies) == len(want)
    finally:
        app.close()
        directory.close()


@budget(300)
@given(data=st.one_of(netstring_soup, mutants(SEEDS, TOKENS)), cuts=CUTS, length_max=st.sampled_from(LIMITS))
@example(data=encode_request("virtual_alias_maps", "big@example.org"), cuts=[], length_max=4096)
@example(data=encode_request("virtual_mailbox_domains", "example.org") + b"HELO there\r\n", cuts=[5], length_max=4096)
@example(data=encode_request("transport_maps", "\udcff@example.org") * 3, cuts=[], length_max=4096)
def test_adapter_replies_are_netstrings(data, cuts, length_max):
    check_adapter(data, cuts, length_max)


def test_regression_unknown_map_reply_keeps_the_reply_limit():
    """A map name of 64 odd bytes made the PERM reply (its repr, then the known maps) 469 bytes,
    over socketmap_reply_length_max (400 here; Postfix refuses a reply over its
    socketmap_max_reply_size); found by atheris. Reasons are now cut to the limit."""
    data = encode_request("\udc80\x00" * 32, "alice@example.org")
    check_adapter(data, [], 4096)
    for limit in (64, 65):
        (status, text), = parse_replies(encode_reply(perm("unknown map " + "\u00e9" * 100), limit))
        assert status == "PERM" and len(text) + 5 in (limit - 1, limit) and text.decode("utf-8")
    assert encode_reply(ok("x" * 100), 64) == b"103:OK " + b"x" * 100 + b","      # OK data is the maps' to check


def fuzz_one(data: bytes) -> None:
    """atheris entry: first byte picks the limit (and the adapter or the decoder), the second the
    read size, the rest is the stream."""
    logging.disable(logging.WARNING)       # the adapter's log lines would swamp a long run
    if len(data) < 2:
        return
    size = data[1] + 1
    stream = data[2:]
    cuts = list(range(size, len(stream), size))
    length_max = LIMITS[data[0] % len(LIMITS)]
    check_decoder(stream, cuts, length_max)
    if data[0] & 0x80:
        check_adapter(stream, cuts, length_max)
