"""The RESP2 codec (owlery/state/resp.py): commands out, replies in, any split, hostile input.

Pure: no server, no reactor. Replies are written here by a small independent encoder, so a
round trip checks the decoder against RESP2 as specified, not against itself.
"""

from __future__ import annotations

import random

import pytest

from owlery.state.resp import ReplyDecoder, RespError, RespProtocolError, encode_command


def reply_bytes(value, simple: bool = False) -> bytes:
    """RESP2 encoding of a reply value (str as a bulk string, or as a simple one if `simple`)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, RespError):
        return b"-" + value.message.encode() + b"\r\n"
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        return b"+" + raw + b"\r\n" if simple else b"$%d\r\n%s\r\n" % (len(raw), raw)
    return b"*%d\r\n" % len(value) + b"".join(reply_bytes(v) for v in value)


def feed_all(chunks, decoder=None) -> list:
    d = decoder or ReplyDecoder()
    out: list = []
    for chunk in chunks:
        out += d.feed(chunk)
    return out


# One of every reply type, as (wire bytes, value).
EVERY_TYPE = [
    (b"+OK\r\n", "OK"),
    (b"+\r\n", ""),
    (b"-ERR unknown command\r\n", RespError("ERR unknown command")),
    (b"-NOSCRIPT No matching script.\r\n", RespError("NOSCRIPT No matching script.")),
    (b":0\r\n", 0),
    (b":-42\r\n", -42),
    (b":9223372036854775807\r\n", 2 ** 63 - 1),
    (b"$5\r\nhello\r\n", "hello"),
    (b"$0\r\n\r\n", ""),
    (b"$4\r\na\r\nb\r\n", "a\r\nb"),                     # CRLF inside a bulk string is data
    ("$10\r\nümlaut✓\r\n".encode(), "ümlaut✓"),
    (b"$2\r\n\xff\xfe\r\n", "\udcff\udcfe"),              # not UTF-8: kept (surrogateescape)
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n$1\r\na\r\n$-1\r\n:7\r\n", ["a", None, 7]),
    (b"*2\r\n*2\r\n+x\r\n-ERR y\r\n*0\r\n", [["x", RespError("ERR y")], []]),
    (b"*1\r\n*1\r\n*1\r\n$1\r\nz\r\n", [[["z"]]]),
]


def test_encode_command_bytes():
    assert encode_command("GET", "k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert encode_command("SET", b"k\r\n", "ü", "") == b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n\xc3\xbc\r\n$0\r\n\r\n"
    assert encode_command("X", "\udcff") == b"*2\r\n$1\r\nX\r\n$1\r\n\xff\r\n"
    # str only (built as one str) and mixed with bytes (built per argument) give the same bytes
    args = ("SET", "ü✓", "", "a\r\n", "\udcfe", "x" * 300)
    assert encode_command(*args) == encode_command(b"SET", *args[1:]) == encode_command(
        *[a.encode("utf-8", "surrogateescape") for a in args])


@pytest.mark.parametrize("bad", [(), ("GET", 5), ("GET", 1.5), ("GET", None)])
def test_encode_command_refuses_what_is_not_text(bad):
    with pytest.raises((TypeError, ValueError)):
        encode_command(*bad)


@pytest.mark.parametrize("args", [("PING",), ("EVALSHA", "abc", "2", "k:1", "k:2", "1.5"),
                                  ("SET", "a\r\nb", "ümlaut ✓", "", "x" * 70000), ("X", "\udcfe")])
def test_a_command_decodes_as_the_array_of_its_arguments(args):
    assert ReplyDecoder().feed(encode_command(*args)) == [list(args)]


@pytest.mark.parametrize("wire,value", EVERY_TYPE)
def test_every_reply_type(wire, value):
    assert ReplyDecoder().feed(wire) == [value]


@pytest.mark.parametrize("wire,value", EVERY_TYPE)
def test_every_reply_type_split_at_every_byte(wire, value):
    for cut in range(len(wire) + 1):
        assert feed_all([wire[:cut], wire[cut:]]) == [value], cut
    assert feed_all([wire[i:i + 1] for i in range(len(wire))]) == [value]


def test_all_types_back_to_back_split_everywhere():
    stream = b"".join(w for w, _ in EVERY_TYPE)
    values = [v for _, v in EVERY_TYPE]
    assert ReplyDecoder().feed(stream) == values
    for cut in range(len(stream) + 1):
        assert feed_all([stream[:cut], stream[cut:]]) == values, cut
    for a in range(0, len(stream), 7):             # three pieces: two cuts
        for b in range(a, len(stream), 5):
            assert feed_all([stream[:a], stream[a:b], stream[b:]]) == values, (a, b)


def _random_reply(rnd: random.Random, depth: int = 0):
    kind = rnd.random()
    if kind < 0.2 and depth < 4:
        return [_random_reply(rnd, depth + 1) for _ in range(rnd.randint(0, 5))]
    if kind < 0.3:
        return None
    if kind < 0.45:
        return rnd.randint(-2 ** 63, 2 ** 63 - 1)
    if kind < 0.55:
        return RespError(rnd.choice(["ERR x", "NOSCRIPT No matching script", "WRONGTYPE Operation"]))
    return "".join(rnd.choice("ab:\r\n ü✓-*$+") for _ in range(rnd.randint(0, 12)))


@pytest.mark.parametrize("seed", range(20))
def test_random_replies_in_random_pieces(seed):
    rnd = random.Random(seed)
    values = [_random_reply(rnd) for _ in range(30)]
    stream = b"".join(reply_bytes(v, simple=isinstance(v, str) and "\r" not in v and "\n" not in v
                                  and rnd.random() < 0.5) for v in values)
    cuts = sorted(rnd.sample(range(len(stream) + 1), min(len(stream), 25)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    assert feed_all(chunks) == values


def test_error_is_a_value_with_its_code():
    got = ReplyDecoder().feed(b"-NOSCRIPT No matching script. Please use EVAL.\r\n+OK\r\n")
    assert got == [RespError("NOSCRIPT No matching script. Please use EVAL."), "OK"]
    assert got[0].code == "NOSCRIPT"


def test_an_array_arriving_in_pieces_is_not_held_as_bytes():
    """Elements already read sit decoded on the stack; only the unfinished one stays buffered."""
    d = ReplyDecoder()
    assert d.feed(b"*1000\r\n") == []
    for i in range(999):
        assert d.feed(b"$3\r\n%03d\r\n" % i) == []
        assert len(d._buf) == 0
    assert d.feed(b"$3\r\nend\r\n") == [[f"{i:03d}" for i in range(999)] + ["end"]]


# --- bounds ---------------------------------------------------------------------------------

def test_bounds_are_inclusive():
    wire = b"$4\r\nabcd\r\n*3\r\n:1\r\n:2\r\n:3\r\n*1\r\n*1\r\n:1\r\n+0123456789\r\n"
    want = ["abcd", [1, 2, 3], [[1]], "0123456789"]
    limits = {"max_bulk": 4, "max_array": 3, "max_depth": 2, "max_line": 10}
    assert ReplyDecoder(**limits).feed(wire) == want
    assert feed_all([wire[i:i + 1] for i in range(len(wire))], ReplyDecoder(**limits)) == want


@pytest.mark.parametrize("wire,limits", [
    (b"$5\r\nabcde\r\n", {"max_bulk": 4}),
    (b"$999999999999\r\n", {}),                     # declared, never sent: refused at the header
    (b"*4\r\n", {"max_array": 3}),
    (b"*1\r\n*1\r\n*1\r\n:1\r\n", {"max_depth": 2}),
    (b"+" + b"x" * 11 + b"\r\n", {"max_line": 10}),
    (b"+" + b"x" * 20, {"max_line": 10}),            # no CRLF yet, but already too long
    (b"*100\r\n" + b":1\r\n" * 60, {"max_pending": 200}),   # one reply held over the bound
    (b"$150\r\n" + b"x" * 100, {"max_pending": 100}),        # a bulk under max_bulk, buffered over it
])
def test_a_bound_broken_is_a_protocol_error(wire, limits):
    with pytest.raises(RespProtocolError):
        ReplyDecoder(**limits).feed(wire)


def test_pending_bound_counts_one_reply_not_the_stream():
    """Many complete replies in one read are fine; the bound is on a reply not finished yet."""
    d = ReplyDecoder(max_pending=200)
    assert d.feed(b":1\r\n" * 1000) == [1] * 1000
    assert d.feed(b"*30\r\n") == []
    for _ in range(29):
        d.feed(b":1\r\n")
    assert d.feed(b":1\r\n") == [[1] * 30]
    with pytest.raises(RespProtocolError):
        for _ in range(100):                        # 4 bytes per read: over the bound only in total
            d.feed(b"*99\r\n" if _ == 0 else b":1\r\n")


# --- malformed ------------------------------------------------------------------------------

@pytest.mark.parametrize("wire", [
    b"!oops\r\n", b"%1\r\n", b"_\r\n", b"#t\r\n", b",1.5\r\n",   # not RESP2 (RESP3 types included)
    b"$ 5\r\nhello\r\n", b"$+5\r\nhello\r\n", b"$1_0\r\n", b"$-2\r\n", b"$abc\r\n", b"$\r\n",
    b"*1_0\r\n", b"*-5\r\n", b"*x\r\n",
    b":1.5\r\n", b": 1\r\n", b":1_000\r\n", b":\r\n", b":-\r\n", b":" + b"9" * 30 + b"\r\n",
    b"$3\r\nabcXY", b"$3\r\nabc\n\r",                           # bulk not followed by CRLF
    b"\r\n",
])
def test_malformed_input_is_a_protocol_error(wire):
    with pytest.raises(RespProtocolError):
        ReplyDecoder().feed(wire)


def test_a_broken_decoder_stays_broken():
    d = ReplyDecoder()
    with pytest.raises(RespProtocolError):
        d.feed(b"+OK\r\n?\r\n")
    with pytest.raises(RespProtocolError):
        d.feed(b"+OK\r\n")
