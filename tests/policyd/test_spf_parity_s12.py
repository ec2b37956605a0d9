"""SPF trace headers and identities at the edges: no HELO, SMTPUTF8 senders, IDNs, hostile text.

RFC 7208 9.1 (Received-SPF: helo= is the name the client gave; values are dot-atoms or
quoted-strings; nothing the sender supplied may end a value, the comment or the field),
RFC 7208 2.3/2.4 (no HELO: the null sender's identity postmaster@HELO has no domain),
RFC 8616 section 4 (U-labels are checked as A-labels; %{l}/%{s} of a non-ASCII local part
match nothing), RFC 8601 (the Authentication-Results comment), RFC 6532/6533 (a header the
policy daemon adds may reach a message that is not SMTPUTF8: printable ASCII only, a
non-ASCII local part in RFC 6533's \\x{HEX} form). Injected zones (tests/policyd/spf_zone.py),
no DNS. The pypolicyd-spf differential is tests/policyd/test_spf_policyd_differential.py.
"""

from __future__ import annotations

import re

import pytest

from owlery.dns import a_label, evaluate, header_address
from tests.policyd.spf_zone import zone_lookup
from tests.policyd import test_spf_check
from tests.policyd.test_spf_check import decide

PASS = "v=spf1 ip4:192.0.2.0/24 -all"
ZONE = {
    "pass.example": [{"TXT": PASS}],
    "fail.example": [{"TXT": "v=spf1 -all"}],
    "xn--bcher-kva.example": [{"TXT": PASS}],
    "xn--hlo-bma.example": [{"TXT": "v=spf1 -all"}],
    "hmacro.example": [{"TXT": "v=spf1 exists:%{h}.h.hmacro.example -all"}],
    "unknown.h.hmacro.example": [{"A": "127.0.0.2"}],
    "lmacro.example": [{"TXT": "v=spf1 exists:%{l}.u.lmacro.example -all"}],
    "jörg.u.lmacro.example": [{"A": "127.0.0.2"}],  # what a lookup without RFC 8616 would find
    "alice.u.lmacro.example": [{"A": "127.0.0.2"}],
}


def make(**overrides):
    """test_spf_check's pipeline (policyd_checks RCPT and DATA = spf) over this file's zone."""
    saved = dict(test_spf_check.ZONE)
    test_spf_check.ZONE.update(ZONE)
    try:
        return test_spf_check.make(**overrides)
    finally:
        test_spf_check.ZONE.clear()
        test_spf_check.ZONE.update(saved)


def recording(zone=ZONE):
    calls: list = []
    lookup = zone_lookup(zone)

    def fn(name, qtype, timeout):
        calls.append((name, qtype))
        return lookup(name, qtype, timeout)

    return fn, calls


def run(sender, helo, ip="192.0.2.10", **kw):
    lookup, calls = recording()
    r = evaluate(lookup, ip=ip, sender=sender, helo=helo, query_time_limit=5, authserv_id="mx.test", **kw)
    return r, calls


# ---- a strict reader of the two fields (RFC 7208 9.1, RFC 5322 3.2, RFC 8601 2.2) ---------------
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'


def _comment_end(text: str, i: int) -> int:
    """Index after the comment opening at text[i]; AssertionError when it never closes."""
    assert text[i] == "("
    depth = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            assert i + 1 < len(text) and "\x20" <= text[i + 1] <= "\x7e", text
            i += 2
            continue
        depth += c == "("
        depth -= c == ")"
        i += 1
        if depth == 0:
            return i
    raise AssertionError(f"unclosed comment: {text!r}")


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value[1:-1]) if value.startswith('"') else value


