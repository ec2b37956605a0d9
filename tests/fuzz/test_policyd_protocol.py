"""Fuzz: the policy request decoder (policyd/protocol.py) fed arbitrary bytes split anywhere.

Oracle: a line-at-a-time reference decoder written here from SMTPD_POLICY_README and the
module's documented limits. Whatever the bytes and however they are cut into feeds, the
decoder yields exactly the reference's requests (or a prefix of them, then ProtocolError),
raises nothing but ProtocolError, raises it whenever the reference finds an error in a
complete request or a line over the limit, and every request it yields keeps the limits
(attributes per request, line length, numeric attributes, request type).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from policyd.protocol import (KNOWN_ATTRIBUTES, NUMERIC_ATTRIBUTES, REQUEST_TYPE, ProtocolError, RequestDecoder,
                              encode_request, is_number)
from tests.fuzz.fuzzlib import CUTS, budget, corpus, mutants, split

SEEDS = corpus("policyd")
TOKENS = [b"\n", b"\n\n", b"\r\n", b"=", b"\x00", b"request=smtpd_access_policy\n", b"request=junk\n",
          b"size=", b"recipient_count=", b"encryption_keysize=", b"protocol_state=RCPT\n", b"\xff", b"==",
          "size=\u00b2\n".encode(), b"A" * 300]
LIMITS = [(4096, 100), (64, 3), (16, 1), (2048, 1000), (1, 1)]


def decode(text: bytes) -> str:
    return text.decode("utf-8", "surrogateescape")


def reference(data: bytes, line_max: int, attrs_max: int):
    """(requests, status, tail): status "ok", "error" (must be refused) or "maybe" (a bad line in
    the unfinished last request: the decoder may refuse it now or when it completes); `tail` is
    the number of bytes after the last complete request."""
    requests: list[dict[str, str]] = []
    attrs: dict[str, str] = {}
    count, soft_error, pos, request_start = 0, False, 0, 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            if len(data) - pos > line_max:
                return requests, "error", None
            return requests, "maybe" if soft_error else "ok", len(data) - request_start
        line, pos = data[pos:nl], nl + 1
        if len(line) > line_max:
            return requests, "error", None
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if count == 0:
                return requests, "error", None          # an empty request
            if soft_error or attrs.get("request") != REQUEST_TYPE or \
                    any(attrs.get(n) and not is_number(attrs[n]) for n in NUMERIC_ATTRIBUTES):
                return requests, "error", None
            requests.append(attrs)
            attrs, count, request_start = {}, 0, pos
            continue
        name, eq, value = line.partition(b"=")
        count += 1
        if not eq or not name or b"\0" in line or count > attrs_max:
            soft_error = True
            continue
        attrs[decode(name)] = decode(value)


def check(data: bytes, cuts, limits) -> None:
    line_max, attrs_max = limits
    want, status, tail = reference(data, line_max, attrs_max)
    decoder = RequestDecoder(line_length_max=line_max, attributes_max=attrs_max)
    got: list[dict[str, str]] = []
    failed = False
    for chunk in split(data, cuts):
        try:
            out = decoder.feed(chunk)
        except ProtocolError:
            failed = True
            break
        for req in out:
            assert len(req) <= attrs_max
            for name, value in req.items():
                assert len(name.encode("utf-8", "surrogateescape")) + 1 + len(value.encode("utf-8", "surrogateescape")) \
                    <= line_max
                assert name and "\n" not in name + value and "\0" not in name + value and "=" not in name
            assert req["request"] == REQUEST_TYPE
            assert all(is_number(req.attr(n)) or req.attr(n) == "" for n in NUMERIC_ATTRIBUTES)
            got.append(dict(req))
    if failed:
        assert status in ("error", "maybe"), f"refused a good stream; reference got {want}"
        assert got == want[:len(got)]
        assert decoder.failed
        with pytest.raises(ProtocolError):
            decoder.feed(b"request=smtpd_access_policy\n\n")
    else:
        assert status != "error", "accepted a stream the reference refuses"
        assert got == want
        assert decoder.pending == (tail > 0)


@budget(300)
@given(data=st.one_of(st.binary(max_size=400), mutants(SEEDS, TOKENS)), cuts=CUTS, limits=st.sampled_from(LIMITS))
@example(data=b"request=smtpd_access_policy\nsize=\xc2\xb2\n\n", cuts=[], limits=LIMITS[0])
@example(data=b"\n", cuts=[], limits=LIMITS[0])
@example(data=b"request=smtpd_access_policy\r\n\r\n" * 2, cuts=[29], limits=LIMITS[0])
@example(data=b"a=b\nc=d\n" + b"x" * 60, cuts=[3, 9], limits=LIMITS[1])
def test_any_bytes_any_split(data, cuts, limits):
    check(data, cuts, limits)


attr_name = st.one_of(st.sampled_from(sorted(KNOWN_ATTRIBUTES)),
                      st.text(st.characters(exclude_characters="=\n\r\0", exclude_categories=["Cs"]), min_size=1, max_size=10))
attr_value = st.text(st.characters(exclude_characters="\n\r\0", exclude_categories=["Cs"]), max_size=30)


@budget(150)
@given(attrs=st.dictionaries(attr_name, attr_value, max_size=12), numbers=st.lists(st.integers(0, 10 ** 20 - 1), max_size=3),
       cuts=CUTS, copies=st.integers(1, 3))
def test_encoded_requests_decode_to_themselves(attrs, numbers, cuts, copies):
    attrs = {k: v for k, v in attrs.items() if k not in NUMERIC_ATTRIBUTES and k != "request"}
    attrs.update(zip(NUMERIC_ATTRIBUTES, map(str, numbers)))
    wire = encode_request(attrs) * copies
    decoder = RequestDecoder(line_length_max=4096, attributes_max=100)
    got = [dict(r) for chunk in split(wire, cuts) for r in decoder.feed(chunk)]
    assert got == [{"request": REQUEST_TYPE, **attrs}] * copies
    assert not decoder.pending


def fuzz_one(data: bytes) -> None:
    """atheris entry: first byte picks the limits, the second the feed size, the rest is the stream."""
    if len(data) < 2:
        return
    size = data[1] + 1
    stream = data[2:]
    check(stream, list(range(size, len(stream), size)), LIMITS[data[0] % len(LIMITS)])
