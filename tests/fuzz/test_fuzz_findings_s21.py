"""Regressions of the fuzz round of session 21 (new targets and 25-50x CI's budgets on new seeds).

Each test is one finding, reproduced outside the fuzzer, that failed before its fix:
- amavisd.conf reader (milters/amavis_conf.py), found by tests/fuzz/test_amavis_conf.py:
  * numbers raised out of the reader, so `owlery amavis import` stopped with a traceback on one
    line of a file: `0x_` (ValueError from int()), `²` (an AssertionError: str.isdigit() took it,
    the number pattern did not), a literal of over 4300 digits (Python's int() limit), a
    division of a 400-digit integer (OverflowError), a 3000-digit product interpolated (str()'s
    limit). Numbers are now Perl's: past 2**64 - 1 a double, printed as Perl prints one
    (%.15g, Inf: "$x" of 0.1 + 0.2 read as "0.30000000000000004"); a bad one is not understood;
  * values grew without bound: `@a = (@a, @a);` doubled a list, `$t = [$t, $t];` a shared tree
    (whose interpolation "$t" then printed 2**n nodes), `$s = $s . $s;` a string, `$n = $n * $n;`
    an integer's digits, each time the line ran: forty lines took all memory or time. Values
    are now bounded (MAX_VALUE_ITEMS, MAX_VALUE_CHARS, MAX_WORK per file), and a reference
    interpolated is Unknown (Perl prints an address), undef interpolates as "" (was "None");
  * each qr's flags were read from a copy of the rest of the file: quadratic, minutes for
    1 MiB of `qr//;`.
- bounded HTTP server (owlery/bounded_http.py), found by tests/fuzz/test_bounded_http.py:
  * `Transfer-Encoding: identity` was taken as no coding (Twisted's reading), so beside a
    Content-Length the body was framed by the length, and alone the body was read as the next
    request: a request smuggled past a proxy that frames it otherwise (RFC 9112 6.3: a
    request whose final coding is not chunked MUST get 400 and a close). Medium: the web UI
    is meant to sit behind a reverse proxy;
  * a connection the idle limit closed was closed again when the whole-request deadline came
    (and the other way round): a second loseConnection, a second log line, and on a transport
    that checks it (StringTransport) a RuntimeError out of the timer. Low.
"""

from __future__ import annotations

import pytest

from milters import amavis_conf as ac
from tests.fuzz import test_amavis_conf as fa
from tests.fuzz import test_bounded_http as fh

# --- amavisd.conf reader ------------------------------------------------------------------------------


def _read(text: str) -> ac.Config:
    config = ac.Config()
    ac.read_text(text, "amavisd.conf", config)
    return config


@pytest.mark.parametrize("text", ["$x = 0x_;", "$x = \u00b2;", "$x = 1 + \u00b2;", "$x = " + "9" * 5000 + ";",
                                  "$x = 1" + "0" * 400 + " / 1;",
                                  "$x = " + "*".join(["9" * 3000] * 2) + "; $y = \"$x\";",
                                  "$x = 0x" + "f" * 5000 + " . '';"])
def test_amavis_odd_numbers_are_read_or_reported_never_raised(text):
    config = _read(text + "\n$after = 1;")
    assert config.scalars["after"].value == 1
    fa.check(text)


def test_amavis_numbers_are_perls():
    config = _read("$big = 18446744073709551615 + 1; $huge = " + "9" * 400 + "; $hex = 0xFF; $x = 0x_;")
    assert config.scalars["big"].value == 18446744073709551616.0 and isinstance(config.scalars["big"].value, float)
    assert config.scalars["huge"].value == float("inf")
    assert config.scalars["hex"].value == 255
    assert isinstance(config.scalars["x"].value, ac.Unknown)
    # and print as Perl prints them ("%.15g"): "$x" of 0.1 + 0.2 is 0.3 in amavisd
    config = _read("$a = 0.1 + 0.2; $b = \"$a\"; $c = 18446744073709551615 + 1; $d = \"$c\"; $e = 1e999 . '';")
    assert [config.scalars[k].value for k in "bde"] == ["0.3", "1.84467440737096e+19", "Inf"]


@pytest.mark.parametrize("text", ["@a = (1, 1);" + "@a = (@a, @a);" * 17,
                                  "$t = [1];" + "$t = [$t, $t];" * 17,
                                  "$s = 'xx';" + "$s = $s . $s;" * 20,
                                  "$s = 'xx';" + "$s = \"$s$s\";" * 20,
                                  "$n = 9;" + "$n = $n * $n;" * 14,
                                  "@a = (1.." + ", 1..".join(["10000"] * 30) + ");"])
def test_amavis_values_that_grow_each_line_are_bounded(text):
    fa.check(text)


def test_amavis_interpolated_reference_is_unknown_and_undef_empty():
    config = _read("$t = [1];" + "$t = [$t, $t];" * 12 + "$u = \"$t\"; $v = undef; $w = \"a${v}b\";")
    assert isinstance(config.scalars["u"].value, ac.Unknown)
    assert config.scalars["w"].value == "ab"


def test_amavis_qr_flags_are_not_read_from_a_copy_of_the_rest():
    fa.check("$x = qr/a/i;\n" * 3000)


# --- bounded HTTP server ---------------------------------------------------------------------------------

@pytest.mark.parametrize("framing", [b"Transfer-Encoding: identity\r\nContent-Length: 3",
                                     b"Content-Length: 3\r\nTransfer-Encoding: identity",
                                     b"Transfer-Encoding: identity", b"Transfer-Encoding: IDENTITY"])
def test_http_transfer_encoding_identity_is_refused_and_smuggles_nothing(framing):
    data = b"POST / HTTP/1.1\r\nHost: a.test\r\n" + framing + b"\r\n\r\nabc" + fh.SMUGGLED
    responses = fh.check(data, [])
    assert [status for status, _, _ in responses] == [400]


@pytest.mark.parametrize("cuts", [[28], list(range(1, 30))])
def test_http_idle_limit_and_request_deadline_close_once(cuts):
    """A whole request, then one byte of the next: the idle limit (3 s) closes the connection;
    the whole-request deadline (5 s) must not close it again."""
    responses = fh.check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nG", cuts)
    assert [status for status, _, _ in responses] == [200]
