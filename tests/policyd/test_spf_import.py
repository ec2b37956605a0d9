"""`owlery spf import-policyd-spf`: pypolicyd-spf's policyd-spf.conf carried into Owlery's SPF settings.

Unit tests read config strings through policyd/spf_import.py (parse -> plan -> render): every
option pypolicyd-spf reads (the option list itself is checked against the installed peer's
parser and man page), comments, blank lines, the peer's case-sensitive names and values,
unknown options, garbage. The differential test proves the mapping: for several non-default
files, Debian's real policyd-spf runs with the file (tests/harness/policyd_spf_peer.py, through
the helpers of tests/policyd/test_spf_policyd_differential.py, on the suite's DNS stub) and
Owlery's policy pipeline with the settings imported from that very file answers the same
requests (every SPF result of the MAIL FROM and HELO identities, the null sender, skipped
and whitelisted clients); the action class (reject / defer / prepend / dunno) must agree,
except where ALLOWED names the situation and the deviation the differential documents.
Needs the system package postfix-policyd-spf-python (scripts/install-deps --test).
"""

from __future__ import annotations

import dataclasses
import gzip
import ipaddress
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Callable

import pytest

from owlery.app.cli import build_parser
from owlery.settings import Settings, parse_text
from policyd import spf_import as si
from tests.policyd.test_spf_policyd_differential import (DEBIAN_OURS, GOOD4, GOOD6, Variant, ask_owlery, ask_peer,
                                                         load_zone, outcome)

DEBIAN_FILE = """\
#  For a fully commented sample config file see policyd-spf.conf.commented

debugLevel = 1\x20
TestOnly = 1

HELO_reject = Fail
Mail_From_reject = Fail

PermError_reject = False
TempError_Defer = False

skip_addresses = 127.0.0.0/8,::ffff:127.0.0.0/104,::1
"""
DEBIAN_SETTINGS = {
    "spf_helo_check": True, "spf_helo_fail_action": "reject", "spf_fail_action": "reject",
    "spf_softfail_action": "header", "spf_permerror_action": "header", "spf_temperror_action": "header",
    "spf_header_type": "received-spf", "spf_hide_receiver": False, "spf_enhanced_status_codes": True,
    "spf_skip_networks": ["127.0.0.0/8", "::ffff:127.0.0.0/104", "::1"], "spf_trusted_forwarders": [],
    "spf_query_time_limit": 20,
}


def imported(text: str) -> si.Imported:
    return si.plan(si.parse(text))


def remarks(result: si.Imported) -> str:
    return "\n".join(result.not_mapped + result.notes)


# ---- the options pypolicyd-spf has ----------------------------------------------------------
PEER_PARSER = Path("/usr/lib/python3/dist-packages/spf_engine/policydspfsupp.py")
PEER_MAN = Path("/usr/share/man/man5/policyd-spf.conf.5.gz")


def test_options_are_the_ones_the_peer_parser_reads():
    source = PEER_PARSER.read_text()
    block = source[source.index("nameConversion = {"):]
    block = block[:block.index("}")]
    names = set(re.findall(r"'(\w+)'\s*:", block))
    assert names == set(si.OPTIONS), names ^ set(si.OPTIONS)


def test_every_option_of_the_man_page_is_known():
    man = gzip.decompress(PEER_MAN.read_bytes()).decode("utf-8", "replace")
    names = set(re.findall(r"^\s*([A-Za-z_]+) = ", man, re.M))
    assert len(names) > 20 and names <= set(si.OPTIONS) | set(si.DOCUMENTED_UNREAD), \
        names - set(si.OPTIONS) - set(si.DOCUMENTED_UNREAD)


