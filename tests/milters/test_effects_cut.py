"""milters.effects._cut_at (where header_safe cuts a line longer than 998 octets): the same
answers as the one-character-at-a-time walk it replaced, in a bounded number of encodings."""

from __future__ import annotations

import random

import pytest

from milters import effects as fx

_POOLS = {
    "ascii": [chr(c) for c in range(0x20, 0x7f)],
    "2-octet": ["\u00e9", "\u00df", "\u03a9", "\u07ff", "\u0080"],
    "3-octet": ["\u0800", "\u20ac", "\u4e2d", "\uffff", "\ufeff"],
    "4-octet": ["\U00010000", "\U0001f600", "\U0010ffff", "\U00020000"],
    # surrogateescape's stand-ins for bytes that were not UTF-8: one octet each
    "escaped": [chr(0xdc80 + i) for i in range(0, 128, 7)],
}
_POOLS["mixed"] = [c for pool in _POOLS.values() for c in pool]


def _reference(line: str, room: int) -> int:
    """The walk _cut_at used to be: step back one character, encode the prefix again."""
    n = min(len(line), room)
    while n > 1 and len(line[:n].encode("utf-8", "surrogateescape")) > room:
        n -= 1
    return n


def _outcome(function, line: str, room: int):
    try:
        return "ok", function(line, room)
    except UnicodeEncodeError:
        return "error", None


def _cases():
    rng = random.Random(5322)
    rooms = [-3, 0, 1, 2, 3, 4, 5, 7, 64, 250, 992, 997, 998, 999]
    for kind, pool in _POOLS.items():
        for room in rooms:
            for length in {0, 1, 2, 3, max(room - 1, 0), max(room, 0), room + 1, room // 4, room // 4 + 1,
                           room // 3, room // 2 + 1, 2 * room + 5, 1100, 4000}:
                if length < 0:
                    continue
                yield kind, rng.choices(pool, k=length), room


@pytest.mark.parametrize("kind", sorted(_POOLS))
def test_same_cut_as_the_one_step_walk(kind):
    checked = 0
    for k, chars, room in _cases():
        if k != kind:
            continue
        line = "".join(chars)
        got, want = fx._cut_at(line, room), _reference(line, room)
        assert got == want, (kind, room, len(line), got, want)
        checked += 1
    assert checked > 100


def test_same_cut_at_every_boundary_of_a_mixed_line():
    # every room along a line mixing 1-, 2-, 3- and 4-octet characters and escaped bytes:
    # each character boundary and each octet inside a character is a cut candidate
    line = "a\u00e9\u20ac\U0001f600\udcff" * 60
    for room in range(-1, len(line.encode("utf-8", "surrogateescape")) + 3):
        assert fx._cut_at(line, room) == _reference(line, room), room


def test_a_surrogate_that_cannot_be_encoded_fails_as_before():
    # not a surrogateescape stand-in (\ud800): neither version can measure it; the old walk
    # raised when it was within the first min(len, room) characters and not otherwise
    for line, room in [("ab\ud800cd" * 3, 10), ("ab\ud800", 2), ("\ud800" * 5, 1), ("x" * 20 + "\ud800", 10),
                       ("\U0001f600" * 10 + "\ud800", 11)]:
        assert _outcome(fx._cut_at, line, room) == _outcome(_reference, line, room), (line, room)


def test_header_safe_gives_the_same_lines_as_with_the_walk(monkeypatch):
    rng = random.Random(998)
    values = ["".join(rng.choices(_POOLS[kind], k=n)) for kind in ("ascii", "2-octet", "3-octet", "4-octet", "mixed")
              for n in (300, 997, 1100, 5000)]
    values += ["x" * 990 + "\U0001f600" * 5 + " tail", "word " * 400]
    new = [fx.header_safe("Subject", v) for v in values]
    monkeypatch.setattr(fx, "_cut_at", _reference)
    assert new == [fx.header_safe("Subject", v) for v in values]
    assert all(len(line.encode()) <= fx.MAX_HEADER_LINE - (len("Subject: ") if i == 0 else 0)
               for value in new for i, line in enumerate(value.split("\n")))


class _Counting:
    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        return self.real(text)


@pytest.mark.parametrize("char", ["a", "\u00e9", "\u20ac", "\U0001f600"])
def test_one_cut_encodes_a_logarithmic_number_of_prefixes(monkeypatch, char):
    counter = _Counting(fx._octets)
    monkeypatch.setattr(fx, "_octets", counter)
    line = char * 4000
    assert fx._cut_at(line, fx.MAX_HEADER_LINE) == fx.MAX_HEADER_LINE // len(char.encode())
    # one encoding of the whole candidate, then a bisection over at most 998 lengths
    assert counter.calls <= 1 + (fx.MAX_HEADER_LINE - 1).bit_length(), counter.calls


def test_a_100k_header_of_4_octet_characters_costs_a_bounded_number_of_encodings(monkeypatch):
    counter = _Counting(fx._octets)
    monkeypatch.setattr(fx, "_octets", counter)
    value = "\U0001f600" * 25_000            # 100 KB, no blank to fold at
    out = fx.header_safe("Subject", value)
    lines = out.split("\n")
    assert "".join(line.lstrip("\t") for line in lines) == value
    # per cut: the loop's own measure of the rest and ~11 for the cut (the walk took ~750)
    assert counter.calls <= 13 * len(lines), (counter.calls, len(lines))
