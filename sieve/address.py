"""RFC 5322 address-list parsing for the address test: groups, comments, quoted strings,
route-free angle addresses; and the address parts :all :localpart :domain :user :detail.

Pure functions over header text. Used by sieve.extensions.core (address), envelope,
subaddress and others. Tests: tests/sieve/test_rfc_fixes.py (address items, quoting);
tests/sieve/test_address_differential.py (generated fields against sieve-test); the conformance run (tests/sieve/test_conformance.py:
test-address.svtest, envelope, subaddress), tests/sieve/test_api.py (envelope :detail),
tests/sieve/test_generated_mail_safety.py (vacation and notify addresses).
"""

from __future__ import annotations

from owlery.lazyre import lazy
from owlery.record import Record

_SPECIALS = set('()<>[]:;@\\,."')


class SieveAddress(Record, frozen=True):
    local: str
    domain: str | None       # None when the address has no domain part
    display: str = ""

    @property
    def all(self) -> str:
        return self.local if self.domain is None else f"{self.local}@{self.domain}"


class AddressError(ValueError):
    pass


def _tokens(text: str, tolerant: bool = False) -> list[tuple[str, str]]:
    """Lexical tokens; an unterminated comment, quoted string or domain literal raises
    AddressError, or (tolerant) ends the list with an ("err", "") token."""
    try:
        return _lex(text)
    except _LexError as e:
        if not tolerant:
            raise AddressError(str(e)) from None
        return e.tokens + [("err", "")]


class _LexError(Exception):
    def __init__(self, msg: str, tokens: list):
        super().__init__(msg)
        self.tokens = tokens