# A value other than the peer's default for every option: each must change a setting or be
# remarked on (mapped with a note, or not mapped with the reason) naming the option.
NON_DEFAULT = {
    "debugLevel": "3", "HELO_reject": "SPF_Not_Pass", "Mail_From_reject": "Softfail", "PermError_reject": "True",
    "TempError_Defer": "True", "Mail_From_pass_restriction": "mfrom_passed_spf",
    "HELO_pass_restriction": "helo_passed_spf", "Prospective": "192.0.2.4", "Whitelist": "192.0.2.0/24",
    "skip_addresses": "10.0.0.0/8", "HELO_Whitelist": "relay.example.com", "Domain_Whitelist": "pobox.com",
    "Domain_Whitelist_PTR": "yahoo.com", "No_Mail": "True", "Reject_Not_Pass_Domains": "aol.com",
    "Per_User": "/etc/policyd-spf.peruser", "TestOnly": "0", "defaultSeedOnly": "0",
    "SPF_Enhanced_Status_Codes": "No", "Header_Type": "AR", "Hide_Receiver": "Yes", "Authserv_Id": "mx.example.com",
    "Lookup_Time": "5", "Whitelist_Lookup_Time": "5", "Void_Limit": "5", "Reason_Message": "Refused: {spf}",
    "Mock": "True", "Socket": "inet:8890@localhost", "PidFile": "/run/x.pid", "UserID": "nobody", "UMask": "2",
    "InternalHosts": "10.0.0.0/8", "IntHosts": "True", "MacroList": "daemon_name|ORIGINATING",
}


def test_every_option_is_handled():
    assert set(NON_DEFAULT) == set(si.OPTIONS)
    base = imported("")
    for name, value in NON_DEFAULT.items():
        got = imported(f"{name} = {value}\n")
        changed = {k for k in got.settings if got.settings[k] != base.settings.get(k)}
        assert changed or f"{name} = {value} (line 1)" in remarks(got), name


