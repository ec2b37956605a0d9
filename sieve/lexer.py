"""Sieve lexer (RFC 5228 section 8.1): script text to tokens carrying line and column.

Strings keep RFC 5228 semantics: quoted-string escapes, `text:` multi-line strings with
dot-unstuffing, and bare LF stored as CRLF (as the RFC's CRLF-based grammar implies).
Used by sieve.parser. Tests: tests/fuzz/test_sieve.py (round trips, positions, huge numbers),
tests/sieve/test_fuzz.py, tests/sieve/test_limits.py (string length), the conformance run
(tests/sieve/test_conformance.py, compile/errors/lexer.sieve).
"""

from __future__ import annotations

from owlery.record import Record
from sieve.errors import SieveSyntaxError

# token kinds (GARBAGE: characters no token starts with, kept so the parser can resume after them)
IDENT, TAG, NUMBER, STRING, PUNCT, EOF = "identifier", "tag", "number", "string", "punct", "end of script"
GARBAGE = "garbage"

_QUANT = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_IDSTART = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDCHARS = _IDSTART | set("0123456789")
_PUNCT = set(";,[](){}")
MAX_NUMBER = (1 << 64) - 1          # Pigeonhole's sieve_number_t (sievec: "max 18446744073709551615")
_MAX_NUMBER_DIGITS = len(str(MAX_NUMBER))      # more significant digits are too large whatever they are
# No RFC identifier is longer than 24 characters; Pigeonhole refuses more than 32 (so do we).
MAX_IDENTIFIER = 32
_TOKEN_START = _IDSTART | set("0123456789") | _PUNCT | set(':"#/ \t\r\n')


class Token(Record, frozen=True, slots=True):
    kind: str
    value: object
    line: int
    column: int
    multiline: bool = False

    def __init__(self, kind: str, value: object, line: int, column: int, multiline: bool = False):
        # written out (Record's generic __init__ costs ~2 us a call; a script has many tokens)
        setter = object.__setattr__
        setter(self, "kind", kind)
        setter(self, "value", value)
        setter(self, "line", line)
        setter(self, "column", column)
        setter(self, "multiline", multiline)

    def describe(self) -> str:
        if self.kind == PUNCT:
            return f"'{self.value}'"
        if self.kind == STRING:
            return "string"
        if self.kind == EOF:
            return "end of script"
        if self.kind == GARBAGE:
            return "unknown characters"
        return f"{self.kind} '{self.value}'" if self.kind != TAG else f"tag ':{self.value}'"


def _to_crlf(s: str) -> str:
    if "\n" not in s and "\r" not in s:
        return s
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    return s.replace("\n", "\r\n")


