"""The socketmap codec: netstring framing, requests, replies, hostile input (tables and a fuzz)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketmap.protocol import (NOTFOUND, BadRequest, NetstringDecoder, SocketmapAnswer, SocketmapRequest,
                                SocketmapRequestDecoder, encode_reply, encode_request, ok, parse_reply, perm, temp,
                                timeout)


def feed_all(data, length_max=100, chunk=None):
    d = SocketmapRequestDecoder(length_max)
    if chunk is None:
        return d.feed(data)
    out = []
    for i in range(0, len(data), chunk):
        out += d.feed(data[i:i + chunk])
    return out


@pytest.mark.parametrize("data,items", [
    (b"24:virtual_alias_maps a@b.c,", [SocketmapRequest("virtual_alias_maps", "a@b.c")]),
    (b"9:m key one,", [SocketmapRequest("m", "key one")]),                    # the key may hold spaces
    (b"2:m ,", [SocketmapRequest("m", "")]),
    (b"5:a b c,3:x y,", [SocketmapRequest("a", "b c"), SocketmapRequest("x", "y")]),   # pipelined in one read
    (b"0:,", [BadRequest("request is not NAME SPACE KEY", fatal=False)]),
    (b"4:name,1:m,3:m k,",
     [BadRequest("request is not NAME SPACE KEY", fatal=False)] * 2 + [SocketmapRequest("m", "k")]),
    (b"2: k,", [BadRequest("request is not NAME SPACE KEY", fatal=False)]),
    (b"4:m \xff\xfe,", [SocketmapRequest("m", "\udcff\udcfe")]),               # raw 8-bit bytes survive
    (b"4:m \xc3\xa9,", [SocketmapRequest("m", "\u00e9")]),
])
def test_requests(data, items):
    assert feed_all(data) == items
    assert feed_all(data, chunk=1) == items                          # byte by byte, same result


@pytest.mark.parametrize("data,reason", [
    (b"x:ab,", "not decimal digits"),
    (b"-1:a,", "not decimal digits"),
    (b" 3:m k,", "not decimal digits"),
    (b"\xd9\xa3:m k,", "not decimal digits"),                     # Arabic-Indic digit three
    (b"03:m k,", "leading zero"),
    (b"00:,", "leading zero"),
    (b":m k,", "without a length"),
    (b"3:m k;", "not ended by a comma"),
    (b"3:m kk,", "not ended by a comma"),
    (b"101:", "over the limit of 100"),
    (b"1000", "longer than the limit"),
    (b"99999999999999999999:", "longer than the limit"),
    (b"GET / HTTP/1.0\r\n\r\n", "not decimal digits"),
])
def test_broken_framing_is_fatal_and_ends_the_stream(data, reason):
    for chunk in (None, 1):
        items = feed_all(data + b"3:m k,", chunk=chunk)
        assert len(items) == 1 and items[0].fatal and reason in items[0].reason, items


def test_requests_before_a_break_are_kept_and_nothing_after():
    d = SocketmapRequestDecoder(100)
    items = d.feed(b"3:m a,3:m b,zz:m c,3:m d,")
    assert items[:2] == [SocketmapRequest("m", "a"), SocketmapRequest("m", "b")] and items[2].fatal and len(items) == 3
    assert d.broken and d.feed(b"3:m e,") == []


def test_pending_and_bounded_buffer():
    d = SocketmapRequestDecoder(100)
    assert d.feed(b"10:virtual") == [] and d.pending
    assert d.feed(b"_ab,") == [BadRequest("request is not NAME SPACE KEY", fatal=False)]
    assert not d.pending
    # The length limit counts the data, not the framing: exactly length_max is fine.
    assert d.feed(b"100:m " + b"k" * 98 + b",") == [SocketmapRequest("m", "k" * 98)]


@pytest.mark.parametrize("answer,wire", [
    (ok("alice@example.org,bob@example.org"), b"36:OK alice@example.org,bob@example.org,"),
    (NOTFOUND, b"9:NOTFOUND ,"),
    (temp("directory unavailable"), b"26:TEMP directory unavailable,"),
    (timeout("slow"), b"12:TIMEOUT slow,"),
    (perm("bad\r\nrequest\x00"), b"18:PERM bad??request?,"),            # a reason loses control characters
    (ok("\u00e9"), b"5:OK \xc3\xa9,"),
])
def test_replies(answer, wire):
    assert encode_reply(answer) == wire
    [body] = NetstringDecoder(1000).feed(wire)
    assert parse_reply(body).status == answer.status


def test_a_reply_never_fails_to_encode():
    assert encode_reply(temp("lone \ud800 surrogate")) == b"21:TEMP lone ? surrogate,"


def test_answer_refuses_unknown_status():
    with pytest.raises(ValueError):
        SocketmapAnswer("MAYBE", "x")


def test_request_round_trip():
    assert (SocketmapRequestDecoder(100).feed(encode_request("transport_maps", "a b@c"))
            == [SocketmapRequest("transport_maps", "a b@c")])


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_fuzz_any_bytes_any_chunking(data, chunk):
    """Whatever comes, the decoder never raises, never buffers past its limit, gives the same
    items however the bytes are split, and stops for good after a fatal item."""
    whole = feed_all(data, length_max=64)
    d = SocketmapRequestDecoder(64)
    pieces = []
    for i in range(0, len(data), chunk):
        pieces += d.feed(data[i:i + chunk])
        assert len(d._netstrings._buf) <= 64 + 2 + len("64")
    assert pieces == whole
    fatal = [i for i, item in enumerate(whole) if isinstance(item, BadRequest) and item.fatal]
    assert fatal in ([], [len(whole) - 1])


# Text as a decoder makes it: any code point but lone surrogates (raw bytes come as \udc80-\udcff).
TEXT = st.characters(blacklist_categories=("Cs",)) | st.sampled_from("\udc80\udcff")


@given(st.lists(st.tuples(st.text(alphabet=TEXT.filter(lambda c: c != " "), min_size=1, max_size=20),
                          st.text(alphabet=TEXT, max_size=40)), max_size=10), st.integers(min_value=1, max_value=30))
def test_fuzz_well_formed_requests_round_trip(requests, chunk):
    data = b"".join(encode_request(n, k) for n, k in requests)
    d = SocketmapRequestDecoder(1000)
    got = []
    for i in range(0, len(data), chunk):
        got += d.feed(data[i:i + chunk])
    assert got == [SocketmapRequest(n, k) for n, k in requests] and not d.pending
