"""The ManageSieve wire format (sieve/managesieve/protocol.py): command lines in, responses out."""

import pytest

from sieve.managesieve.protocol import (Atom, Bad, CommandReader, Fatal, Line, Oversized, String,
                                        capability_lines, literal, quoted, response, string, tag_code)


def items(data: bytes, reader=None, chunk=None, peak=None):
    """Everything `data` yields, fed whole or `chunk` bytes at a time; `peak` gets the most
    octets the reader held between two feeds."""
    reader = reader or CommandReader(max_line=200, literal_max=100, skip_max=1000)
    out = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        reader.feed(piece)
        while (item := reader.next()) is not None:
            out.append(item)
        if peak is not None:
            peak.append(reader.buffered)
    return out


@pytest.mark.parametrize("data,expected", [
    (b"CAPABILITY\r\n", [Line((Atom("CAPABILITY"),))]),
    (b"noop\n", [Line((Atom("noop"),))]),                                         # bare LF accepted
    (b'GETSCRIPT "a b"\r\n', [Line((Atom("GETSCRIPT"), String(b"a b")))]),
    (b'PUTSCRIPT "q\\"x\\\\" {5+}\r\nkeep;\r\n',
     [Line((Atom("PUTSCRIPT"), String(b'q"x\\'), String(b"keep;", literal=True)))]),
    (b'PUTSCRIPT "s" {5}\r\nkeep;\r\n',                                           # {n}: octets follow at once
     [Line((Atom("PUTSCRIPT"), String(b"s"), String(b"keep;", literal=True)))]),
    (b"RENAMESCRIPT {1+}\r\na {1+}\r\nb\r\n",                                     # literal, then more arguments
     [Line((Atom("RENAMESCRIPT"), String(b"a", literal=True), String(b"b", literal=True)))]),
    (b'HAVESPACE "x" 12345\r\n', [Line((Atom("HAVESPACE"), String(b"x"), Atom("12345")))]),
    (b'CHECKSCRIPT {0+}\r\n\r\n', [Line((Atom("CHECKSCRIPT"), String(b"", literal=True)))]),
    (b'X "\xc3\xa9t\xc3\xa9"\r\n', [Line((Atom("X"), String("été".encode())))]),
    (b"\r\n\r\nNOOP\r\n", [Line(()), Line(()), Line((Atom("NOOP"),))]),            # empty: no command name
    (b"NOOP\r\nLOGOUT\r\n", [Line((Atom("NOOP"),)), Line((Atom("LOGOUT"),))]),  # pipelined
    (b"X {3+}\r\na\r\n\r\n", [Line((Atom("X"), String(b"a\r\n", literal=True)))]),  # CRLF inside a literal
])
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_lines(data, expected, chunk):
    assert items(data, chunk=chunk) == expected


@pytest.mark.parametrize("data", [
    b'X "unterminated\r\n',
    b'X "bad \\n escape"\r\n',
    b'X "a"b\r\n',                      # no space between arguments
    b"X {12x}\r\n",
    b'X "nul\x00"\r\n',
    b"X (paren)\r\n",
    b"X \r\n",
    b"X {1+}\r\nab\r\n",                # after a literal: a space or the end of the line
])
def test_bad_lines_then_recover(data):
    out = items(data + b"NOOP\r\n")
    assert isinstance(out[0], Bad)
    assert out[1:] == [Line((Atom("NOOP"),))]


def test_bad_line_skips_its_literal():
    # A script sent after a line that does not parse must never be read as commands.
    script = b'DELETESCRIPT "precious"\r\nLOGOUT\r\n'
    out = items(b'PUTSCRIPT "oops {%d+}\r\n' % len(script) + script + b"\r\nNOOP\r\n")
    assert isinstance(out[0], Bad)
    assert out[1:] == [Line((Atom("NOOP"),))]