# ---- option by option -----------------------------------------------------------------------
# (file text, settings expected (a subset), substrings of the not-mapped remarks (none: exit 0))
CASES: list[tuple[str, dict, tuple[str, ...]]] = [
    ("", DEBIAN_SETTINGS, ()),
    (DEBIAN_FILE, DEBIAN_SETTINGS, ()),
    # HELO_reject, by behaviour
    ("HELO_reject = Fail", {"spf_helo_check": True, "spf_helo_fail_action": "reject"}, ()),
    ("HELO_reject = Softfail", {"spf_helo_fail_action": "reject"}, ("also rejects a HELO softfail",)),
    ("HELO_reject = SPF_Not_Pass", {"spf_helo_fail_action": "reject"}, ("softfail or neutral",)),
    ("HELO_reject = Null", {"spf_helo_fail_action": "header", "spf_fail_action": "reject"}, ()),
    ("HELO_reject = Null\nMail_From_reject = False", {"spf_helo_fail_action": "header", "spf_fail_action": "header"},
     ("rejects the null sender's HELO fail while accepting MAIL FROM fails",)),
    ("HELO_reject = False", {"spf_helo_check": True, "spf_helo_fail_action": "header"}, ()),
    ("HELO_reject = No_Check", {"spf_helo_check": False}, ()),
    ("HELO_reject = fail", {"spf_helo_fail_action": "header"}, ("did you mean Fail?",)),
    # Mail_From_reject
    ("Mail_From_reject = Fail", {"spf_fail_action": "reject", "spf_softfail_action": "header"}, ()),
    ("Mail_From_reject = Softfail", {"spf_fail_action": "reject", "spf_softfail_action": "reject"}, ()),
    ("Mail_From_reject = SPF_Not_Pass", {"spf_fail_action": "reject", "spf_softfail_action": "reject"},
     ("also rejects a MAIL FROM neutral",)),
    ("Mail_From_reject = False\nPermError_reject = True\nHELO_reject = False",
     {"spf_fail_action": "header", "spf_softfail_action": "header", "spf_permerror_action": "header"}, ()),
    ("Mail_From_reject = No_Check", {"spf_fail_action": "header"}, ("always checks the MAIL FROM identity",)),
    ("Mail_From_reject = SOFTFAIL", {"spf_fail_action": "header"}, ("did you mean Softfail?",)),
    # PermError_reject / TempError_Defer
    ("PermError_reject = True\nTempError_Defer = True",
     {"spf_permerror_action": "reject", "spf_temperror_action": "defer"}, ()),
    ("PermError_reject = True\nMail_From_reject = False", {"spf_permerror_action": "header"},
     ("acts on the HELO identity only",)),
    ("TempError_Defer = True\nHELO_reject = False", {"spf_temperror_action": "defer"}, ()),
    ("PermError_reject = true", {"spf_permerror_action": "header"}, ("did you mean True?",)),
    ("TempError_Defer = yes", {"spf_temperror_action": "header"}, ("not a value pypolicyd-spf knows",)),
    # No_Mail, TestOnly
    ("No_Mail = True\nMail_From_reject = Softfail",
     {"spf_fail_action": "header", "spf_softfail_action": "header", "spf_helo_fail_action": "header"},
     ("exactly \"v=spf1 -all\"",)),
    ("No_Mail = False", {"spf_fail_action": "reject"}, ()),
    ("TestOnly = 0\nPermError_reject = True\nTempError_Defer = True",
     {"spf_helo_fail_action": "none", "spf_fail_action": "none", "spf_softfail_action": "header",
      "spf_permerror_action": "none", "spf_temperror_action": "none"}, ()),
    ("TestOnly = 1", {"spf_fail_action": "reject"}, ()),
    ("TestOnly = yes", {"spf_fail_action": "reject"}, ("stops at start on this line",)),
    ("defaultSeedOnly = 0", {"spf_fail_action": "reject"}, ()),
    # headers
    ("Header_Type = AR\nAuthserv_Id = mx.example.com",
     {"spf_header_type": "authentication-results", "spf_authserv_id": "mx.example.com"}, ()),
    ("Header_Type = None", {"spf_header_type": "none"}, ()),
    ("Header_Type = SPF", {"spf_header_type": "received-spf"}, ()),
    ("Header_Type = SPF,AR", {"spf_header_type": "received-spf"}, ("fails every request",)),
    ("Header_Type = ar", {"spf_header_type": "received-spf"}, ("did you mean AR?",)),
    ("Header_Type = ARC", {"spf_header_type": "authentication-results"}, ("holds \"AR\"",)),
    ("Header_Type = AR\nAuthserv_Id =", {"spf_header_type": "authentication-results"},
     ("an empty Authserv_Id",)),
    ("Authserv_Id = HOSTNAME", {}, ()),
    ("Hide_Receiver = Yes", {"spf_hide_receiver": True}, ()),
    ("Hide_Receiver = no", {"spf_hide_receiver": True}, ()),          # only "No" shows it
    ("SPF_Enhanced_Status_Codes = No", {"spf_enhanced_status_codes": False}, ()),
    ("SPF_Enhanced_Status_Codes = no", {"spf_enhanced_status_codes": True}, ("did you mean No?",)),
    # clients not checked
    ("skip_addresses = 127.0.0.0/8,::1,10.1.2.3", {"spf_skip_networks": ["127.0.0.0/8", "::1", "10.1.2.3"]}, ()),
    ("skip_addresses =", {"spf_skip_networks": []}, ()),
    ("skip_addresses = 127.0.0.0/8, ::1,10.0.0.0/8", {"spf_skip_networks": ["127.0.0.0/8"]},
     ("gives up reading this list at ' ::1'", "'10.0.0.0/8'")),
    ("Whitelist = 192.0.2.0/24,2001:db8::/32", {"spf_trusted_forwarders": ["192.0.2.0/24", "2001:db8::/32"]}, ()),
    ("Whitelist = 192.0.2.1/24,198.51.100.0/24", {"spf_trusted_forwarders": []}, ("'192.0.2.1/24'",)),
    ("HELO_Whitelist = relay.example.com", {}, ("Owlery skips by address only",)),
    ("Domain_Whitelist = pobox.com", {}, ("whose SPF record passes the client",)),
    ("Domain_Whitelist_PTR = yahoo.com", {}, ("PTR name",)),
    ("Whitelist_Lookup_Time = 5", {}, ()),
    # DNS limits
    ("Lookup_Time = 5", {"spf_query_time_limit": 5}, ()),
    ("Lookup_Time = 30", {"spf_query_time_limit": 20}, ()),
    ("Lookup_Time = 0", {"spf_query_time_limit": 20}, ("no total limit",)),
    ("Lookup_Time = 2.5", {"spf_query_time_limit": 20}, ("stops at start",)),
    ("Void_Limit = 2", {}, ()),
    ("Void_Limit = 5", {}, ("two void lookups",)),
    # no counterpart
    ("Reason_Message = Message {rejectdefer} due to: {spf}. Please see {url}", {}, ()),
    ("Reason_Message = Go away: {spf}", {}, ("reply text is fixed",)),
    ("Reason_Message = see {url}?a=b", {}, ("more than one '='",)),
    ("Mock = True", {}, ("decoy instance",)),
    ("Mock = False", {}, ("decoy instance",)),                        # bool("False") is true
    ("Mock =", {}, ()),
    ("Mail_From_pass_restriction = mfrom_passed_spf", {}, ("restriction class",)),
    ("HELO_pass_restriction = helo_passed_spf", {}, ("restriction class",)),
    ("Prospective = 192.0.2.4", {}, ("fixed outbound address",)),
    ("Reject_Not_Pass_Domains = aol.com,hotmail.com", {}, ("for the listed domains",)),
    ("Per_User = /etc/policyd-spf/peruser", {}, ("per-recipient",)),
    # logging, the milter's options, documented but unread
    ("debugLevel = 3", {}, ()),
    ("debugLevel = -1", {}, ()),
    ("debugLevel = loud", {}, ("stops at start",)),
    ("Socket = inet:8890@localhost\nUMask = 7\nInternalHosts = 10.0.0.0/8\nIntHosts = True\nMacroList = x", {}, ()),
    ("InternalHosts =", {}, ("empty dataset",)),
    ("QueueID = False", {}, ()),
    # file syntax: comments anywhere, blank lines, CRLF / CR line ends, spaces, repeats, case, garbage
    ("# comment\n\n   \nHELO_reject = False # inline comment\n", {"spf_helo_fail_action": "header"}, ()),
    ("HELO_reject=False\r\nMail_From_reject\t=\tSoftfail\r\n", {"spf_helo_fail_action": "header",
                                                              "spf_softfail_action": "reject"}, ()),
    ("HELO_reject = False\rTempError_Defer = True\r", {"spf_helo_fail_action": "header",
                                                       "spf_temperror_action": "defer"}, ()),
    ("Authserv_Id = mx#1.example", {"spf_authserv_id": "mx"}, ()),   # "#" starts a comment even there
    ("HELO_reject = False\nHELO_reject = Softfail", {"spf_helo_fail_action": "reject"}, ("also rejects",)),
    ("helo_reject = False", {"spf_helo_fail_action": "reject"}, ("did you mean HELO_reject?",)),
    ("Greylist = yes", {}, ("no pypolicyd-spf option",)),
    ("this is not a setting", {}, ("no '='",)),
    ("HELO_reject == Fail", {"spf_helo_fail_action": "reject"}, ("more than one '='",)),
    ("\x00\x01 = \x02", {}, ("no pypolicyd-spf option",)),
]


