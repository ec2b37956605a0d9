"""pypolicyd-spf's policyd-spf.conf read into Owlery's SPF settings: `owlery spf import-policyd-spf`.

Three pure steps. `parse` reads the file's text as pypolicyd-spf 3.0 (Debian's
postfix-policyd-spf-python) reads it: `Name = value` lines, `#` starts a comment anywhere
on a line, names and values compared case-sensitively, the last of a repeated name counts;
lines it ignores (an unknown name, no `=` or several) and values that stop it at start (an
integer option that is no integer) are reported. `plan` decides every option by what the
peer does with it (policyd-spf.conf(5) and its code), options left out of the file at the
peer's defaults (which differ from Owlery's: Hide_Receiver = No), into Owlery's settings
(policyd/checks/spf.py) with notes where Owlery decides differently on purpose, and the
options it cannot carry with the reason. `render` makes the TOML lines (stdout) and the
comments (stderr); `command` is the CLI's body (registered by policyd/cli.py).
Talks to: the file system (reads the one file). Tests: tests/policyd/test_spf_import.py
(every option from strings; the real policyd-spf and Owlery's SPF check deciding the same
requests alike with the imported settings).
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
from typing import Any, TextIO

from owlery.cliutil import FileRefused, read_regular_file

DEFAULT_PATH = "/etc/postfix-policyd-spf-python/policyd-spf.conf"
EXIT_OK, EXIT_NOT_MAPPED, EXIT_UNREADABLE = 0, 1, 2
MAX_BYTES = 1 << 20              # a policyd-spf.conf is a few hundred bytes

# Every name pypolicyd-spf 3.0 reads from the file: how its parser converts the value and
# the default it runs with when the file leaves the option out (None: unset).
OPTIONS: dict[str, tuple[str, Any]] = {
    "debugLevel": ("int", 1),
    "HELO_reject": ("str", "Fail"),
    "Mail_From_reject": ("str", "Fail"),
    "PermError_reject": ("str", "False"),
    "TempError_Defer": ("str", "False"),
    "Mail_From_pass_restriction": ("str", None),
    "HELO_pass_restriction": ("str", None),
    "Prospective": ("str", None),
    "Whitelist": ("str", None),
    "skip_addresses": ("str", "127.0.0.0/8,::ffff:127.0.0.0/104,::1"),
    "HELO_Whitelist": ("str", None),
    "Domain_Whitelist": ("str", None),
    "Domain_Whitelist_PTR": ("str", None),
    "No_Mail": ("str", "False"),
    "Reject_Not_Pass_Domains": ("str", None),
    "Per_User": ("str", None),
    "TestOnly": ("int", 1),
    "defaultSeedOnly": ("int", None),
    "SPF_Enhanced_Status_Codes": ("str", "Yes"),
    "Header_Type": ("str", "SPF"),
    "Hide_Receiver": ("str", "No"),
    "Authserv_Id": ("str", "HOSTNAME"),
    "Lookup_Time": ("int", 20),
    "Whitelist_Lookup_Time": ("int", 10),
    "Void_Limit": ("int", 2),
    "Reason_Message": ("str", "Message {rejectdefer} due to: {spf}. Please see {url}"),
    "Mock": ("bool", False),
    # the milter front end's (pyspf-milter); policyd-spf reads and ignores them
    "Socket": ("str", None),
    "PidFile": ("str", None),
    "UserID": ("str", None),
    "UMask": ("int", 7),
    "InternalHosts": ("dataset", None),
    "IntHosts": ("bool", False),
    "MacroList": ("dataset", None),
}
MILTER_ONLY = ("Socket", "PidFile", "UserID", "UMask", "InternalHosts", "IntHosts", "MacroList")
# In policyd-spf.conf(5) but not among the names 3.0's parser accepts (it logs "Unknown name").
DOCUMENTED_UNREAD = {"QueueID": "Owlery's log lines always start with the queue id when Postfix sent one"}

HELO_VALUES = ("Fail", "SPF_Not_Pass", "Softfail", "Null", "False", "No_Check")
MAIL_FROM_VALUES = ("Fail", "SPF_Not_Pass", "Softfail", "False", "No_Check")
# The SPF settings an import states, in the order printed (spf_authserv_id only when set).
PRINTED = ("spf_helo_check", "spf_helo_fail_action", "spf_fail_action", "spf_softfail_action",
           "spf_permerror_action", "spf_temperror_action", "spf_header_type", "spf_authserv_id",
           "spf_hide_receiver", "spf_enhanced_status_codes", "spf_skip_networks", "spf_trusted_forwarders",
           "spf_query_time_limit")


class PolicydSpfUnreadable(Exception):
    """The file cannot be read at all (exit status 2)."""


@dataclasses.dataclass
class PeerConfig:
    """What pypolicyd-spf runs with: the file's values over its defaults."""
    given: dict[str, Any]                         # name -> converted value, as the file sets it
    lines: dict[str, int]                         # name -> line number of the value that counts
    texts: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> the value as written
    not_mapped: list[str] = dataclasses.field(default_factory=list)   # lines the peer cannot use
    notes: list[str] = dataclasses.field(default_factory=list)

    def get(self, name: str) -> Any:
        return self.given[name] if name in self.given else OPTIONS[name][1]

    def where(self, name: str) -> str:
        if name in self.given:
            return f"{name} = {self.texts[name]} (line {self.lines[name]})"
        return f"{name} (unset: pypolicyd-spf's default {OPTIONS[name][1]})"


