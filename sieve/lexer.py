"""Sieve lexer (RFC 5228 section 8.1): script text to tokens carrying line and column.

Strings keep RFC 5228 semantics: quoted-string escapes, `text:` multi-line strings with
dot-unstuffing, and bare LF stored as CRLF (as the RFC's CRLF-based grammar implies).
Used by sieve.parser, which reads the tokens as it goes (scan). Tests:
tests/sieve/test_syntax_recovery_differential.py (errors and recovery against sievec),
tests/fuzz/test_sieve.py (round trips, positions, huge numbers),
tests/sieve/test_fuzz.py, tests/sieve/test_limits.py (string length), the conformance run
(tests/sieve/test_conformance.py, compile/errors/lexer.sieve).
"""

from __future__ import annotations

from owlery.record import Record
from sieve.errors import SieveSyntaxError

# token kinds (GARBAGE: characters no token starts with, kept so the parser can resume after them;
# ':' and '/' that start no tag or comment are PUNCT tokens, as in Pigeonhole)
IDENT, TAG, NUMBER, STRING, PUNCT, EOF = "identifier", "tag", "number", "string", "punct", "end of script"
GARBAGE = "garbage"
# ERROR: a token the lexer could not read (an invalid number, identifier, string or comment),
# reported by the lexer; the parser adds no error of its own at it, as in Pigeonhole
ERROR = "error"

_QUANT = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_IDSTART = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDCHARS = _IDSTART | set("0123456789")
_PUNCT = set(";,[](){}")
MAX_NUMBER = (1 << 64) - 1          # Pigeonhole's sieve_number_t (sievec: "max 18446744073709551615")
_MAX_NUMBER_DIGITS = len(str(MAX_NUMBER))      # more significant digits are too large whatever they are
# No RFC identifier is longer than 24 characters; Pigeonhole refuses more than 32 (so do we).
MAX_IDENTIFIER = 32
# an overlong identifier is shown cut as Pigeonhole's str_sanitize(s, 32) does: 29 characters
# and "..." (a tag's ':' before them)
_SHOWN_IDENTIFIER = MAX_IDENTIFIER - 3
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
            return "end of file"
        if self.kind == GARBAGE:
            return "unknown characters"
        if self.kind == ERROR:
            return "invalid token"
        return self.kind              # (Pigeonhole names the kind only: "identifier", "tag", ...)


def _to_crlf(s: str) -> str:
    if "\n" not in s and "\r" not in s:
        return s
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    return s.replace("\n", "\r\n")


def _shown(c: str) -> str:
    """A character as Pigeonhole's messages show it: printable ASCII quoted, else its (first) octet."""
    o = ord(c)
    if 0xdc80 <= o <= 0xdcff:
        return f"0x{o - 0xdc00:02x}"          # an 8-bit octet that is no UTF-8 (surrogateescape)
    if o < 0x80:
        return f"'{c}'" if c.isprintable() else f"0x{o:02x}"
    return f"0x{c.encode('utf-8', 'surrogatepass')[0]:02x}"


def hash_comment_at_eof(text: str, max_string: int) -> int | None:
    """The line of the hash comment `text` ends in without a line break, or None. RFC 5228 8.1
    ends a hash comment with CRLF; sievec accepts one cut short by the end of the file, with a
    warning, and so do we (sieve.validator.compile_source). Lexes again, but only a text whose
    last line holds a '#'."""
    if text.endswith("\n") or "#" not in text[text.rfind("\n") + 1:]:
        return None
    found: list = []
    for _ in scan(text, max_string, [], found):
        pass
    return found[0] if found else None


def tokenize(text: str, max_string: int, errors: list | None = None) -> list[Token]:
    """All tokens of `text` plus a final EOF token (see scan)."""
    return list(scan(text, max_string, errors))