def _lex(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 1
            i += 1
            while i < n and depth:
                if text[i] == "\\":
                    i += 2
                    continue
                if text[i] == "(":
                    depth += 1
                elif text[i] == ")":
                    depth -= 1
                i += 1
            if depth:
                raise _LexError("unterminated comment", out)
        elif c == '"':
            i += 1
            buf = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if text[i] not in "\r\n":
                    buf.append(text[i])
                i += 1
            if i >= n:
                raise _LexError("unterminated quoted string", out)
            i += 1
            out.append(("qs", "".join(buf)))
        elif c == "[":
            # up to the first ']' that is not a quoted-pair's (obs-dtext, RFC 5322 3.4.1/4.4:
            # 'a@[a\\]b]' is one literal, kept as written, as Pigeonhole reads it)
            j = i + 1
            while j < n and text[j] != "]":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise _LexError("unterminated domain literal", out)
            out.append(("dl", text[i:j + 1]))
            i = j + 1
        elif c == "\\":
            # a quoted-pair is only valid in a quoted string or comment (RFC 5322 3.2.1): a
            # stray backslash leaves the rest of the field unreadable, as for Pigeonhole
            raise _LexError("stray backslash", out)
        elif c == "." and i + 1 < n and text[i + 1] in " \t\r\n(":
            # a dot with white space or a comment after it: a word must follow in a local part
            # (_dot_join)
            out.append(("sp", ". "))
            i += 1
        elif c in _SPECIALS:
            out.append(("sp", c))
            i += 1
        else:
            j = i
            while j < n and text[j] not in _SPECIALS and text[j] not in " \t\r\n":
                j += 1
            out.append(("atom", text[i:j]))
            i = j
    return out


def _addr_spec(toks: list[tuple[str, str]], display: str) -> SieveAddress:
    if not toks:
        raise AddressError("empty address")
    at = None
    for k in range(len(toks) - 1, -1, -1):
        if toks[k] == ("sp", "@"):
            at = k
            break
    local_t = toks if at is None else toks[:at]
    dom_t = [] if at is None else toks[at + 1:]
    local = _dot_join(local_t, allow_qs=True, lax_dots=True)
    if at is None:
        raise AddressError("missing domain")
    domain = _domain(dom_t)
    if not local or not domain:
        raise AddressError("empty local part or domain")
    if not local.isascii():
        # RFC 5322 3.2.3/3.2.4: atext and qtext are US-ASCII (8-bit local parts need
        # SMTPUTF8, RFC 6532, which a header address test cannot assume); as Pigeonhole
        raise AddressError("non-ASCII local part")
    return SieveAddress(local, domain, display)


def _domain(toks) -> str:
    """A domain: atoms joined by dots, or one domain literal alone (RFC 5322 3.4.1: domain =
    dot-atom / domain-literal / obs-domain; no '[' unquoted in a literal: dtext excludes it).
    'x.[1.2.3.4]', '[1.2.3.4].com' and '[a[b]' are no domains, as for Pigeonhole.
    Tests: tests/sieve/test_address_differential.py (test_fixed_address_fields)"""
    if any(kind == "dl" for kind, _ in toks):
        if len(toks) != 1 or not _literal_ok(toks[0][1]):
            raise AddressError("invalid domain literal")
        return toks[0][1]
    return _dot_join(toks, allow_qs=False)


def _literal_ok(literal: str) -> bool:
    """Whether a '[...]' token holds no '[' but in a quoted-pair."""
    i = 1
    while i < len(literal) - 1:
        if literal[i] == "\\":
            i += 2
            continue
        if literal[i] == "[":
            return False
        i += 1
    return True


def _dot_join(toks, allow_qs: bool, lax_dots: bool = False) -> str:
    """Words joined by dots. `lax_dots` (a local part): a dot may also lead, trail or follow
    another dot, as in Japanese mobile addresses (`taro..yamada.@docomo.ne.jp`). RFC 5322
    3.4.1 has no empty word even in obs-local-part, but such addresses are real, Pigeonhole
    reads them as valid everywhere (address tests, redirect, vacation :from; its own testsuite
    lists such redirects as "Ok") and its :all shows the local part quoted:
    `"taro..yamada."@docomo.ne.jp`, a valid quoted-string local part naming the same mailbox,
    which is also what a redirect sends to. A domain stays strict. White space or a comment
    may follow a dot only before a word (RFC 5322 4.4 obs-local-part: 'a. b'), not where the
    dots are lax ('a. @x', '.. @x', 'a.(c).b@x'), as Pigeonhole reads them.
    Tests: tests/sieve/test_address_lax_dots.py, tests/sieve/test_address_differential.py
    (test_fixed_address_fields)"""
    parts = []
    expect_word = True
    after_cfws = False      # the last dot had white space or a comment after it
    for kind, val in toks:
        if expect_word:
            if kind == "atom" or (kind == "qs" and allow_qs):
                parts.append(val)
                expect_word = False
            elif lax_dots and (kind, val) == ("sp", ".") and not after_cfws:
                parts.append(".")
            else:
                raise AddressError("invalid address syntax")
        else:
            if kind == "sp" and val in (".", ". "):
                parts.append(".")
                expect_word = True
                after_cfws = val == ". "
            else:
                raise AddressError("invalid address syntax")
    if expect_word and parts and (not lax_dots or after_cfws):
        raise AddressError("address ends with '.'")
    return "".join(parts)


def _check_route(toks) -> None:
    """An obsolete route before the ':' of an angle address (RFC 5322 4.4: obs-domain-list =
    *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain])): every '@' has a domain, every
    domain an '@'. '<@:a@b>', '<@r1,r2:a@b>' and '<@r1..x:a@b>' are no addresses, as for
    Pigeonhole. Tests: tests/sieve/test_address_differential.py (test_fixed_address_fields)"""
    pieces: list[list] = [[]]
    for t in toks:
        if t == ("sp", ","):
            pieces.append([])
        else:
            pieces[-1].append(t)
    hops = [p for p in pieces if p]
    if not hops:
        raise AddressError("empty route")
    for p in hops:
        if p[0] != ("sp", "@") or len(p) < 2:
            raise AddressError("bad route")
        _domain(p[1:])


def parse_address_list(text: str) -> list[SieveAddress]:
    """Every mailbox in an address-list header (groups flattened). Raises AddressError."""
    out, err = _parse_list(text, tolerant=False)
    if err is not None:
        raise err
    return out


def only_comments(text: str) -> bool:
    """Whether a field holds comments and white space only ('(undisclosed)', or a comment left
    open): CFWS, no address at all (RFC 5322 3.6.3 lets Bcc be just that), so the address test
    finds no entry in it, not even for :all, and :count counts none (as Pigeonhole). An empty
    field stays one entry, its empty text.
    Tests: tests/sieve/test_address_differential.py (test_fixed_address_fields)"""
    if "(" not in text:
        return False
    try:
        return not _lex(text)
    except _LexError as e:
        return not e.tokens and str(e) == "unterminated comment"


def parse_address_items(text: str) -> tuple[list[SieveAddress], bool]:
    """The valid mailboxes of an address-list header, and whether the whole field was valid.
    An item that is not a valid address is skipped (RFC 5228 2.7.4: it is not matched by
    :localpart or :domain); an unterminated quoted string, comment or domain literal ends the
    list. The address test and vacation read fields this way, as Pigeonhole does."""
    out, err = _parse_list(text, tolerant=True)
    return out, err is None


def _parse_list(text: str, tolerant: bool) -> tuple[list[SieveAddress], AddressError | None]:
    try:
        toks = _tokens(text, tolerant)
    except AddressError as e:
        return [], e
    out: list[SieveAddress] = []
    cur: list = []
    in_group = False

    def flush(chunk):
        if not chunk:
            return
        if ("sp", "<") in chunk:
            a = chunk.index(("sp", "<"))
            if ("sp", ">") not in chunk[a:]:
                raise AddressError("missing '>'")
            b = a + chunk[a:].index(("sp", ">"))
            if any(t != ("sp", ",") for t in chunk[b + 1:]):
                raise AddressError("garbage after '>'")
            inner = chunk[a + 1:b]
            # obsolete route: @a,@b:addr
            if ("sp", ":") in inner:
                colon = inner.index(("sp", ":"))
                _check_route(inner[:colon])
                inner = inner[colon + 1:]
            if any(k not in ("atom", "qs") and (k, t) not in (("sp", "."), ("sp", ". ")) for k, t in chunk[:a]) \
                    or chunk[:1] in ([("sp", ".")], [("sp", ". ")]):
                # RFC 5322 3.4: a display name is a phrase (words, obsolete '.'), so a ':' or
                # '@' there means the field is not an address list (e.g. a nested group); an
                # obs-phrase starts with a word (4.1), so not with a '.' (as Pigeonhole)
                raise AddressError("invalid display name")
            display = " ".join("." if (k, v) == ("sp", ". ") else v for k, v in chunk[:a])
            if not inner:
                raise AddressError("empty angle address")
            out.append(_addr_spec(inner, display))
        else:
            out.append(_addr_spec(chunk, ""))

    angle = False
    first_error: AddressError | None = None

    def item(chunk) -> None:
        # strict: the first invalid item fails the field; tolerant: it is skipped
        nonlocal first_error
        try:
            flush(chunk)
        except AddressError as e:
            if not tolerant:
                raise
            first_error = first_error or e

    # Where the first '<' of the current item is in `cur`, and whether a ':' came after it:
    # kept as the tokens arrive, so each ',' is judged in constant time (scanning `cur` for
    # them at every ',' made '<@a,@a,...' quadratic: 150 KB of it took 80 s).
    # Tests: tests/sieve/test_address_differential.py (test_hostile_fields_parse_in_linear_time)
    lt = -1
    colon_after_lt = False
    try:
        for t in toks:
            if t[0] == "err":
                # an unterminated quoted string, comment or literal: this item and the rest
                return out, first_error or AddressError("unterminated quoted string, comment or domain literal")
            if t == ("sp", "<"):
                angle = True
            elif t == ("sp", ">"):
                angle = False
            elif angle and t == ("sp", ",") and (cur[lt + 1:lt + 2] != [("sp", "@")] or colon_after_lt):
                # a ',' inside '<...' that is not in an obsolete route (before its ':'): the '>'
                # is missing, so this item is invalid and the next one starts here
                # ('<@r:a@b , c@d>' is two items, as Pigeonhole reads it)
                angle = False
            if not angle and t == ("sp", ":") and in_group and tolerant:
                # a group inside a group: the rest of the field cannot be read (as Pigeonhole)
                return out, first_error or AddressError("nested group")
            if not angle and t == ("sp", ":") and not in_group and lt < 0:
                in_group = True
                cur, lt, colon_after_lt = [], -1, False
            elif not angle and t == ("sp", ";") and in_group:
                item(cur)
                cur, lt, colon_after_lt = [], -1, False
                in_group = False
            elif not angle and t == ("sp", ","):
                item(cur)
                cur, lt, colon_after_lt = [], -1, False
            else:
                if t == ("sp", "<") and lt < 0:
                    lt = len(cur)
                elif t == ("sp", ":") and lt >= 0:
                    colon_after_lt = True
                cur.append(t)
        item(cur)
        if in_group:
            raise AddressError("unterminated group")
    except AddressError as e:
        return out, first_error or e
    return out, first_error


_ATEXT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-")
_QUOTED_PAIR = lazy(r"\\(.)")
_QUOTED = lazy(r'"(?:[^"\\\r\n]|\\.)*"')
_DOMAIN = lazy(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
              r"|\[[^\[\]\\]*\]")
_ROUTE = lazy(r"@[^,:@]+(?:,@[^,:@]+)*:")
# Envelope paths as MTAs really pass them: local parts with leading, trailing or doubled
# dots (common in Japanese mobile addresses) and host names with '_' or edge hyphens.
# Checked with sets, not patterns: every envelope test reads these, and `re` (with enum and
# functools) would cost an in-process delivery ~20 M instructions.
_LAX_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~.-")
_LAX_LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _is_lax_local(local: str) -> bool:
    """[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"""
    return bool(local) and _LAX_LOCAL_CHARS.issuperset(local)


def _is_lax_domain(domain: str) -> bool:
    """Labels of [A-Za-z0-9_-]+ joined by dots, or an address literal: [ ... ] holding no
    '[', ']' or backslash."""
    if domain.startswith("["):
        inner = domain[1:-1]
        return len(domain) > 1 and domain.endswith("]") and not ("[" in inner or "]" in inner or "\\" in inner)
    return all(label and _LAX_LABEL_CHARS.issuperset(label) for label in domain.split("."))


def parse_path(text: str, allow_localpart_only: bool = False) -> SieveAddress | None:
    """An SMTP path (RFC 5321 4.1.2): '<a@b>', 'a@b', '<@r1,@r2:a@b>'; '<>' or '' is the
    null path (None). Raises AddressError when the path is not valid."""
    s = text.strip()
    if s.startswith("<"):
        if not s.endswith(">") or len(s) < 2:
            raise AddressError("missing '>'")
        s = s[1:-1]
    if "<" in s or ">" in s:
        raise AddressError("stray angle bracket")
    if s == "":
        return None
    if s.startswith("@"):
        # a source route: '@host,@host:' with every host a valid domain
        m = _ROUTE.match(s)
        if not m:
            raise AddressError("bad source route")
        for hop in m.group(0)[:-1].split(","):
            if not _is_lax_domain(hop[1:]):
                raise AddressError("bad source route")
        s = s[m.end():]
    if s.startswith('"'):
        q = _QUOTED.match(s)
        if not q:
            raise AddressError("bad quoted local part")
        local_raw = q.group(0)
        rest = s[q.end():]
        local = _QUOTED_PAIR.sub(r"\1", local_raw[1:-1])
    else:
        at = s.find("@")
        local_raw = s if at < 0 else s[:at]
        rest = "" if at < 0 else s[at:]
        if not _is_lax_local(local_raw):
            raise AddressError("bad local part")
        local = local_raw
    if rest == "":
        if allow_localpart_only:
            return SieveAddress(local, None)
        raise AddressError("missing domain")
    if not rest.startswith("@") or not _is_lax_domain(rest[1:]):
        raise AddressError("bad domain")
    return SieveAddress(local, rest[1:])


def split_detail(local: str, delimiters: str) -> tuple[str, str | None]:
    """(user, detail) per RFC 5233 with any of `delimiters`; detail None when absent."""
    best = -1
    for d in delimiters:
        k = local.find(d)
        if k >= 0 and (best < 0 or k < best):
            best = k
    if best < 0 or not delimiters:
        return local, None
    return local[:best], local[best + 1:]


def address_part(addr: SieveAddress, part: str, delimiters: str = "+") -> str | None:
    """The requested part of one address, or None when the part does not exist."""
    if part == "all":
        # the address as an addr-spec: a local part that is not a dot-atom is quoted (RFC 5322
        # 3.4.1), so '"x y"@example.org' reads as written (as Pigeonhole); :localpart is unquoted
        if addr.domain is None or all(a and _ATEXT_CHARS.issuperset(a) for a in addr.local.split(".")):
            return addr.all
        return '"' + addr.local.replace("\\", "\\\\").replace('"', '\\"') + '"@' + addr.domain
    if part == "localpart":
        return addr.local
    if part == "domain":
        return addr.domain if addr.domain is not None else ""
    if part == "user":
        return split_detail(addr.local, delimiters)[0]
    if part == "detail":
        return split_detail(addr.local, delimiters)[1]
    raise ValueError(part)