@dataclasses.dataclass
class Imported:
    settings: dict[str, Any]                      # Owlery setting -> value (as TOML would give it)
    not_mapped: list[str]                         # what Owlery cannot do, with the reason (exit 1)
    notes: list[str]                              # carried over, with a difference worth knowing

    @property
    def exit_status(self) -> int:
        return EXIT_NOT_MAPPED if self.not_mapped else EXIT_OK


# --- parse ------------------------------------------------------------------------------

def _convert(kind: str, value: str) -> Any:
    """The value as pypolicyd-spf's parser converts it; ValueError where it stops at start."""
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)           # bool("False") is True: any value but an empty one
    if kind == "dataset" and not value:
        raise ValueError("an empty dataset")
    return value


def _did_you_mean(name: str, known: tuple[str, ...] | dict) -> str:
    for k in known:
        if k.lower() == name.lower():
            return f" (did you mean {k}? pypolicyd-spf compares them case-sensitively)"
    return ""


def parse(text: str) -> PeerConfig:
    """The file's text read line by line as pypolicyd-spf reads it."""
    config = PeerConfig({}, {})
    # Universal newlines, as the peer's text-mode readline gives them.
    for number, raw in enumerate(io.StringIO(text, newline=None), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split("=")]
        if len(parts) == 1:
            config.not_mapped.append(f"line {number} {line!r}: no '=' (pypolicyd-spf ignores the line)")
            continue
        if len(parts) > 2:
            config.not_mapped.append(f"line {number} {line!r}: more than one '=' (pypolicyd-spf cannot "
                                     "parse it and ignores the line)")
            continue
        name, value = parts
        if name in DOCUMENTED_UNREAD:
            config.notes.append(f"{name} = {value} (line {number}): documented in policyd-spf.conf(5) but "
                                f"not read by pypolicyd-spf 3.0, which ignores the line; "
                                f"{DOCUMENTED_UNREAD[name]}")
            continue
        if name not in OPTIONS:
            config.not_mapped.append(f"{name} = {value} (line {number}): no pypolicyd-spf option, the peer "
                                     f"ignores it{_did_you_mean(name, OPTIONS)}")
            continue
        try:
            converted = _convert(OPTIONS[name][0], value)
        except ValueError as e:
            config.not_mapped.append(f"{name} = {value} (line {number}): pypolicyd-spf stops at start on "
                                     f"this line ({e}), so the file cannot have run as it is; left out")
            continue
        if name in config.given:
            config.notes.append(f"{name} is given on line {config.lines[name]} and again on line {number}: "
                                "the last one counts, as in pypolicyd-spf")
        config.given[name] = converted
        config.lines[name] = number
        config.texts[name] = value
    return config