def scan(text: str, max_string: int, errors: list | None = None, eof_comment: list | None = None):
    """The tokens of `text`, one at a time as the parser asks for them, then an EOF token.

    Without `errors`, the first lexical error raises SieveSyntaxError. With an `errors` list,
    lexing goes on past every error, as Pigeonhole's lexer does, and each error is appended to
    the list (as SieveSyntaxError) just before the token it belongs to comes out: the parser
    reports it when it reaches that token, and what lies past the point where the parser gives
    up is not even read (as in sievec). The token an error belongs to is
    GARBAGE (stray characters: the parser then says what it expected there) or ERROR (a number,
    identifier, string or comment that is not valid: the parser adds no error of its own
    there). After a character that breaks a string or comment (NUL, a stray CR) lexing resumes
    at that character. Only the limit sieve_max_string_length still raises. `eof_comment`, a
    list, gets the line of a hash comment the text ends in without a line break."""
    def report(message: str, line: int, col: int) -> None:
        if errors is None:
            raise SieveSyntaxError(message, line, col)
        errors.append(SieveSyntaxError(message, line, col))

    if errors is None:
        nul = text.find("\x00")
        if nul >= 0:
            # RFC 5228 8.1 allows NUL nowhere: not in strings (quoted or text:), not in comments
            # (octet-not-crlf starts at %x01); Pigeonhole refuses such a script too.
            start = text.rfind("\n", 0, nul) + 1
            raise SieveSyntaxError("NUL character in the script", text.count("\n", 0, nul) + 1, nul - start + 1)
    i, n = 0, len(text)
    line, lstart = 1, 0
    # the next NUL and the next "*/" at or after a position, each searched for once per
    # occurrence so that lexing stays linear whatever the input (-2: not searched yet, -1: none)
    next_nul = next_close = -2

    def nul_from(pos: int) -> int:
        nonlocal next_nul
        if next_nul != -1 and next_nul < pos:
            next_nul = text.find("\x00", pos)
        return n if next_nul == -1 else next_nul

    while True:
        # skip white space and comments (a comment with a NUL, or never closed, is a token: ERROR)
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
                if j < 0 and eof_comment is not None and nul_from(i) >= n:
                    eof_comment.append(line)
                j = n if j < 0 else j
                if nul_from(i) < j:
                    break
                i = j
            elif c == "/" and text.startswith("/*", i):
                if next_close != -1 and next_close < i + 2:
                    next_close = text.find("*/", i + 2)
                if next_close == -1 or nul_from(i) < next_close:
                    break
                j = next_close
                line += text.count("\n", i, j)
                k = text.rfind("\n", i, j)
                if k >= 0:
                    lstart = k + 1
                i = j + 2
            else:
                break
        if i >= n:
            yield Token(EOF, None, line, i - lstart + 1)
            return
        c = text[i]
        col = i - lstart + 1
        if c in _PUNCT:
            yield Token(PUNCT, c, line, col)
            i += 1
        elif c == "#" or c == "/" and text.startswith("/*", i):
            cline = line
            z = nul_from(i)
            end = min(z, n)
            line += text.count("\n", i, end)
            k = text.rfind("\n", i, end)
            if k >= 0:
                lstart = k + 1
            if z < n:
                what = "hash comment" if c == "#" else "bracket comment"
                report(f"encountered NUL character in {what}", line, z - lstart + 1)
            else:
                report(f"end of file before end of bracket comment ('/* ... */') started at line {cline}",
                       line, n - lstart + 1)
            yield Token(ERROR, None, cline, col)
            i = end
        elif c == ":" or c == "/":
            j = i + 1
            if c == ":" and j < n and text[j] in _IDSTART:
                while j < n and text[j] in _IDCHARS:
                    j += 1
                if j - i - 1 > MAX_IDENTIFIER:
                    report(f"encountered impossibly long tag identifier '{text[i:i + 1 + _SHOWN_IDENTIFIER]}...'", line, col)
                    yield Token(ERROR, None, line, col)
                else:
                    yield Token(TAG, text[i + 1:j], line, col)
            else:
                # a colon no tag name follows, a slash no '*' follows: tokens of their own, as in
                # Pigeonhole (the parser says what it expected there)
                yield Token(PUNCT, c, line, col)
            i = j
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
                report(f"number exceeds integer limits (max {MAX_NUMBER})", line, col)
                yield Token(ERROR, None, line, col)
            else:
                yield Token(NUMBER, value, line, col)
            i = j
        elif c in _IDSTART:
            j = i
            while j < n and text[j] in _IDCHARS:
                j += 1
            word = text[i:j]
            if word.lower() != "text" or j >= n or text[j] != ":":
                if len(word) > MAX_IDENTIFIER:
                    report(f"encountered impossibly long identifier '{word[:_SHOWN_IDENTIFIER]}...'", line, col)
                    yield Token(ERROR, None, line, col)
                else:
                    yield Token(IDENT, word, line, col)
                i = j
                continue
            # multi-line string: "text:" *(SP / HTAB) (hash-comment / CRLF), then lines up to "." CRLF
            tline = line
            k = j + 1
            while k < n and text[k] in " \t":
                k += 1
            if k < n and text[k] == "#":
                e = text.find("\n", k)
                e = n if e < 0 else e
                k = min(e, nul_from(k))
            if k < n and text[k] == "\r":
                k += 1
            if k >= n or text[k] != "\n":
                if k >= n:
                    report("end of file before end of multi-line string", line, k - lstart + 1)
                else:
                    report(f"invalid character {_shown(text[k])} after 'text:' in multiline string",
                           line, k - lstart + 1)
                yield Token(ERROR, None, tline, col)
                i = k                         # (lexing resumes at that character)
                continue
            k += 1
            line += 1
            lstart = k
            parts = []
            size = 0
            bad = -1                          # where the string broke (-1: it did not)
            while True:
                e = text.find("\n", k)
                last = e < 0
                e = n if last else e
                # a NUL, or a CR that does not end the line, breaks the string (RFC 5228 8.1:
                # octet-not-crlf, from %x01)
                stop = min(nul_from(k), e)
                r = text.find("\r", k, stop)
                if r >= 0 and (r != e - 1 or last):
                    stop = r
                if stop < e:
                    # (Pigeonhole's words: a NUL in a multi-line string is "in quoted string")
                    what = ("encountered NUL character in quoted string" if text[stop] == "\x00"
                            else "found stray carriage-return (CR) character in multi-line string")
                    report(f"{what} started at line {tline}", line, stop - lstart + 1)
                    bad = stop
                    break
                if last:
                    # (the final "." needs its line break too: RFC 5228 8.1 multi-line)
                    report("end of file before end of multi-line string", line, n - lstart + 1)
                    bad = n
                    break
                raw = text[k:e - 1] if e > k and text[e - 1] == "\r" else text[k:e]
                k = e + 1
                line += 1
                lstart = k
                if raw == ".":
                    break
                if raw.startswith(".."):
                    # dot-stuffing: only a '.' followed by another '.' is removed (RFC 5228
                    # 2.4.2, multiline-dotstart); ".x" stays ".x"
                    raw = raw[1:]
                parts.append(raw + "\r\n")
                size += len(raw) + 2
                if size > max_string:
                    raise SieveSyntaxError("string is too long (sieve_max_string_length)", line - 1, 1)
            if bad >= 0:
                yield Token(ERROR, None, tline, col)
                i = bad
            else:
                yield Token(STRING, "".join(parts), tline, col, True)
                i = k
        elif c == '"':
            j = i + 1
            buf = []
            start_line = line
            seg = j
            bad = -1                          # where the string broke (-1: it did not)
            while True:
                if j >= n:
                    report(f"end of file before end of quoted string started at line {start_line}",
                           line, j - lstart + 1)
                    bad = n
                    break
                d = text[j]
                if d == '"':
                    buf.append(text[seg:j])
                    j += 1
                    break
                if d == "\\" and (text[j + 1:j + 2] == "\x00" or text[j + 1:j + 2] == "\r" and text[j + 2:j + 3] != "\n"):
                    j += 1                    # (an escaped NUL or stray CR: reported as one)
                    d = text[j]
                if d == "\x00":
                    report(f"encountered NUL character in quoted string started at line {start_line}",
                           line, j - lstart + 1)
                    bad = j
                    break
                if d == "\r" and text[j + 1:j + 2] != "\n":
                    # RFC 5228 8.1: quoted-safe is CRLF or an octet other than CR and LF (a bare
                    # LF is accepted as a line end, as Pigeonhole does; a bare CR is not)
                    report(f"found stray carriage-return (CR) character in quoted string started at line {start_line}",
                           line, j - lstart + 1)
                    bad = j
                    break
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
            if bad >= 0:
                yield Token(ERROR, None, start_line, col)
                i = bad                       # lexing resumes at what broke the string
            else:
                yield Token(STRING, _to_crlf("".join(buf)), start_line, col)
                i = j
        else:
            report(f"unexpected character(s) starting with {_shown(c)}", line, col)
            j = i + 1
            while j < n and text[j] not in _TOKEN_START:
                j += 1
            yield Token(GARBAGE, text[i:j], line, col)
            i = j
