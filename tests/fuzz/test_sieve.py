"""Fuzz: the Sieve lexer, parser, validator and interpreter (complements tests/sieve/test_fuzz.py).

tests/sieve/test_fuzz.py feeds token soup and three inline scripts with small overwrites. Here:
- compile arbitrary bytes and text, and the corpus scripts (tests/fuzz/corpus/sieve/) under
  byte and token mutations: only SieveCompileError, never another exception;
- lexer round trips: any text written as a quoted string, any lines written as a `text:`
  multi-line string, any number with a quantifier come back as written (RFC 5228 2.4);
- parser round trip: a random syntax tree, written out with random white space and
  comments between tokens, parses back to the same tree;
- the interpreter on random scripts built from the extension registry (every command, test,
  tag, match type, comparator and address part it declares) x random MIME messages and
  envelopes: a run never raises, ends ok/error/resource_limit (tempfail only when the host
  fails), its effective actions follow the Result contract, and it stops within the CPU
  budget (bounded time).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from owlery.settings import Settings
from sieve.api import Envelope, Keep, MemoryHost, SieveCompileError, SieveTempFailure, compile_script, run
from sieve.errors import SieveSyntaxError
from sieve.extensions import REGISTRY
from sieve.extensions.base import NUMBER, STRING, STRINGLIST
from sieve.lexer import EOF, NUMBER as TOK_NUMBER, STRING as TOK_STRING, tokenize
from sieve.parser import Node, Num, StrList, Tag, parse
from tests.fuzz.fuzzlib import budget, corpus, mime_message, mutants

SETTINGS = Settings().replace(sieve_max_cpu_steps=20000, sieve_max_memory=1 << 20)
NOW = dt.datetime(2026, 3, 2, 10, 0, 0, tzinfo=dt.timezone.utc)
SCRIPTS = corpus("sieve", ".sieve")
MESSAGES = corpus("milter", ".eml") + corpus("banned", ".eml")
TOKENS = [b"if ", b"elsif ", b"else ", b"{", b"}", b"(", b")", b"[", b"]", b";", b",", b"\"", b"\\", b"text:\n",
          b"\n.\n", b"/*", b"*/", b"#", b":", b":is ", b":matches ", b":regex ", b":count ", b":comparator ",
          b"${", b"}", b"${1}", b"${hex:", b"${unicode:", b"9999999999999999999999K", b"1G", b"anyof(", b"not ",
          b"require \"variables\";", b"foreverypart {", b"\x00", b"\xff", b"\r", "\u00e9".encode()]
# Text without lone surrogates: compile_script(str) encodes the text to measure it, and a lone
# surrogate outside surrogateescape's range cannot be encoded (see the report).
script_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


def check_compile(source) -> object | None:
    """The compiled script, or None when it does not compile (with a SieveCompileError only)."""
    try:
        return compile_script(source, settings=SETTINGS)
    except SieveCompileError as e:
        assert e.diagnostics and all(d.line >= 0 and d.column >= 0 for d in e.diagnostics)
        return None


# --- compile anything ------------------------------------------------------------------------

@budget(200)
@given(source=st.one_of(st.binary(max_size=300), script_text))
@example(source=b"if size :over " + b"9" * 5000 + b" { keep; }")
@example(source="if size :over 1" + "0" * 4400 + "K { keep; }")
@example(source=b"keep" + b"\xff" * 3)
def test_arbitrary_input_only_compile_errors(source):
    check_compile(source)


@budget(200)
@given(source=mutants(SCRIPTS, TOKENS, max_ops=4), message=st.sampled_from(MESSAGES))
def test_mutated_corpus_scripts(source, message):
    script = check_compile(source)
    if script is not None:
        check_run(script, message, Envelope("alice@example.net", "bob+lists@example.test"))


def test_regression_huge_number_is_a_syntax_error():
    """A number literal of more than 4300 digits made int() raise ValueError (Python's limit on
    int/str conversions) out of the lexer instead of a compile error."""
    with pytest.raises(SieveCompileError, match="number exceeds integer limits"):
        compile_script(b"if size :over " + b"9" * 5000 + b" { keep; }", settings=SETTINGS)
    with pytest.raises(SieveCompileError, match="number exceeds integer limits"):
        compile_script(b"if size :over " + b"1" * 21 + b" { keep; }", settings=SETTINGS)
    # leading zeros do not count: 0...01K is 1024
    script = compile_script(b"if size :over " + b"0" * 5000 + b"1K { keep; }", settings=SETTINGS)
    assert script.tree[0].tests[0].tags["size"].value == 1024


# --- lexer round trips ---------------------------------------------------------------------

def quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def crlf(s: str) -> str:
    return s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


@budget(200)
@given(s=script_text, pad=st.sampled_from(["", " ", "\t\r\n", "# c\n", "/* x\n */"]))
def test_quoted_strings_round_trip(s, pad):
    if "\x00" in s:
        # RFC 5228 8.1: NUL is allowed nowhere in a script
        with pytest.raises(SieveSyntaxError, match="NUL character"):
            tokenize(pad + quoted(s) + pad, 1 << 20)
        return
    if "\r" in s.replace("\r\n", ""):
        # RFC 5228 8.1: a CR not followed by LF is not quoted-safe: a syntax error
        with pytest.raises(SieveSyntaxError, match="carriage-return"):
            tokenize(pad + quoted(s) + pad, 1 << 20)
        return
    toks = tokenize(pad + quoted(s) + pad, 1 << 20)
    assert [t.kind for t in toks] == [TOK_STRING, EOF]
    assert toks[0].value == crlf(s)


@budget(150)
@given(lines=st.lists(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=20),
                      max_size=8), head=st.sampled_from(["", " ", "\t# comment"]), eol=st.sampled_from(["\n", "\r\n"]))
def test_multiline_strings_round_trip(lines, head, eol):
    body = "".join(("." + line if line.startswith(".") else line) + eol for line in lines)
    if "\x00" in body:
        with pytest.raises(SieveSyntaxError, match="NUL character"):      # RFC 5228 8.1
            tokenize("text:" + head + eol + body + "." + eol, 1 << 20)
        return
    toks = tokenize("text:" + head + eol + body + "." + eol, 1 << 20)
    assert [t.kind for t in toks] == [TOK_STRING, EOF]
    assert toks[0].value == "".join(line + "\r\n" for line in lines)
    assert toks[0].multiline


@budget(150)
@given(n=st.integers(0, 1 << 64), zeros=st.integers(0, 30), q=st.sampled_from(["", "K", "M", "G", "k", "g"]))
def test_numbers_round_trip(n, zeros, q):
    text = "0" * zeros + str(n) + q
    value = n * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[q.upper()]
    try:
        toks = tokenize(text, 1 << 20)
    except SieveSyntaxError as e:
        assert value > (1 << 64) - 1, e
        return
    assert value <= (1 << 64) - 1
    assert [(t.kind, t.value) for t in toks[:-1]] == [(TOK_NUMBER, value)]


@budget(200)
@given(text=st.one_of(script_text, mutants(SCRIPTS, TOKENS, max_ops=3).map(lambda b: b.decode("utf-8", "replace"))))
@example(text="keep text:\nx\n.")             # the EOF after a final "." was put on a line past the end
@example(text="keep;\nvacation text:\nx")       # so was the error for an unterminated multi-line string
def test_token_positions(text):
    lines = text.count("\n") + 1
    try:
        toks = tokenize(text, 200)
    except SieveSyntaxError as e:
        assert 1 <= e.line <= lines and e.column >= 1
        return
    assert toks[-1].kind == EOF
    previous = (1, 0)
    for t in toks:
        assert 1 <= t.line <= lines and t.column >= 1
        assert (t.line, t.column) > previous or t.kind == EOF
        previous = (t.line, t.column)
        if t.kind == TOK_STRING:
            assert len(t.value) <= 2 * 200 + 2     # bare LF counts 1 in the limit, is stored as CRLF


# --- parser round trip -----------------------------------------------------------------------

identifier = st.one_of(st.sampled_from(["if", "keep", "Header", "anyof", "_x9", "a", "TEXT1", "text_"]),
                       st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)).filter(lambda w: w.lower() != "text")
string_value = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\x00"), max_size=12)
argument = st.one_of(
    st.tuples(st.just("str"), string_value, st.booleans()),
    st.tuples(st.just("list"), st.lists(string_value, min_size=1, max_size=3)),
    st.tuples(st.just("num"), st.integers(0, 1 << 40)),
    st.tuples(st.just("tag"), identifier),
)


def _tests(depth):
    return st.deferred(lambda: st.tuples(identifier, st.lists(argument, max_size=3),
                                         st.lists(_tests(depth + 1), max_size=2) if depth < 2 else st.just([])))


def _commands(depth):
    return st.lists(st.deferred(lambda: st.tuples(
        identifier, st.lists(argument, max_size=3), st.lists(_tests(1), max_size=2),
        st.one_of(st.none(), _commands(depth + 1)) if depth < 2 else st.none())), max_size=3 - depth)


GAPS = [" ", "  ", "\t", "\r\n", "\n", "# comment\n", "/* c */", "/* multi\nline */"]


def render(commands, gap) -> str:
    out: list[str] = []

    def arg(a):
        kind = a[0]
        if kind == "str":
            if a[2] and "\n" not in a[1]:
                out.append("text:" + gap(True) + "\n" + ("." + a[1] if a[1].startswith(".") else a[1]) + "\n.\n")
            else:
                out.append(quoted(a[1]))
        elif kind == "list":
            out.append("[" + ",".join(gap() + quoted(s) + gap() for s in a[1]) + "]")
        elif kind == "num":
            n = a[1]
            out.append(f"{n >> 30}G" if n and n % (1 << 30) == 0 else str(n))
        else:
            out.append(":" + a[1])
        out.append(gap())

    def test(t):
        out.append(t[0] + gap())
        for a in t[1]:
            arg(a)
        subtests(t[2])

    def subtests(ts):
        if len(ts) == 1:
            out.append(gap())
            test(ts[0])
        elif ts:
            out.append("(" + gap())
            for i, t in enumerate(ts):
                out.append("," + gap() if i else "")
                test(t)
            out.append(")" + gap())

    def block(cs):
        for c in cs:
            out.append(c[0] + " ")
            for a in c[1]:
                arg(a)
            subtests(c[2])
            if c[3] is None:
                out.append(";" + gap())
            else:
                out.append("{" + gap())
                block(c[3])
                out.append("}" + gap())
    block(commands)
    return "".join(out)


def shape_arg(a):
    if a[0] == "str":
        value = a[1] + "\r\n" if a[2] and "\n" not in a[1] else a[1]
        return ("list", (crlf(value),), False)
    if a[0] == "list":
        return ("list", tuple(crlf(s) for s in a[1]), True)
    if a[0] == "num":
        return ("num", a[1])
    return ("tag", a[1].lower())


def shape_generated(commands):
    def test(t):
        return (t[0].lower(), tuple(shape_arg(a) for a in t[1]), tuple(test(x) for x in t[2]), None)
    return tuple((c[0].lower(), tuple(shape_arg(a) for a in c[1]), tuple(test(t) for t in c[2]),
                  None if c[3] is None else shape_generated(c[3])) for c in commands)


def shape_parsed(nodes: list[Node]):
    def arg(a):
        if isinstance(a, StrList):
            return ("list", tuple(s.value for s in a.items), a.bracketed)
        if isinstance(a, Num):
            return ("num", a.value)
        assert isinstance(a, Tag)
        return ("tag", a.name)
    return tuple((n.name, tuple(arg(a) for a in n.args), tuple(shape_parsed(n.tests)),
                  None if n.block is None else shape_parsed(n.block)) for n in nodes)


@budget(200)
@given(commands=_commands(0), gaps=st.lists(st.sampled_from(GAPS), min_size=1, max_size=8))
def test_parser_round_trip(commands, gaps):
    it = iter(range(1 << 30))

    def gap(after_text_colon: bool = False) -> str:
        g = gaps[next(it) % len(gaps)]
        return " # c" if after_text_colon and "\n" in g else ("" if after_text_colon else g)
    text = render(commands, gap)
    assert shape_parsed(parse(text, max_nesting=32)) == shape_generated(commands), text


# --- random valid scripts x random messages ----------------------------------------------------

CAPABILITIES = sorted(n for n, e in REGISTRY.items() if not e.hidden)
DEFS = [c for e in REGISTRY.values() if not e.hidden for c in e.commands]
COMMANDS = sorted((c for c in DEFS if c.kind == "command" and c.name not in ("require", "if", "elsif", "else")),
                  key=lambda c: c.name)
TESTS = sorted((c for c in DEFS if c.kind == "test"), key=lambda c: c.name)
EXTRA_TAGS: dict[str, list] = {}
for _e in REGISTRY.values():
    if not _e.hidden:
        for _cmd, _tag in _e.extra_tags:
            EXTRA_TAGS.setdefault(_cmd, []).append(_tag)
MATCH_TYPES = [":is", ":contains", ":matches", ':regex', ':count "ge"', ':value "lt"', ':value "eq"']
COMPARATORS = ['"i;octet"', '"i;ascii-casemap"', '"i;ascii-numeric"']
ADDRESS_PARTS = [":all", ":localpart", ":domain", ":user", ":detail"]
HEADERS = ["subject", "from", "to", "received", "content-type", "x-spam", "date", "list-id", "message-id", "cc",
           "content-disposition", "X-Owlery-Score"]
KEYS = ["alice@example.net", "example.net", "*", "?", "*frop*", "a*b?c", "${1}", "${0}", "${subject}",
        "${hex:41 42}", "${unicode:1F600}", "^(a|b)+$", "(.*)@(.*)", "[", "1", "10", "-1", "99999999999999999999",
        "", "a" * 300, "\u00e9t\u00e9", "\\", "${", "x:y", "text", "plain", "2026", "+0100"]
MAILBOXES = ["INBOX", "INBOX.lists", "Junk", "INBOX.${1}", "Archive/2026", "INBOX.new"]
ADDRESSES = ["bob@example.test", "archive@example.test", "a@b", "${from}"]
DATE_PARTS = ["year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
              "std11", "zone", "weekday"]
# positional string hints: (command or test, position) -> likely values
HINTS = {("fileinto", 0): MAILBOXES, ("redirect", 0): ADDRESSES, ("include", 0): ["extra", "common"],
         ("header", 0): HEADERS, ("address", 0): HEADERS[:3], ("envelope", 0): ["from", "to", "auth"],
         ("exists", 0): HEADERS, ("date", 0): ["date", "received"], ("date", 1): DATE_PARTS,
         ("currentdate", 0): DATE_PARTS, ("notify", 0): ["mailto:bob@example.test", "mailto:?subject=x"],
         ("addheader", 0): ["X-Sieve", "X-Spam", "Subject"], ("deleteheader", 0): HEADERS,
         ("set", 0): ["a", "subject", "from", "b.c", "x1"], ("string", 0): ["${a}", "${subject}", "abc"],
         ("environment", 0): ["remote-host", "remote-ip", "location", "phase", "domain", "name"],
         ("mailboxexists", 0): MAILBOXES, ("metadata", 0): ["INBOX"], ("metadata", 1): ["/private/comment"],
         ("spamtest", 0): ["5", "10"], ("virustest", 0): ["1", "5"], ("extracttext", 0): ["snippet", "t"],
         ("global", 0): ["g", "from"], ("vacation", 0): ["away", ""],
         ("metadataexists", 1): ["/private/comment"], ("servermetadata", 0): ["/shared/admin"],
         ("servermetadataexists", 0): ["/shared/admin"],
         ("valid_notify_method", 0): ["mailto:a@b", "xmpp:x"], ("error", 0): ["stop here"],
         ("reject", 0): ["no thanks"], ("ereject", 0): ["no"], ("specialuse_exists", 0): ["\\Junk"]}
TAG_HINTS = {"zone": ["+0100", "-0800"], "from": ADDRESSES, "addresses": ADDRESSES, "subject": ["away ${1}"],
             "handle": ["h1"], "header": HEADERS, "uniqueid": ["${1}"], "message": ["new mail"], "options": ["x=y"],
             "importance": ["1", "2", "3"], "name": ["outer"], "flags": ["\\Seen", "$x"], "specialuse": ["\\Junk"],
             "content": ["text", "text/plain"], "param": ["filename", "charset"], "comparator": ["i;octet"]}


def _string(draw, hints=()) -> str:
    choice = draw(st.integers(0, 9))
    if hints and choice < 6:
        return quoted(draw(st.sampled_from(hints)))
    if choice < 9:
        return quoted(draw(st.sampled_from(KEYS)))
    return quoted(draw(script_text)[:8])


def _value(draw, kind: str, hints=()) -> str:
    if kind == NUMBER:
        return draw(st.sampled_from(["0", "1", "3", "10", "100K", "1M", "86400", "9999999"]))
    if kind == STRING or draw(st.booleans()):
        return _string(draw, hints)
    assert kind == STRINGLIST
    return "[" + ", ".join(_string(draw, hints) for _ in range(draw(st.integers(1, 3)))) + "]"


def _arguments(draw, d, in_loop: bool) -> list[str]:
    words = [d.name]
    tags = list(d.tags) + EXTRA_TAGS.get(d.name, [])
    if d.name == "break" and not in_loop:
        tags = []
    for tag in draw(st.lists(st.sampled_from(tags), max_size=2, unique_by=lambda t: t.slot)) if tags else []:
        words.append(":" + tag.name + (" " + _value(draw, tag.param, TAG_HINTS.get(tag.name, ())) if tag.param else ""))
    if d.match:
        if draw(st.booleans()):
            words.append(draw(st.sampled_from(MATCH_TYPES)))
        if draw(st.integers(0, 3)) == 0:
            words.append(":comparator " + draw(st.sampled_from(COMPARATORS)))
    if d.address_part and draw(st.booleans()):
        words.append(draw(st.sampled_from(ADDRESS_PARTS)))
    npos = len(d.positional) - draw(st.integers(0, d.optional_positional))
    for i, kind in enumerate(d.positional[:npos]):
        if d.name in ("setflag", "addflag", "removeflag", "hasflag"):      # [variable] flags
            hints = ["fv", "x"] if i == 0 and npos == 2 else ["\\Seen", "$label", "\\Flagged \\Answered"]
        else:
            hints = HINTS.get((d.name, i), ())
        words.append(_value(draw, kind, hints))
    return words


@st.composite
def sieve_test(draw, depth: int = 0) -> str:
    d = draw(st.sampled_from(TESTS))
    words = _arguments(draw, d, False)
    if d.subtests == 1:
        words.append(draw(sieve_test(depth + 1)) if depth < 3 else "true")
    elif d.subtests == "list":
        n = draw(st.integers(1, 3 if depth < 3 else 1))
        words.append("(" + ", ".join(draw(sieve_test(depth + 1)) if depth < 3 else "false" for _ in range(n)) + ")")
    return " ".join(words)


@st.composite
def sieve_block(draw, depth: int = 0, in_loop: bool = False) -> str:
    out = []
    commands = COMMANDS if in_loop else [c for c in COMMANDS if c.name not in ("break", "extracttext")]
    for _ in range(draw(st.integers(0 if depth else 1, 4 if depth < 2 else 2))):
        if draw(st.integers(0, 3)) == 0:
            chain = "if " + draw(sieve_test()) + " {\n" + draw(sieve_block(depth + 1, in_loop)) + "}\n"
            for _ in range(draw(st.integers(0, 2))):
                chain += "elsif " + draw(sieve_test()) + " {\n" + draw(sieve_block(depth + 1, in_loop)) + "}\n"
            if draw(st.booleans()):
                chain += "else {\n" + draw(sieve_block(depth + 1, in_loop)) + "}\n"
            out.append(chain)
            continue
        d = draw(st.sampled_from(commands))
        if d.toplevel_only and depth:
            continue
        words = _arguments(draw, d, in_loop)
        if d.block == "required" or (d.block == "optional" and draw(st.booleans())):
            inner = draw(sieve_block(depth + 1, in_loop or d.name == "foreverypart")) if depth < 3 else ""
            out.append(" ".join(words) + " {\n" + inner + "}\n")
        else:
            out.append(" ".join(words) + ";\n")
    return "".join(out)


@st.composite
def sieve_script(draw) -> str:
    caps = CAPABILITIES if draw(st.integers(0, 7)) else draw(st.lists(st.sampled_from(CAPABILITIES), unique=True))
    head = "require [" + ", ".join(quoted(c) for c in caps) + "];\n" if caps else ""
    return head + draw(sieve_block())


class FailingHost(MemoryHost):
    """A host whose tracking database is down."""

    def seen(self, key: str) -> bool:
        raise SieveTempFailure("tracking database down")


def host(failing: bool) -> MemoryHost:
    scripts = {("personal", "extra"): b"keep;", ("global", "common"): b'require ["variables", "include"]; global "g";'
               b' set "g" "x"; if header :contains "subject" "loop" { include :personal "extra"; }'}
    cls = FailingHost if failing else MemoryHost
    return cls(mailboxes=("INBOX", "Junk", "INBOX.lists"), scripts=scripts, special_use={"\\junk": "Junk"})


def check_run(script, message: bytes, envelope: Envelope, failing: bool = False) -> None:
    start = time.process_time()
    result = run(script, message, envelope, host=host(failing), settings=SETTINGS, now=NOW,
                 environment={"remote-host": "mx.example.org", "remote-ip": "192.0.2.10"})
    elapsed = time.process_time() - start
    assert elapsed < 10, f"run took {elapsed:.1f}s of CPU"       # the step budget stops a run long before
    assert result.status in ("ok", "error", "resource_limit", "tempfail")
    assert result.status != "tempfail" or failing
    actions = result.effective_actions()
    if result.status == "tempfail":
        assert actions == []
    elif result.status != "ok":
        assert actions == [Keep(mailbox="INBOX", implicit=True)] and result.errors
    elif result.implicit_keep:
        assert any(isinstance(a, Keep) and a.implicit for a in actions)
    assert isinstance(result.message, bytes)


envelopes = st.builds(Envelope, st.sampled_from(["alice@example.net", "", "a@b", "\u00e9@x", "<>", "x" * 200]),
                      st.sampled_from(["bob+lists@example.test", "bob@example.test", "", "+@", "a+b+c@d"]),
                      st.sampled_from([None, "bob@example.test", ""]), st.sampled_from([None, "alice"]))
messages = st.one_of(st.sampled_from(MESSAGES), mime_message(), st.binary(max_size=200))


@budget(150)
@given(source=sieve_script(), message=messages, envelope=envelopes, failing=st.integers(0, 9).map(lambda n: n == 0))
def test_random_valid_scripts_on_random_messages(source, message, envelope, failing):
    script = check_compile(source)
    if script is not None:
        check_run(script, message, envelope, failing)


def fuzz_one(data: bytes) -> None:
    """atheris entry: script and message separated by the first NUL byte."""
    source, _, message = data.partition(b"\0")
    script = check_compile(source)
    if script is not None:
        check_run(script, message, Envelope("alice@example.net", "bob+lists@example.test"))