# --- plan -------------------------------------------------------------------------------

def peer_networks(text: str | None) -> tuple[list[str], str | None, list[str]]:
    """A comma-separated list as pypolicyd-spf matches a client against it: (the networks it
    uses, the entry at which it gives up or None, the entries it therefore never reads). It
    stops at the first entry that is no network in strict CIDR form (a space, host bits set)."""
    if not text:
        return [], None, []
    items = text.split(",")
    used: list[str] = []
    for n, item in enumerate(items):
        try:
            try:
                ipaddress.IPv4Network(item)
            except ipaddress.AddressValueError:
                ipaddress.IPv6Network(item)
        except ValueError:
            return used, item, items[n + 1:]
        used.append(item)            # as written (valid: the peer read it so)
    return used, None, []


def _unrecognised(config: PeerConfig, name: str, known: tuple[str, ...], behaviour: str) -> str:
    value = config.get(name)
    hint = _did_you_mean(value, known)
    return (f"{config.where(name)}: not a value pypolicyd-spf knows ({', '.join(known)}){hint}; it "
            f"{behaviour}, and so does the line printed")


def plan(config: PeerConfig) -> Imported:
    """Owlery's settings for what pypolicyd-spf does with `config`, decided by behaviour."""
    s: dict[str, Any] = {}
    out = Imported(s, list(config.not_mapped), list(config.notes))
    no, note = out.not_mapped.append, out.notes.append
    helo, mfrom = config.get("HELO_reject"), config.get("Mail_From_reject")

    # HELO identity. Owlery acts on a HELO fail only (spf_helo_fail_action); the null sender's
    # MAIL FROM identity is postmaster@HELO (RFC 7208 2.4), judged by the MAIL FROM actions.
    s["spf_helo_check"] = helo != "No_Check"
    s["spf_helo_fail_action"] = "reject" if helo in ("Fail", "Softfail", "SPF_Not_Pass") else "header"
    if helo == "Softfail":
        no(f"{config.where('HELO_reject')}: also rejects a HELO softfail; Owlery acts on a HELO fail "
           "only (RFC 7208 8.5: softfail is no ground to refuse), so the line printed rejects HELO fail alone")
    elif helo == "SPF_Not_Pass":
        no(f"{config.where('HELO_reject')}: also rejects a HELO softfail or neutral; Owlery acts on a "
           "HELO fail only (RFC 7208 8.2, 8.5: neutral is treated as none, softfail is no ground to "
           "refuse), so the line printed rejects HELO fail alone")
    elif helo == "No_Check":
        note(f"{config.where('HELO_reject')}: the HELO identity is not checked, but the null sender's "
             "MAIL FROM identity, postmaster@HELO (RFC 7208 2.4), still is, with the MAIL FROM actions, "
             "where pypolicyd-spf answers DUNNO for the null sender")
    elif helo not in HELO_VALUES:
        no(_unrecognised(config, "HELO_reject", HELO_VALUES, "rejects on no HELO result"))

    # MAIL FROM identity.
    fail, softfail = {"Fail": ("reject", "header"), "Softfail": ("reject", "reject"),
                      "SPF_Not_Pass": ("reject", "reject")}.get(mfrom, ("header", "header"))
    s["spf_fail_action"], s["spf_softfail_action"] = fail, softfail
    if mfrom == "SPF_Not_Pass":
        no(f"{config.where('Mail_From_reject')}: also rejects a MAIL FROM neutral; Owlery treats "
           "neutral as none (RFC 7208 8.2), so the lines printed reject fail and softfail only")
    elif mfrom == "No_Check":
        no(f"{config.where('Mail_From_reject')}: Owlery always checks the MAIL FROM identity (RFC "
           "7208 2.4: the check is mandatory), and writes its Received-SPF where pypolicyd-spf writes "
           "the HELO one; the lines printed never act on a MAIL FROM result")
    elif mfrom not in MAIL_FROM_VALUES:
        no(_unrecognised(config, "Mail_From_reject", MAIL_FROM_VALUES,
                         "rejects on no MAIL FROM result but still applies PermError_reject and TempError_Defer"))
    if helo == "Null":
        if fail == "reject":
            note(f"{config.where('HELO_reject')}: a HELO fail rejects the null sender only; Owlery "
                 "judges the null sender's identity, postmaster@HELO, by the MAIL FROM actions (RFC 7208 "
                 "2.4), so spf_fail_action rejects it and spf_helo_fail_action stays header; its softfail, "
                 "permerror and temperror follow the MAIL FROM actions too")
        else:
            no(f"{config.where('HELO_reject')} with {config.where('Mail_From_reject')}: rejects the null "
               "sender's HELO fail while accepting MAIL FROM fails; Owlery judges both by spf_fail_action "
               "(the null sender's identity is postmaster@HELO, RFC 7208 2.4), so the null sender's HELO "
               "fail is not rejected")

    # PermError / TempError: both identities in pypolicyd-spf (unless that identity's policy is
    # False, No_Check, or Null for a sender); Owlery acts on the MAIL FROM result only.
    helo_errors = helo not in ("False", "No_Check", "Null")
    mfrom_errors = mfrom not in ("False", "No_Check")
    for name, setting, action, result in (("PermError_reject", "spf_permerror_action", "reject", "permerror"),
                                          ("TempError_Defer", "spf_temperror_action", "defer", "temperror")):
        on = config.get(name) == "True"
        s[setting] = action if on and mfrom_errors else "header"
        if config.get(name) not in ("True", "False"):
            no(_unrecognised(config, name, ("True", "False"), "treats it as False"))
        if on and helo_errors:
            why = (f"a HELO {result} is not a definitive result (RFC 7208 2.3): Owlery goes on to the "
                   f"MAIL FROM check, where pypolicyd-spf's {name} acts on the HELO {result} and stops")
            if mfrom_errors:
                note(f"{config.where(name)}: applied to the MAIL FROM identity only; {why}")
            else:
                no(f"{config.where(name)} with {config.where('Mail_From_reject')}: acts on the HELO "
                   f"identity only, which Owlery does not: {why}")

    no_mail = config.get("No_Mail")
    if no_mail not in ("True", "False", False):
        no(_unrecognised(config, "No_Mail", ("True", "False"), "treats it as False"))
    if no_mail == "True":
        rejecting = [k for k in ("spf_helo_fail_action", "spf_fail_action", "spf_softfail_action",
                                 "spf_permerror_action") if s[k] == "reject"]
        for k in rejecting:
            s[k] = "header"
        no(f"{config.where('No_Mail')}: rejects only domains whose record is exactly \"v=spf1 -all\"; "
           "Owlery has no such restriction, so the lines printed reject nothing (never more than "
           "pypolicyd-spf did)" + (f": {', '.join(rejecting)} set to header" if rejecting else ""))

    test_only = config.get("TestOnly")
    if test_only == 0:
        quiet = [k for k in ("spf_helo_fail_action", "spf_fail_action", "spf_softfail_action",
                             "spf_permerror_action", "spf_temperror_action") if s[k] in ("reject", "defer")]
        for k in quiet:
            s[k] = "none"
        note(f"{config.where('TestOnly')}: test mode: where pypolicyd-spf would reject or defer it answers "
             "DUNNO without a header, as Owlery's \"none\" does (the log line still names the result)"
             + (": a HELO fail then goes on to the MAIL FROM check and its header"
                if s["spf_helo_fail_action"] == "none" else ""))
    if "defaultSeedOnly" in config.given:
        note(f"{config.where('defaultSeedOnly')}: pypolicyd-spf 3.0 only warns about this old name "
             "(TestOnly decides)")

    # Headers.
    header = config.get("Header_Type")
    if "SPF" in header and "AR" in header:
        s["spf_header_type"] = "received-spf"
        no(f"{config.where('Header_Type')}: pypolicyd-spf fails every request with both SPF and AR; "
           "the line printed keeps Received-SPF (spf_header_type = \"both\" writes both headers)")
    elif "AR" in header:
        s["spf_header_type"] = "authentication-results"
        if header != "AR":
            no(_unrecognised(config, "Header_Type", ("SPF", "AR", "None"), "writes Authentication-Results "
                             "(the value holds \"AR\")"))
    elif header == "None":
        s["spf_header_type"] = "none"
    else:
        s["spf_header_type"] = "received-spf"
        if header != "SPF":
            no(_unrecognised(config, "Header_Type", ("SPF", "AR", "None"), "writes Received-SPF"))
    authserv = config.get("Authserv_Id")
    if authserv and authserv != "HOSTNAME":
        s["spf_authserv_id"] = authserv
    elif not authserv and s["spf_header_type"] == "authentication-results":
        no(f"{config.where('Authserv_Id')}: pypolicyd-spf fails every request with Header_Type AR and "
           "an empty Authserv_Id; Owlery's default (this host's name) is kept")
    hide = config.get("Hide_Receiver")
    s["spf_hide_receiver"] = hide != "No"
    if hide == "No":
        note(f"{config.where('Hide_Receiver')}: receiver= names this host (RFC 7208 9.1: the SPF "
             "verifier), where pypolicyd-spf writes the first recipient's domain")
    codes = config.get("SPF_Enhanced_Status_Codes")
    s["spf_enhanced_status_codes"] = codes != "No"
    if codes not in ("Yes", "No"):
        no(_unrecognised(config, "SPF_Enhanced_Status_Codes", ("Yes", "No"), "uses RFC 7372's codes"))

    # Clients not checked.
    for name, setting in (("skip_addresses", "spf_skip_networks"), ("Whitelist", "spf_trusted_forwarders")):
        used, bad, unread = peer_networks(config.get(name))
        s[setting] = used
        if bad is not None:
            no(f"{config.where(name)}: pypolicyd-spf gives up reading this list at {bad!r} (no network "
               "in CIDR form: no spaces, host bits zero), so it never used "
               f"{', '.join(repr(x) for x in [bad] + unread)}: left out")
        if used:
            note(f"{config.where(name)}: Owlery answers DUNNO for these clients where pypolicyd-spf "
                 "prepends a trace header saying SPF was skipped (no SPF result of RFC 7208 9.1)")
    for name, what in (("HELO_Whitelist", "HELO names whose A/AAAA records hold the client"),
                       ("Domain_Whitelist", "domains whose SPF record passes the client"),
                       ("Domain_Whitelist_PTR", "domains the client's PTR name ends in")):
        if config.get(name):
            no(f"{config.where(name)}: skips SPF for {what}; Owlery skips by address only: list those "
               "relays' networks in spf_trusted_forwarders")
    if "Whitelist_Lookup_Time" in config.given:
        note(f"{config.where('Whitelist_Lookup_Time')}: times only the name-based whitelists, which "
             "Owlery does not have")

    lookup = config.get("Lookup_Time")
    if 1 <= lookup <= 20:
        s["spf_query_time_limit"] = lookup
    else:
        s["spf_query_time_limit"] = 20
        if lookup > 20:
            note(f"{config.where('Lookup_Time')}: Owlery's spf_query_time_limit is at most 20 s (RFC 7208 "
                 "4.6.4's figure); an evaluation whose DNS takes longer ends in temperror")
        else:
            no(f"{config.where('Lookup_Time')}: pypolicyd-spf then sets no total limit (each lookup "
               "still times out); Owlery always has one: 20 s printed")
    void = config.get("Void_Limit")
    if void != 2:
        no(f"{config.where('Void_Limit')}: Owlery keeps RFC 7208 4.6.4's limit of two void lookups")

    # Options with no counterpart at all.
    refusals = {
        "Mail_From_pass_restriction": "on a MAIL FROM pass pypolicyd-spf answers with a Postfix restriction "
                                      "class; Owlery answers DUNNO (the rest of Postfix's restrictions decide)",
        "HELO_pass_restriction": "on a HELO pass pypolicyd-spf answers with a Postfix restriction class; "
                                 "Owlery answers DUNNO (the rest of Postfix's restrictions decide)",
        "Prospective": "checks a fixed outbound address instead of the client; Owlery's SPF check judges "
                       "inbound clients only",
        "Reject_Not_Pass_Domains": "rejects neutral and softfail for the listed domains; Owlery's actions "
                                   "are the same for every domain (RFC 7208 8.2: neutral is treated as none)",
        "Per_User": "per-recipient settings; Owlery's SPF settings are the same for every recipient",
    }
    for name, why in refusals.items():
        if config.get(name):
            no(f"{config.where(name)}: {why}")
    if config.get("Mock"):
        no(f"{config.where('Mock')}: on for any value but an empty one (False included), it makes this "
           "file a decoy instance that answers DUNNO to every request, run before the real one so that "
           "one's header is not the first; Owlery has no such mode: drop that check_policy_service line")
    if "Reason_Message" in config.given:
        (note if config.get("Reason_Message") == OPTIONS["Reason_Message"][1] else no)(
            f"{config.where('Reason_Message')}: Owlery's reply text is fixed: \"SPF <identity> check "
            "<result>: <explanation>\" (the record's exp= explanation, RFC 7208 6.2)")
    debug = config.get("debugLevel")
    if debug != 1:
        note(f"{config.where('debugLevel')}: logging decides nothing; Owlery logs one line per "
             "decision at log_level = \"info\" (as debugLevel 1), log_level = \"debug\" tells more (for "
             "every Owlery daemon)")
    for name in MILTER_ONLY:
        if name in config.given:
            note(f"{config.where(name)}: an option of pypolicyd-spf's milter, which policyd-spf ignores")
    note("Owlery does not check SASL-authenticated clients (pypolicyd-spf checks them unless Postfix "
         "permits them before check_policy_service)")
    return out


