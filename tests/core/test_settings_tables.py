"""Typed table and list settings (owlery.settings table_of/list_of): every bad entry refused at load, with file:line.

One bad value for every table-valued setting (and the lists of registered names), each
refused by `parse_text` with the file, the line, the setting and the entry; a file with
several bad entries reports all of them; `owlery config check` refuses the value that used
to pass and then tempfail every message (`milter_symbol_scores = { SPF_FAIL = "high" }`).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from owlery import settings as S

PATH = "/etc/owlery/owlery.toml"
HEAD = "# Owlery\nlog_level = \"info\"\n"       # the bad line is line 3

# (setting, TOML value, error key, reason fragment)
CASES = [
    ("milter_symbol_scores", '{ SPF_FAIL = "high" }', "milter_symbol_scores.SPF_FAIL", "expected a number, got 'high'"),
    ("milter_symbol_scores", "{ spf_fail = 1.0 }", "milter_symbol_scores.spf_fail", "symbol name in capitals"),
    ("spam_evidence_scores", '{ RBL = "3" }', "spam_evidence_scores.RBL", "expected a number, got '3'"),
    ("spam_evidence_scores", "{ DKIM_VALID = [1] }", "spam_evidence_scores.DKIM_VALID", "expected a number"),
    ("milter_daemon_stages", '{ submission = ["dkim_sign", "dkim_sing"] }', "milter_daemon_stages.submission",
     "item 2: unknown milter stage 'dkim_sing'"),
    ("milter_daemon_stages", "{ submission = 3 }", "milter_daemon_stages.submission",
     "expected a list of milter stages, got 3"),
    ("milter_stage_on_error", '{ spam = "ignore" }', "milter_stage_on_error.spam",
     "expected one of tempfail, continue, got 'ignore'"),
    ("milter_stage_on_error", '{ spma = "continue" }', "milter_stage_on_error.spma", "unknown milter stage 'spma'"),
    ("milter_inbound_stages", '["spf", "nosuchstage"]', "milter_inbound_stages",
     "item 2: unknown milter stage 'nosuchstage'"),
    ("milter_outbound_stages", '["dkim_signer"]', "milter_outbound_stages", "item 1: unknown milter stage"),
    ("dkim_sign_keys", '{ "example.org" = ["../../etc/shadow"] }', 'dkim_sign_keys."example.org"',
     "item 1: expected a DKIM selector, got '../../etc/shadow'"),
    ("dkim_sign_keys", '{ "example.org" = [] }', 'dkim_sign_keys."example.org"', "at least one"),
    ("dkim_sign_keys", '{ "exa/mple.org" = ["s1"] }', 'dkim_sign_keys."exa/mple.org"', "expected a domain name"),
    ("policyd_checks", '{ RCPT = ["recipient", "greylsit"] }', "policyd_checks.RCPT", "item 2: unknown check 'greylsit'"),
    ("policyd_checks", '{ LATER = ["recipient"] }', "policyd_checks.LATER", "unknown protocol_state 'LATER'"),
    ("policyd_checks", '{ rcpt = ["recipient"], RCPT = ["quota"] }', "policyd_checks.RCPT", "given twice"),
    ("ratelimit_messages", '{ user = "1/1h" }', "ratelimit_messages.user", "unknown key 'user'"),
    ("ratelimit_recipients", '{ sender = "lots" }', "ratelimit_recipients.sender", "expected a rate"),
    ("delivery_special_use_folders", '{ Junk = ["Spam", ""] }', "delivery_special_use_folders.Junk",
     "item 2: expected a folder name, got ''"),
    ("delivery_special_use_folders", '{ "Ju nk" = "Spam" }', 'delivery_special_use_folders."Ju nk"',
     "expected a special-use flag"),
    ("delivery_special_use_folders", '{ Junk = "Sp\\nam" }', "delivery_special_use_folders.Junk",
     "expected a folder name"),
    ("delivery_special_use_folders", '{ "\\\\\\\\Junk" = "Spam" }', 'delivery_special_use_folders."\\\\\\\\Junk"',
     "expected a special-use flag"),
    ("sieve_editheader_forbid_add", '["Received", "X-Bad:Name"]', "sieve_editheader_forbid_add",
     "item 2: expected a header field name"),
    ("sieve_editheader_forbid_add", '["X-Caf\u00e9"]', "sieve_editheader_forbid_add",
     "item 1: expected a header field name"),
    # sieve/delivery/expire.py parses this table itself: the entry is named in the reason, not the key
    ("mailbox_expire_ages", '{ Junk = "30d", Trash = "soon" }', "mailbox_expire_ages", "Trash: expected a duration"),
    ("dns_nameservers", '["192.0.2.53", "ns1.example"]', "dns_nameservers", "item 2: expected an IP address"),
    ("dnsbl_reply_names", '{ "zen.spamhaus.org" = "zen\\r\\n250 ok" }', 'dnsbl_reply_names."zen.spamhaus.org"',
     "expected a list domain"),
    ("dnsbl_reply_names", '{ "zen spamhaus" = "zen" }', 'dnsbl_reply_names."zen spamhaus"', "expected a list domain"),
    ("check_endpoints", '{ polcyd = "tcp:127.0.0.1:10040" }', "check_endpoints.polcyd", "policyd"),
    ("content_policy_banks", '{ relaxed = ["spam_lovr"] }', "content_policy_banks.relaxed",
     "item 1: unknown content policy 'spam_lovr'"),
]


def _error(text):
    with pytest.raises(S.SettingsError) as info:
        S.parse_text(text, PATH)
    return info.value


@pytest.mark.parametrize("name,value,key,why", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_every_table_setting_refuses_a_bad_entry_with_file_and_line(name, value, key, why):
    e = _error(f"{HEAD}{name} = {value}\n")
    assert not isinstance(e, S.SettingsErrors), str(e)
    assert (e.path, e.line, e.key) == (PATH, 3, key)
    assert why in e.reason and e.reason.startswith("bad value: ")
    assert str(e).startswith(f"{PATH}:3: {key}: bad value: ")
    # the same value given by a test or a flag is refused too
    with pytest.raises(S.SettingsError, match="bad value"):
        S.Settings().replace(**{name: tomllib.loads(f"v = {value}")["v"]})


def test_every_table_valued_setting_has_a_case():
    S.import_all_sections()
    tables = {n for n, d in S.declared().items() if d.type.name.startswith("table of")}
    assert tables, "no table-valued settings found"
    assert tables <= {c[0] for c in CASES}, f"table settings without a bad-value case: {tables - {c[0] for c in CASES}}"


def test_no_table_setting_takes_any_table():
    S.import_all_sections()
    junk = {"X": {"nested": [object()]}}
    takes_anything = []
    for name, decl in S.declared().items():
        if isinstance(decl.default, dict) or decl.type.name.startswith("table"):
            try:
                decl.type.parse(junk)
            except ValueError:
                continue
            takes_anything.append(name)
    assert takes_anything == []


def test_good_values_parse_to_typed_python_values():
    s = S.parse_text('milter_symbol_scores = { SPF_FAIL = 4, "DKIM_INVALID" = 1.5 }\n'
                     'milter_daemon_stages = { submission = "dkim_sign" }\n'
                     'dkim_sign_keys = { "example.org" = "2025r" }\n'
                     'milter_stage_on_error = { spam = "continue" }\n')
    assert s.milter_symbol_scores == {"SPF_FAIL": 4.0, "DKIM_INVALID": 1.5}
    assert isinstance(s.milter_symbol_scores["SPF_FAIL"], float)
    assert s.milter_daemon_stages == {"submission": ("dkim_sign",)}
    assert s.dkim_sign_keys == {"example.org": ("2025r",)}
    assert s.milter_stage_on_error == {"spam": "continue"}


@pytest.mark.parametrize("text,line", [
    ('milter_symbol_scores = { DKIM_VALID = -1, SPF_FAIL = "high" }\n', 1),
    ('log_level = "info"\n\n[milter_symbol_scores]\nDKIM_VALID = -1\nSPF_FAIL = "high"\n', 5),
    ('[milter_stage_on_error]\nspam = "continue"\n\n[milter_symbol_scores]\n"SPF_FAIL" = "high"\n', 5),
    ('milter_symbol_scores.DKIM_VALID = -1\nmilter_symbol_scores.SPF_FAIL = "high"\n', 2),
])
def test_the_line_is_the_entry_s_own_in_every_toml_form(text, line):
    e = _error(text)
    assert (e.line, e.key) == (line, "milter_symbol_scores.SPF_FAIL")


def test_a_table_header_counts_as_the_line_of_a_bad_table():
    e = _error('log_level = "info"\n[milter_daemon_stages]\nsubmission = ["nope"]\n')
    assert (e.line, e.key) == (3, "milter_daemon_stages.submission")
    e = _error('log_level = "info"\n\n[coretest_unknown_table]\nx = 1\n')
    assert e.line == 3 and "unknown setting" in e.reason


def test_every_bad_entry_of_a_file_is_reported_in_line_order():
    text = ('milter_symbol_scores = { SPF_FAIL = "high", DKIM_VALID = "low" }\n'
            'milter_inbound_stages = ["spf", "nope1", "nope2"]\n'
            '[dkim_sign_keys]\n"example.org" = ["ok", "../x"]\n')
    e = _error(text)
    assert isinstance(e, S.SettingsErrors)
    got = [(x.line, x.key, x.reason.split(":")[1].strip()) for x in e.errors]
    assert got == [
        (1, "milter_symbol_scores.SPF_FAIL", "expected a number, got 'high'"),
        (1, "milter_symbol_scores.DKIM_VALID", "expected a number, got 'low'"),
        (2, "milter_inbound_stages", "item 2"),
        (2, "milter_inbound_stages", "item 3"),
        (4, 'dkim_sign_keys."example.org"', "item 2"),
    ]
    assert str(e).startswith(f"5 errors in {PATH}:\n  {PATH}:1: milter_symbol_scores.SPF_FAIL: bad value: ")


def test_a_stage_registered_later_is_a_known_name(monkeypatch):
    from milters.stages import STAGES
    with pytest.raises(S.SettingsError, match="unknown milter stage 'latecomer'"):
        S.parse_text('milter_inbound_stages = ["latecomer"]')
    monkeypatch.setitem(STAGES, "latecomer", "tests.milters.test_session:Recorder")
    assert S.parse_text('milter_inbound_stages = ["latecomer"]').milter_inbound_stages == ("latecomer",)


def test_typed_tables_render_back_to_toml_that_parses_the_same():
    s = S.parse_text('policyd_checks = { rcpt = ["recipient", "quota"] }\n'
                     'ratelimit_messages = { sender = "100/1h" }\n'
                     'dkim_sign_keys = { "example.org" = ["a", "b"] }\n')
    text = "\n".join(f"{d.name} = {S.render_toml_value(d, v)}" for d, v in s.effective(only_non_default=True))
    again = S.parse_text(text)
    for name in ("policyd_checks", "ratelimit_messages", "dkim_sign_keys"):
        assert getattr(again, name) == getattr(s, name)


def test_config_check_refuses_the_score_that_used_to_tempfail_every_message(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('# scores\nmilter_symbol_scores = { SPF_FAIL = "high" }\n')
    r = subprocess.run([sys.executable, "-m", "owlery.app.cli", "config", "check", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"owlery: {cfg}:2: milter_symbol_scores.SPF_FAIL: bad value: "
                                "expected a number, got 'high'")