def parse_received_spf(value: str) -> tuple[str, dict[str, str]]:
    """(result, {key: value unquoted}) of a Received-SPF value; AssertionError on any syntax fault."""
    assert value.isascii() and value.isprintable(), value
    head = re.match(r"(\w+) ", value)
    assert head and head.group(1).lower() in ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
    i = head.end()
    if value[i] == "(":
        i = _comment_end(value, i)
    rest = value[i:].strip()
    pairs: dict[str, str] = {}
    # receiver=<UNKNOWN>: the literal pyspf and pypolicyd-spf write for a hidden receiver (a
    # constant of ours, not the client's; outside the 9.1 grammar, kept for their readers)
    pair = re.compile(rf"([A-Za-z0-9_.-]+)=({_DOT_ATOM}|{_QUOTED}|<UNKNOWN>)(?:; |$)")
    pos = 0
    while pos < len(rest):
        m = pair.match(rest, pos)
        assert m, f"not a key=value at {rest[pos:]!r} in {value!r}"
        assert m.group(1) not in pairs, f"key {m.group(1)} twice in {value!r}"
        pairs[m.group(1)] = _unquote(m.group(2))
        pos = m.end()
    return head.group(1).lower(), pairs


def parse_spf_resinfo(line: str) -> tuple[str, dict[str, str], str]:
    """(result, {property: value}, the property comment's text) of our one-resinfo A-R line."""
    assert line.isascii() and line.isprintable(), line
    m = re.match(r"Authentication-Results: mx\.test; spf=(\w+) ", line)
    assert m, line
    i = _comment_end(line, m.end())
    rest = line[i:].strip()
    if not rest:
        return m.group(1), {}, ""  # RFC 8601 2.2: the propspec is optional
    m2 = re.match(rf"(smtp\.mailfrom|smtp\.helo)=({_QUOTED}|[^\s;()\"]+)", rest)
    assert m2, rest
    tail = rest[m2.end() :].strip()
    note = ""
    if tail:
        end = _comment_end(tail, 0)
        assert end == len(tail), f"text after the comment: {tail[end:]!r}"  # no second resinfo
        note = tail[1:-1]
    return m.group(1), {m2.group(1): _unquote(m2.group(2))}, note


# ---- 1. no HELO/EHLO ----------------------------------------------------------------------------
@pytest.mark.parametrize("header_type", ["received-spf", "authentication-results"])
def test_no_helo_writes_no_helo_key(header_type):
    """RFC 7208 9.1: helo= is the name given in HELO/EHLO; with none given there is nothing to
    write (before: helo=unknown, a name the client never said)."""
    pipe, _ = make(spf_header_type=header_type)
    text = decide(pipe, helo_name="", sender="a@pass.example").action.text
    if header_type == "received-spf":
        result, pairs = parse_received_spf(text.split(": ", 1)[1])
        assert result == "pass" and "helo" not in pairs and pairs["identity"] == "mailfrom", text
    else:
        result, _, note = parse_spf_resinfo(text)
        assert result == "pass" and "helo=" not in note, text


def test_evaluate_null_sender_without_helo_is_none_and_well_formed():
    """RFC 7208 2.4 + 4.3: postmaster@<no HELO> has no domain: none, no DNS, headers well-formed
    (before: pyspf's A-R builder raised OrphanCommentError)."""
    r, calls = run("", "")
    assert r.result == "none" and calls == []
    _, pairs = parse_received_spf(r.received_spf)
    assert "helo" not in pairs and "envelope-from" not in pairs
    assert parse_spf_resinfo(r.authentication_results)[0] == "none"


def test_null_sender_without_helo_through_the_check_is_none():
    """No verdict to act on, no DNS, no exception: DUNNO (and no header naming a made-up HELO)."""
    for header_type in ("received-spf", "authentication-results", "both"):
        pipe, calls = make(spf_header_type=header_type)
        for state in ("RCPT", "DATA"):
            assert decide(pipe, helo_name="", sender="", protocol_state=state).action.render() == "DUNNO"
        assert calls == []