# --- render -----------------------------------------------------------------------------

def render(result: Imported, source: str) -> tuple[str, str]:
    """(the TOML lines for stdout, the comment lines for stderr)."""
    from owlery.settings import declared, render_toml_value
    from policyd.checks import spf   # noqa: F401  (declares the spf_* settings)
    decls = declared()
    lines = [f"# Owlery SPF settings for pypolicyd-spf's {source} (owlery spf import-policyd-spf)",
             "# The check runs where policyd_checks names it: add \"spf\" to its RCPT list",
             "# (and DATA with spf_header_type = \"both\")."]
    for name in PRINTED:
        if name in result.settings:
            decl = decls[name]
            value = result.settings[name]
            decl.type.parse(value)       # a value Owlery's loader accepts, printed as the peer's file wrote it
            lines.append(f"{name} = {render_toml_value(decl, value)}")
    comments = [f"# not mapped: {x}" for x in result.not_mapped] + [f"# note: {x}" for x in result.notes]
    return "\n".join(lines) + "\n", "".join(c + "\n" for c in comments)


def read_text(path: str) -> str:
    """The file's text as pypolicyd-spf would read it (UTF-8); PolicydSpfUnreadable otherwise."""
    try:
        data = read_regular_file(path, MAX_BYTES)
    except FileRefused as e:
        raise PolicydSpfUnreadable(f"{e}: no policyd-spf.conf" if "larger than" in str(e) else str(e)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicydSpfUnreadable(f"{path}: not UTF-8 ({e.reason} at byte {e.start}); pypolicyd-spf "
                              "stops at start on it too") from None


def command(path: str, out: TextIO, err: TextIO) -> int:
    """Exit 0: every option carried over; 1: some could not be (each said on stderr, with the
    reason); 2: the file could not be read."""
    try:
        text = read_text(path)
    except PolicydSpfUnreadable as e:
        print(f"owlery: spf import-policyd-spf: {e}", file=err)
        return EXIT_UNREADABLE
    result = plan(parse(text))
    toml, comments = render(result, path)
    out.write(toml)
    err.write(comments)
    return result.exit_status