def tokenize(text: str, max_string: int, errors: list | None = None) -> list[Token]:
    """All tokens of `text` plus a final EOF token; raises SieveSyntaxError.

    With an `errors` list, errors the lexer can read past (a number too large, an identifier
    too long, stray characters) are appended to it as SieveSyntaxError and lexing goes on, so
    that one compile reports them all, as Pigeonhole does; the others still raise."""
    def soft(message: str, line: int, col: int) -> None:
        if errors is None:
            raise SieveSyntaxError(message, line, col)
        errors.append(SieveSyntaxError(message, line, col))

    nul = text.find("\x00")
    if nul >= 0:
        # RFC 5228 8.1 allows NUL nowhere: not in strings (quoted or text:), not in comments
        # (octet-not-crlf starts at %x01); Pigeonhole refuses such a script too.
        start = text.rfind("\n", 0, nul) + 1
        raise SieveSyntaxError("NUL character in the script", text.count("\n", 0, nul) + 1, nul - start + 1)
    toks: list[Token] = []
    i, n = 0, len(text)
    line, lstart = 1, 0
    append = toks.append
    while True:
        # skip white space and comments
        while i < n:
            c = text[i]
            if c == "\n":
                line += 1
                lstart = i + 1
                i += 1
            elif c in " \t\r":
                i += 1
            elif c == "#":
                j = text.find("\n", i)
                i = n if j < 0 else j
            elif c == "/" and text.startswith("/*", i):
                j = text.find("*/", i + 2)
                if j < 0:
                    raise SieveSyntaxError("end of file before end of bracket comment ('*/' missing)",
                                           line, i - lstart + 1)
                line += text.count("\n", i, j)
                k = text.rfind("\n", i, j)
                if k >= 0:
                    lstart = k + 1
                i = j + 2
            else:
                break
        if i >= n:
            append(Token(EOF, None, line, i - lstart + 1))
            return toks
        c = text[i]
        col = i - lstart + 1
        if c in _PUNCT:
            append(Token(PUNCT, c, line, col))
            i += 1
        elif c == ":":
            j = i + 1
            if j < n and text[j] in _IDSTART:
                while j < n and text[j] in _IDCHARS:
                    j += 1
                if j - i - 1 > MAX_IDENTIFIER:
                    soft(f"encountered impossibly long tag identifier '{text[i:i + 30]}...'", line, col)
                append(Token(TAG, text[i + 1:j], line, col))
                i = j
            else:
                raise SieveSyntaxError("unexpected character ':' (a tag name must follow)", line, col)
        elif c.isdigit() and c in "0123456789":
            j = i
            while j < n and text[j] in "0123456789":
                j += 1
            digits = text[i:j].lstrip("0") or "0"
            # before int(): Python refuses to convert more than 4300 digits (ValueError)
            value = int(digits) if len(digits) <= _MAX_NUMBER_DIGITS else MAX_NUMBER + 1
            if j < n and text[j] in "KMGkmg":
                value *= _QUANT[text[j].upper()]
                j += 1
            # (letters right after a number start the next token, as in Pigeonhole: `123abc`)
            if value > MAX_NUMBER:
                soft(f"number is too large (exceeds the integer limit {MAX_NUMBER})", line, col)
                value = MAX_NUMBER
            append(Token(NUMBER, value, line, col))
            i = j
        elif c in _IDSTART:
            j = i
            while j < n and text[j] in _IDCHARS:
                j += 1
            word = text[i:j]
            if word.lower() == "text" and j < n and text[j] == ":":
                tline = line
                # multi-line string: "text:" *(SP / HTAB) (hash-comment / CRLF)
                k = j + 1
                while k < n and text[k] in " \t":
                    k += 1
                if k < n and text[k] == "#":
                    e = text.find("\n", k)
                    k = n if e < 0 else e
                if k < n and text[k] == "\r":
                    k += 1
                if k >= n or text[k] != "\n":
                    raise SieveSyntaxError("invalid multi-line string: text: must be followed by "
                                           "a line break", line, col)
                k += 1
                line += 1
                lstart = k
                parts = []
                size = 0
                while True:
                    if k >= n:
                        raise SieveSyntaxError("end of file before end of multi-line string "
                                               "(missing '.' line)", line, 1)
                    e = text.find("\n", k)
                    if e < 0:
                        raw = text[k:]
                        e = n
                    else:
                        raw = text[k:e]
                    if raw.endswith("\r"):
                        raw = raw[:-1]
                    if e >= n:
                        # the last line, without a line break: a "." ends the string (leniently),
                        # anything else leaves it unterminated; positions stay on this line
                        if raw != ".":
                            raise SieveSyntaxError("end of file before end of multi-line string "
                                                   "(missing '.' line)", line, 1)
                        k = n
                        break
                    if raw == ".":
                        k = e + 1
                        line += 1
                        lstart = k
                        break
                    if raw.startswith(".."):
                        # dot-stuffing: only a '.' followed by another '.' is removed (RFC 5228
                        # 2.4.2, multiline-dotstart); ".x" stays ".x"
                        raw = raw[1:]
                    parts.append(raw + "\r\n")
                    size += len(raw) + 2
                    if size > max_string:
                        raise SieveSyntaxError("string is too long (sieve_max_string_length)", line, 1)
                    line += 1
                    k = e + 1
                    lstart = k
                append(Token(STRING, "".join(parts), tline, col, True))
                i = k
            else:
                if len(word) > MAX_IDENTIFIER:
                    soft(f"encountered impossibly long identifier '{word[:30]}...'", line, col)
                append(Token(IDENT, word, line, col))
                i = j
        elif c == '"':
            j = i + 1
            buf = []
            start_line = line
            seg = j
            while True:
                if j >= n:
                    raise SieveSyntaxError("end of file before end of quoted string", start_line, col)
                d = text[j]
                if d == '"':
                    buf.append(text[seg:j])
                    j += 1
                    break
                if d == "\r" and text[j + 1:j + 2] != "\n" or d == "\\" and text[j + 1:j + 2] == "\r" \
                        and text[j + 2:j + 3] != "\n":
                    # RFC 5228 8.1: quoted-safe is CRLF or an octet other than CR and LF (a bare
                    # LF is accepted as a line end, as Pigeonhole does; a bare CR is not)
                    raise SieveSyntaxError("stray carriage return (CR) in quoted string", line, j - lstart + 1)
                if d == "\\":
                    buf.append(text[seg:j])
                    if j + 1 < n:
                        buf.append(text[j + 1])
                        if text[j + 1] == "\n":
                            line += 1
                            lstart = j + 2
                    j += 2
                    seg = j
                    continue
                if d == "\n":
                    line += 1
                    lstart = j + 1
                j += 1
                if j - i > max_string + 2:
                    raise SieveSyntaxError("string is too long (sieve_max_string_length)", start_line, col)
            append(Token(STRING, _to_crlf("".join(buf)), start_line, col))
            i = j
        else:
            shown = f"'{c}'" if c.isprintable() else f"0x{ord(c):02x}"
            soft(f"unexpected character(s) starting with {shown}", line, col)
            j = i + 1
            while j < n and text[j] not in _TOKEN_START:
                j += 1
            append(Token(GARBAGE, text[i:j], line, col))
            i = j

