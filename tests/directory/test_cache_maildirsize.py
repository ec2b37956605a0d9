"""The directory TTL cache (positive/negative lifetimes, errors never cached, bound) and the
tolerant maildirsize reader."""

import pytest

from owlery import maildirsize
from owlery.directory import CachingDirectory, MISS, Recipient
from owlery.directory.base import Directory, parse_address
from owlery.errors import DirectoryUnavailable


class Counting(Directory):
    def __init__(self):
        self.calls = 0
        self.fail = False

    def resolve(self, address):
        self.calls += 1
        if self.fail:
            raise DirectoryUnavailable()
        return Recipient(address, "mailbox" if address.startswith("known") else "unknown")


def test_positive_and_negative_ttls():
    now = [0.0]
    c = CachingDirectory(Counting(), positive_ttl=300, negative_ttl=60, entries_max=100, clock=lambda: now[0])
    c.resolve("known@x")
    c.resolve("nobody@x")
    now[0] = 59
    c.resolve("known@x")
    c.resolve("nobody@x")
    assert c.backend.calls == 2
    now[0] = 61
    assert c.peek_resolve("nobody@x") is MISS and c.peek_resolve("known@x").exists
    c.resolve("nobody@x")
    assert c.backend.calls == 3


def test_errors_not_cached_and_bound():
    c = CachingDirectory(Counting(), positive_ttl=300, negative_ttl=60, entries_max=3)
    c.backend.fail = True
    for _ in range(2):
        with pytest.raises(DirectoryUnavailable):
            c.resolve("known@x")
    assert c.backend.calls == 2
    c.backend.fail = False
    for i in range(10):
        c.resolve(f"known{i}@x")
    assert len(c._entries) <= 3


@pytest.mark.parametrize("address,parts", [
    ("Alice+News@Example.ORG", ("alice", "news", "example.org")),
    ("<bob@x.test>", ("bob", "", "x.test")),
    ("+only@x.test", ("+only", "", "x.test")),          # no split at the very start
    ("a-b+c@x.test", ("a-b", "c", "x.test")),
    ("a\"@\"b@x.test", ("a\"@\"b", "", "x.test")),
])
def test_parse_address(address, parts):
    a = parse_address(address, "+")
    assert (a.local, a.detail, a.domain) == parts


def test_parse_address_several_delimiters():
    a = parse_address("a-b+c@x.test", "+-")
    assert (a.local, a.detail, a.candidates()) == ("a", "b+c", ["a-b+c@x.test", "a@x.test", "@x.test"])


@pytest.mark.parametrize("text,expected", [
    ("1000000S,1000C\n100 1\n200 2\n-50 -1\n", (1000000, 1000, 250, 2, 0)),
    ("1000S\n  12   1\n", (1000, None, 12, 1, 0)),
    ("\n", (None, None, 0, 0, 0)),
    ("500C\nxx 1\n1 2 3\n10 1\n", (None, 500, 10, 1, 2)),
    # What Dovecot's reader does not trust either (it recounts): an empty file, an empty or
    # blank line, a last line without its LF (not counted: a write cut short).
    ("", (None, None, 0, 0, 1)),
    ("1000S\n100 1\n\n200 2\n", (1000, None, 300, 3, 1)),
    ("1000S\n100 1\n \t\n", (1000, None, 100, 1, 1)),
    ("1000S\n100 1\n200 2", (1000, None, 100, 1, 1)),
    ("1000S", (1000, None, 0, 0, 1)),
])
def test_maildirsize_parse(text, expected):
    m = maildirsize.parse(text)
    assert (m.limit_bytes, m.limit_messages, m.used_bytes, m.used_messages, m.bad_lines) == expected


def test_maildirsize_read(tmp_path):
    assert maildirsize.read(str(tmp_path / "absent")) is None
    (tmp_path / "maildirsize").write_text("10S\n4 1\n")
    assert maildirsize.read(str(tmp_path)).used_bytes == 4