@pytest.mark.parametrize("text,expected,refused", CASES, ids=[f"{i}:{c[0][:40]!r}" for i, c in enumerate(CASES)])
def test_option(text, expected, refused):
    result = imported(text)
    for key, value in expected.items():
        assert result.settings.get(key) == value, (key, result.settings)
    joined = "\n".join(result.not_mapped)
    for part in refused:
        assert part in joined, (part, result.not_mapped)
    assert bool(result.not_mapped) == bool(refused), result.not_mapped
    assert result.exit_status == (si.EXIT_NOT_MAPPED if refused else si.EXIT_OK)
    # Whatever the file, the printed lines are settings Owlery's loader accepts.
    toml, comments = si.render(result, "policyd-spf.conf")
    parse_text(toml)
    assert comments.count("# not mapped: ") == len(result.not_mapped)


def test_notes_say_why_the_peer_decides_differently():
    strict = imported("PermError_reject = True\nTempError_Defer = True\nHide_Receiver = No\n")
    text = remarks(strict)
    assert "PermError_reject = True (line 1): applied to the MAIL FROM identity only" in text
    assert "RFC 7208 2.3" in text and "RFC 7208 9.1" in text
    assert "Hide_Receiver = No (line 3)" in text
    repeated = imported("Lookup_Time = 5\nLookup_Time = 7\n")
    assert repeated.settings["spf_query_time_limit"] == 7
    assert "given on line 1 and again on line 2" in remarks(repeated)


# ---- the command ----------------------------------------------------------------------------
def run(argv: list[str], capsys) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    status = args.func(args)
    got = capsys.readouterr()
    return status, got.out, got.err