def test_oversized_literal_is_dropped_not_stored():
    big = b"x" * 500
    reader = CommandReader(max_line=200, literal_max=100, skip_max=1000)
    out = items(b'PUTSCRIPT "big" {500+}\r\n' + big + b"\r\nNOOP\r\n", reader, chunk=64)
    assert out == [Oversized((Atom("PUTSCRIPT"), String(b"big")), 500), Line((Atom("NOOP"),))]
    assert reader.buffered == 0


@pytest.mark.parametrize("data,reason", [
    (b"X " + b"a" * 300 + b"\r\n", "line too long"),
    (b"X " + b"a" * 300, "line too long"),                    # no LF yet: refused without waiting
    (b"X {1001+}\r\n", "literal too large"),
    (b"X {99999999999}\r\n", "literal too large"),            # beyond the RFC's number range
    (b"X {" + b"9" * 150 + b"}\r\n", "literal too large"),
])
def test_fatal(data, reason):
    reader = CommandReader(max_line=200, literal_max=100, skip_max=1000)
    out = items(data + b"NOOP\r\n", reader)
    assert out == [Fatal(reason)]
    reader.feed(b"NOOP\r\n")
    assert reader.next() is None          # nothing more is read from this connection


def test_line_length_excludes_literals_but_counts_continuations():
    reader = CommandReader(max_line=50, literal_max=100, skip_max=100)
    assert items(b"X {90+}\r\n" + b"y" * 90 + b"\r\n", reader) == [Line((Atom("X"), String(b"y" * 90, literal=True)))]
    reader = CommandReader(max_line=50, literal_max=100, skip_max=100)
    line = b"X {1+}\r\na " + b'"' + b"z" * 60 + b'"\r\n'
    assert items(line, reader) == [Fatal("line too long")]


def test_limits_change_between_commands():
    reader = CommandReader(max_line=200, literal_max=10, skip_max=10)
    reader.feed(b"NOOP\r\nX {50+}\r\n" + b"a" * 50 + b"\r\n")
    assert reader.next() == Line((Atom("NOOP"),))
    reader.set_limits(100, 1000)              # e.g. after login
    assert reader.next() == Line((Atom("X"), String(b"a" * 50, literal=True)))


def test_discard_drops_buffered_input():
    reader = CommandReader()
    reader.feed(b"STARTTLS\r\nDELETESCRIPT \"x\"\r\n")
    assert reader.next() == Line((Atom("STARTTLS"),))
    reader.discard()
    assert reader.next() is None


@pytest.mark.parametrize("value,wire", [
    ("abc", b'"abc"'),
    ('a"b\\c', b'"a\\"b\\\\c"'),
    ("été", '"été"'.encode()),
    ("two\r\nlines", b"{10}\r\ntwo\r\nlines"),
    ("x" * 1025, b"{1025}\r\n" + b"x" * 1025),
    (b"nul\0", b"{4}\r\nnul\0"),
])
def test_string(value, wire):
    assert string(value) == wire


def test_quoted_refuses_line_breaks():
    with pytest.raises(ValueError):
        quoted("a\nb")
    assert literal(b"ab") == b"{2}\r\nab"


@pytest.mark.parametrize("args,wire", [
    (("OK",), b"OK\r\n"),
    (("OK", None, "Done"), b'OK "Done"\r\n'),
    (("NO", "QUOTA/MAXSCRIPTS", "Too many"), b'NO (QUOTA/MAXSCRIPTS) "Too many"\r\n'),
    (("NO", None, "line 1: a\r\nline 2: b"), b"NO {20}\r\nline 1: a\r\nline 2: b\r\n"),
    (("OK", tag_code(b"t1"), "Done"), b'OK (TAG "t1") "Done"\r\n'),
    (("BYE", None, "Bye"), b'BYE "Bye"\r\n'),
])
def test_response(args, wire):
    assert response(*args) == wire


def test_response_kind_is_checked():
    with pytest.raises(ValueError):
        response("MAYBE")


def test_capability_lines():
    assert capability_lines([("IMPLEMENTATION", "Owlery"), ("STARTTLS", None), ("SASL", "")]) == (
        b'"IMPLEMENTATION" "Owlery"\r\n"STARTTLS"\r\n"SASL" ""\r\n')