def test_no_helo_is_not_a_made_up_name_in_macros():
    """%{h} of a session without HELO is no name at all; before, the check invented "unknown"
    and a record's exists:%{h}... matched unknown.h.hmacro.example: a pass nobody earned."""
    r, calls = run("a@hmacro.example", "")
    assert r.result == "fail" and ("unknown.h.hmacro.example", "A") not in calls
    pipe, calls = make()
    assert decide(pipe, helo_name="", sender="a@hmacro.example").action.render().startswith("550 5.7.23")


# ---- 2. SMTPUTF8 senders and IDNs (RFC 8616 section 4) -------------------------------------------
@pytest.mark.parametrize("domain", ["bücher.example", "BÜCHER.example", "bücher。example"])
def test_u_label_sender_domain_is_checked_as_its_a_label(domain):
    r, calls = run(f"a@{domain}", "mx.pass.example")
    assert (r.result, r.domain) == ("pass", "xn--bcher-kva.example")
    assert all(name.isascii() for name, _ in calls) and ("xn--bcher-kva.example", "TXT") in calls


def test_u_label_helo_is_checked_as_its_a_label():
    """RFC 8616 section 4: an IDN host name in EHLO must be A-labels; one sent as U-labels is
    checked as the A-label it stands for (its record says -all: the HELO check fails)."""
    r, calls = run("", "hélo.example")
    assert (r.result, r.identity, r.domain) == ("fail", "helo", "xn--hlo-bma.example")
    assert ("xn--hlo-bma.example", "TXT") in calls and ("hélo.example", "TXT") not in calls


def test_non_ascii_local_part_in_macros_matches_nothing():
    """RFC 8616 section 4: %{l} / %{s} of a non-ASCII local part match nothing (no lookup of a
    non-ASCII name); an ASCII local part still matches."""
    r, calls = run("jörg@lmacro.example", "mx.pass.example")
    assert r.result == "fail" and all(name.isascii() for name, _ in calls), calls
    assert run("alice@lmacro.example", "mx.pass.example")[0].result == "pass"


@pytest.mark.parametrize(
    "sender,written",
    [
        ("jörg@pass.example", "j\\x{F6}rg@pass.example"),
        ("jörg@bücher.example", "j\\x{F6}rg@xn--bcher-kva.example"),
        ("a@bücher.example", "a@xn--bcher-kva.example"),
        ("用户@pass.example", "\\x{7528}\\x{6237}@pass.example"),
        ("😀+x=y@pass.example", "\\x{1F600}\\x{2B}x\\x{3D}y@pass.example"),
        ("a\udcffb@pass.example", "a\\x{FFFD}b@pass.example"),  # a byte that was not UTF-8
        ("first+tag@pass.example", "first+tag@pass.example"),  # printable ASCII: as it was
    ],
)
def test_8bit_sender_is_written_in_ascii_without_loss(sender, written):
    """No raw 8-bit octet and no "?" in the header: the domain as its A-label, the local part
    in RFC 6533's ASCII form (before: j?rg@b?cher.example)."""
    assert header_address(sender) == written
    r, _ = run(sender, "mx.pass.example")
    _, pairs = parse_received_spf(r.received_spf)
    assert pairs["envelope-from"] == written and "?" not in r.received_spf
    note = parse_spf_resinfo(r.authentication_results)[2]
    assert "sender=" + written.replace("\\", "\\\\") in note


def test_a_label():
    assert a_label("bücher.example") == "xn--bcher-kva.example"
    assert a_label("mail_1.example") == "mail_1.example"  # ASCII labels untouched
    assert a_label("a\udcff.example") is None  # no A-label: malformed (none)
    assert run("a@a\udcff.example", "mx.pass.example")[0].result == "none"


# ---- 3. nothing the client sends ends a value, the comment or the field ----------------------------
HOSTILE = [
    ('"a;b=c"@pass.example', "mx.pass.example"),
    ('"x) y; dkim=pass (z"@pass.example', "mx.pass.example"),
    ('"q\\"uote"@pass.example', "mx.pass.example"),
    ("a@x)y.example", "mx.pass.example"),
    ("a@pass.example", "h;identity=helo"),
    ("a@pass.example", "h) spf=pass (x"),
    ("a@pass.example", "[192.0.2.1]"),
    ('"a\r\nX-Injected: 1"@pass.example', "mx.pass.example"),
    ("a@pass.example", "evil\r\nX-Injected: 1"),
    ("", "h);x=(y"),
]