def test_command_prints_toml_and_comments(tmp_path, capsys):
    conf = tmp_path / "policyd-spf.conf"
    conf.write_text(DEBIAN_FILE + "Header_Type = AR\nAuthserv_Id = mx.example.com\n")
    status, out, err = run(["spf", "import-policyd-spf", str(conf)], capsys)
    assert status == 0, err
    settings = parse_text(out)
    assert settings.spf_header_type == "authentication-results" and settings.spf_authserv_id == "mx.example.com"
    assert settings.spf_hide_receiver is False
    assert all(line.startswith("# note: ") for line in err.splitlines()), err

    conf.write_text("HELO_reject = SPF_Not_Pass\nDomain_Whitelist = pobox.com\n")
    status, out, err = run(["spf", "import-policyd-spf", str(conf)], capsys)
    assert status == 1
    assert parse_text(out).spf_helo_fail_action == "reject"
    assert sum(line.startswith("# not mapped: HELO_reject = SPF_Not_Pass (line 1)") for line in err.splitlines()) == 1
    assert "# not mapped: Domain_Whitelist = pobox.com (line 2)" in err


@pytest.mark.parametrize("kind", ["missing", "directory", "latin-1", "huge"])
def test_command_unreadable_file_exits_2(tmp_path, capsys, kind):
    path = tmp_path / "policyd-spf.conf"
    if kind == "directory":
        path.mkdir()
    elif kind == "latin-1":
        path.write_bytes(b"Authserv_Id = mx.\xe9xample\n")
    elif kind == "huge":
        path.write_text("#" * (si.MAX_BYTES + 1))
    status, out, err = run(["spf", "import-policyd-spf", str(path)], capsys)
    assert status == 2 and out == "" and err.startswith("owlery: spf import-policyd-spf: "), err


def test_command_defaults_to_debians_path(monkeypatch):
    seen = []
    monkeypatch.setattr(si, "command", lambda path, out, err: seen.append(path) or 0)
    args = build_parser().parse_args(["spf", "import-policyd-spf"])
    assert args.func(args) == 0 and seen == [si.DEFAULT_PATH] == ["/etc/postfix-policyd-spf-python/policyd-spf.conf"]


# ---- differential: the real policyd-spf with the file, Owlery with the import ---------------
LOOKUP = 5                      # the files' Lookup_Time (generous: a loaded machine must not time out)
TIMEOUT_LOOKUP = 1              # the variant whose requests all wait on a server that never answers

# Each name's SPF result for a client inside GOOD4/GOOD6 ("in") and outside ("out"), from the
# differential's ZONE.
RESULT = {"pass.test": ("pass", "fail"), "helo-pass.test": ("pass", "fail"), "fail.test": ("fail", "fail"),
          "helo-fail.test": ("fail", "fail"), "softfail.test": ("softfail", "softfail"),
          "helo-soft.test": ("softfail", "softfail"), "neutral.test": ("neutral", "neutral"),
          "norecord.test": ("none", "none"), "helo-norecord.test": ("none", "none"),
          "syntax.test": ("permerror", "permerror"), "helo-perm.test": ("permerror", "permerror"),
          "slow.test": ("temperror", "temperror")}
SENDERS = ["alice@pass.test", "alice@fail.test", "alice@softfail.test", "alice@neutral.test",
           "alice@norecord.test", "alice@syntax.test", ""]
HELOS = ["helo-pass.test", "helo-fail.test", "helo-soft.test", "neutral.test", "helo-norecord.test",
         "helo-perm.test"]
CLIENTS = ["192.0.2.5", "203.0.113.99"]
# Clients the configs below skip or whitelist (or name after a space, which the peer never reads).
LISTED = ["127.0.0.1", "192.0.2.200", "203.0.113.7", "198.51.100.20", "2001:db8:20::20", "3fff:1::1"]


def grid() -> list[dict]:
    reqs = [dict(client_address=c, helo_name=h, sender=s) for c in CLIENTS for h in HELOS for s in SENDERS]
    reqs += [dict(client_address=c, helo_name=h, sender=s) for c in LISTED
             for h, s in (("helo-fail.test", "alice@fail.test"), ("helo-pass.test", "alice@softfail.test"),
                          ("helo-soft.test", ""))]
    return reqs


TIMEOUTS = [dict(client_address="192.0.2.5", helo_name="helo-pass.test", sender="alice@slow.test"),
            dict(client_address="192.0.2.5", helo_name="slow.test", sender="alice@pass.test"),
            dict(client_address="192.0.2.5", helo_name="slow.test", sender="")]

STRICT = {"HELO_reject": "Fail", "Mail_From_reject": "Softfail", "PermError_reject": "True",
          "TempError_Defer": "True", "SPF_Enhanced_Status_Codes": "No", "Hide_Receiver": "Yes"}
# (peer's config lines beyond the differential's Debian file; `ours` is filled in by the import)
VARIANTS = [
    Variant("strict", STRICT, {}),
    Variant("strict-timeout", STRICT, {}, tuple(TIMEOUTS), lookup_time=TIMEOUT_LOOKUP, only_extra=True),
    Variant("ar", {"Header_Type": "AR", "Authserv_Id": "mx.example.org", "HELO_reject": "Null",
                   "PermError_reject": "True"}, {}),
    Variant("lists", {"HELO_reject": "False", "skip_addresses": "192.0.2.128/25,3fff:1::/32, 203.0.113.0/24",
                      "Whitelist": "198.51.100.0/24,2001:db8:20::/48", "TempError_Defer": "True"}, {}),
    Variant("test-only", {"TestOnly": "0", "HELO_reject": "False", "Mail_From_reject": "Softfail",
                          "PermError_reject": "True", "TempError_Defer": "True"}, {}),
    # Values the peer does not know (it compares case-sensitively): reported, their behaviour kept.
    Variant("typos", {"HELO_reject": "fail", "Mail_From_reject": "softfail", "PermError_reject": "True"}, {}),
]
REPORTED = {"lists": 1, "typos": 2}     # not-mapped remarks expected of a variant's import


def result_of(name: str, client: str) -> str:
    inside = ipaddress.ip_address(client) in ipaddress.ip_network(GOOD4 if ":" not in client else GOOD6)
    return RESULT[name.lower()][0 if inside else 1]


@dataclasses.dataclass
class Case:
    variant: str
    req: dict
    settings: dict                 # the imported settings
    ours: str                      # action class
    peer: str
    peer_text: str

    @property
    def helo_result(self) -> str:
        return result_of(self.req["helo_name"], self.req["client_address"])

    def listed(self) -> bool:
        nets = [ipaddress.ip_network(n, strict=False) for n in
                self.settings["spf_skip_networks"] + self.settings["spf_trusted_forwarders"]]
        ip = ipaddress.ip_address(self.req["client_address"])
        return any(ip in n for n in nets if n.version == ip.version)


MAIL_ACTION = {"fail": "spf_fail_action", "softfail": "spf_softfail_action",
               "permerror": "spf_permerror_action", "temperror": "spf_temperror_action"}


def _null_sender_by_mail_actions(c: Case) -> bool:
    """The null sender, where the peer only prepends and Owlery answers as the MAIL FROM action
    for the HELO's result says (reject, defer, or DUNNO for "none")."""
    setting = MAIL_ACTION.get(c.helo_result)
    if c.req["sender"] or c.peer != "prepend" or setting is None:
        return False
    return c.ours == {"reject": "reject", "defer": "defer", "none": "dunno"}.get(c.settings[setting])


# Differences the differential (tests/policyd/test_spf_policyd_differential.py) documents, each
# by its exact situation here: (its DEVIATIONS name, condition).
ALLOWED: list[tuple[str, Callable[[Case], bool]]] = [
    # A skipped or whitelisted client: the peer PREPENDs X-Comment (Authentication-Results with
    # Header_Type AR) saying SPF was skipped, Owlery answers DUNNO (no RFC 7208 9 result).
    ("peer-skip-x-comment", lambda c: c.listed() and c.peer == "prepend" and c.ours == "dunno"),
    # The peer acts on a HELO permerror/temperror and stops; RFC 7208 2.3: not definitive, Owlery
    # goes on to the MAIL FROM check.
    ("peer-acts-on-helo-error", lambda c: c.req["sender"] != "" and c.peer in ("reject", "defer")
     and c.helo_result in ("permerror", "temperror") and "s=helo;" in c.peer_text),
    # The null sender: the peer applies its HELO policy only; Owlery applies the MAIL FROM actions
    # to postmaster@HELO, the null sender's MAIL FROM identity (RFC 7208 2.4).
    ("peer-null-sender-helo-policy-only", lambda c: _null_sender_by_mail_actions(c)),
]