@pytest.mark.parametrize("sender,helo", HOSTILE)
@pytest.mark.parametrize("ip", ["192.0.2.10", "2001:db8::10"])
def test_hostile_text_stays_inside_its_value(sender, helo, ip):
    r, _ = run(sender, helo, ip=ip)
    _, pairs = parse_received_spf(r.received_spf)
    expected = {"client-ip", "receiver", "identity", "envelope-from", "helo", "mechanism", "problem"}
    assert set(pairs) <= expected, pairs
    assert pairs["client-ip"] == ip and pairs["identity"] == r.identity
    assert pairs.get("helo") == header_address(helo)
    if sender:
        assert pairs["envelope-from"] == header_address(sender)
    parse_spf_resinfo(r.authentication_results)  # one resinfo, its comments closed, ASCII, one line


@pytest.mark.parametrize("sender,helo", HOSTILE[:6])
def test_hostile_text_through_the_policy_check(sender, helo):
    """The PREPENDed line as Postfix gets it parses the same way (nothing reshaped by the check)."""
    for header_type in ("received-spf", "authentication-results"):
        pipe, _ = make(spf_header_type=header_type, spf_helo_check=False)
        action = decide(pipe, sender=sender, helo_name=helo).action
        if action.verb != "PREPEND":
            continue
        if header_type == "received-spf":
            parse_received_spf(action.text.split(": ", 1)[1])
        else:
            parse_spf_resinfo(action.text)


# ---- the milter reads the policy daemon's field back (milter_spf_source = "header") ----------------
@pytest.mark.parametrize(
    "sender",
    ["a@pass.example", "jörg@bücher.example", "a@BÜCHER.example", '"john doe"@pass.example', '"a;b=c"@pass.example'],
)
def test_milter_reads_back_the_envelope_from_it_was_written_for(sender):
    """The milter's spf stage in "header" mode takes the policy daemon's MAIL FROM verdict only for
    this message's sender: it must recognise the sender as written (A-label, RFC 6533 form,
    quoted-string with quoted-pairs and ";" inside); before, such senders read as none."""
    from milters.stages.spf import received_spf_fields

    r, _ = run(sender, "mx.pass.example")
    result, fields = received_spf_fields(r.received_spf)
    assert (result, fields["identity"]) == (r.result, "mailfrom")
    assert fields["envelope-from"] in {sender.lower(), header_address(sender).lower()}
    assert received_spf_fields("Pass identity=mailfrom; envelope-from=a@x.example; identity=helo") == ("", {})


@pytest.mark.parametrize(
    "sender,helo",
    [
        ("😀" * 64 + "@pass.example", "mx.pass.example"),  # 64 characters, 576 once in ASCII
        ('"' + "a;" * 200 + '"@pass.example', "h" * 600 + ".example"),
        ("", "h" * 900 + ".example"),
    ],
)
def test_long_values_are_dropped_not_cut(sender, helo):
    """The PREPEND line has room for 980 characters; a field that would be longer loses whole
    optional keys (RFC 7208 9.1: all optional but identity) instead of being cut inside a
    quoted-string or comment (before: cut, the quote or comment left open)."""
    for header_type in ("received-spf", "authentication-results"):
        pipe, _ = make(spf_header_type=header_type, spf_helo_check=False)
        text = decide(pipe, sender=sender, helo_name=helo).action.text
        assert len(text) <= 980
        if header_type == "received-spf":
            assert parse_received_spf(text.split(": ", 1)[1])[1]["identity"] in ("mailfrom", "helo")
        else:
            parse_spf_resinfo(text)