def compare(stub, variant: Variant, workdir: Path) -> tuple[list[Case], si.Imported]:
    reqs = list(variant.extra) if variant.only_extra else grid() + list(variant.extra)
    workdir.mkdir()
    peer = ask_peer(stub, variant, reqs, workdir)
    (conf,) = workdir.glob("*.conf")               # the very file the peer ran with
    result = si.plan(si.parse(conf.read_text()))
    toml, _ = si.render(result, str(conf))
    parse_text(toml)                               # as Owlery's loader reads the pasted lines
    values = tomllib.loads(toml)
    # ask_owlery lays the variant's settings over the differential's Debian ones: all replaced.
    assert set(DEBIAN_OURS) <= set(values), set(DEBIAN_OURS) - set(values)
    ours = ask_owlery(stub, dataclasses.replace(variant, ours=values), reqs)
    Settings().replace(**values)
    return [Case(variant.name, r, values, outcome(o).klass, outcome(p).klass, p)
            for r, o, p in zip(reqs, ours, peer)], result


def test_imported_settings_decide_as_pypolicyd_spf(dns_zone):
    load_zone(dns_zone)
    cases: list[Case] = []
    used: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            got, result = compare(dns_zone, variant, Path(tmp) / variant.name)
            # Only lists (an entry after a space, never used) and typos hold what cannot be carried.
            assert len(result.not_mapped) == REPORTED.get(variant.name, 0), result.not_mapped
            cases += got
    unexplained = []
    for c in cases:
        if c.ours == c.peer:
            continue
        why = [name for name, applies in ALLOWED if applies(c)]
        if why:
            used.add(why[0])
        else:
            unexplained.append(c)
    report = "\n".join(f"[{c.variant}] {c.req} helo={c.helo_result}: ours {c.ours}, peer {c.peer_text}"
                       for c in unexplained[:15])
    assert not unexplained, f"{len(unexplained)} of {len(cases)} differ:\n{report}"
    assert used == {name for name, _ in ALLOWED}, f"allow-list entries no longer needed: {set(dict(ALLOWED)) - used}"
    # Every class, and every MAIL FROM and HELO result, was asked.
    assert {"reject", "defer", "prepend", "dunno"} <= {c.ours for c in cases}
    mail = {result_of(c.req["sender"].rpartition("@")[2], c.req["client_address"]) for c in cases if c.req["sender"]}
    helo = {c.helo_result for c in cases}
    every = {"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"}
    assert mail == every and helo == every, (mail, helo)
    # The entry after the space is one the peer never skipped: it is checked on both sides.
    after_space = [c for c in cases if c.variant == "lists" and c.req["client_address"] == "203.0.113.7"]
    assert after_space and all(c.peer != "prepend" or "X-Comment" not in c.peer_text for c in after_space)



def test_what_is_not_mapped_does_decide_differently(dns_zone):
    """The other side of the proof: SPF_Not_Pass is reported as not mapped, and the peer does
    reject where Owlery with the import does not, exactly at the results the report names."""
    load_zone(dns_zone)
    variant = Variant("not-pass", {"HELO_reject": "SPF_Not_Pass", "Mail_From_reject": "SPF_Not_Pass"}, {})
    with tempfile.TemporaryDirectory() as tmp:
        cases, result = compare(dns_zone, variant, Path(tmp) / variant.name)
    assert [x.split(" (line")[0] for x in result.not_mapped] == ["HELO_reject = SPF_Not_Pass",
                                                                 "Mail_From_reject = SPF_Not_Pass"]
    left = [c for c in cases if c.ours != c.peer and not any(applies(c) for _, applies in ALLOWED)]

    def mail_result(c: Case) -> str:
        return result_of(c.req["sender"].rpartition("@")[2], c.req["client_address"]) if c.req["sender"] else ""
    assert left and all(c.peer == "reject" and c.ours == "prepend" for c in left), left[:3]
    assert {c.helo_result for c in left if "s=helo;" in c.peer_text} == {"softfail", "neutral"}
    assert {mail_result(c) for c in left if "s=mfrom;" in c.peer_text} == {"neutral"}
