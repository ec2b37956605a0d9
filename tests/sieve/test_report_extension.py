"""vnd.dovecot.report (sieve/extensions/report.py, sieve.outgoing.abuse_report): the RFC 5965
abuse report `report` sends, against what Pigeonhole's `sieve-test -e` (Debian dovecot-sieve
0.5.19, with -x +vnd.dovecot.report: the extension is off by default there) sends for the same
script, message, envelope and settings, field by field (the helpers of
tests/sieve/test_outgoing_parity.py take both messages apart); then the rules pinned on Owlery
alone: validation, sieve_report_from, duplicates, limits, the delivery path.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from owlery.settings import Settings, SettingsError, parse_text
from sieve.actions import Report
from sieve.api import Envelope, SieveCompileError, compile_script, run
from tests.sieve.differential import pigeonhole
from tests.sieve.test_outgoing_parity import (
    SENDER,
    SETTINGS,
    USER,
    Run,
    describe,
    header_values,
    msg,
    rfc_problems,
    run_owlery,
    sieve_test_e,
    split_message,
)

REP = 'require ["vnd.dovecot.report", "variables"]; '
# the extension is off by default (as in Pigeonhole): these runs allow it
ON = "sieve_extensions_disabled = []\n"
_SENDING = re.compile(r"Info: sending message from <([^>]*)>:")
_SENT = re.compile(r"Info: sieve: msgid=.*?: report action: sent `([^']*)' report to <([^>]*)>")


def run_pigeonhole(ph: pigeonhole.Pigeonhole, script: bytes, message: bytes, mail_from: str) -> Run:
    """sieve-test -e with the report extension enabled: (kind, envelope from, recipients, message)
    of each report it sent, in order."""
    ran = sieve_test_e(ph, script, message, mail_from, ("-x", "+vnd.dovecot.report"))
    if isinstance(ran, Run):
        return ran
    log, bodies, _ = ran
    envs = _SENDING.findall(log)
    sent = _SENT.findall(log)
    assert len(bodies) == len(envs) == len(sent), log
    return Run("ok", [("report", f, (to,), b) for f, (_, to), b in zip(envs, sent, bodies)], log)


def feedback_items(message: bytes) -> dict[str, str]:
    """describe() plus the message/feedback-report fields (User-Agent by its RFC 5965 shape)."""
    items = describe("report", message)
    for key in [
        k
        for k in items
        if k.endswith(":body") and items.get(k[:-5] + ":header:content-type", "").startswith("text/rfc822-headers")
    ]:
        # the trace fields a delivery adds (describe leaves them out of a message/rfc822 copy too)
        items[key] = "\n".join(
            line for line in items[key].split("\n") if not re.match(r"(?i)(return-path|delivered-to):", line)
        )
    ctype = header_values(message, "content-type")[0]
    boundary = re.search(r'boundary="?([^";]+)"?', ctype).group(1)
    body = split_message(message)[1]
    chunks = (b"\n" + body.replace(b"\r\n", b"\n")).split(b"\n--" + boundary.encode())
    for chunk in chunks[1:]:
        part = chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""
        if b"message/feedback-report" in part.split(b"\n\n", 1)[0].lower():
            for name, value in split_message(split_message(part)[1])[0]:
                v = " ".join(value.split())
                if name.lower() == "user-agent":
                    ok = re.fullmatch(r"[!-.0-~]+(/[!-~]+)?( [!-.0-~]+(/[!-~]+)?)*", v)
                    v = "<product>" if ok else f"<invalid {v!r}>"
                items[f"feedback:{name.lower()}"] = v
    return items


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    script: str
    message: bytes
    settings: dict = dataclasses.field(default_factory=dict)  # Dovecot name -> (Dovecot value, Owlery TOML)
    mail_from: str = SENDER


CASES = [
    Case("plain", REP + 'report "abuse" "This message is spam!" "abuse@example.com";', msg()),
    Case("headers-only", REP + 'report :headers_only "abuse" "Spam" "abuse@example.com";', msg()),
    Case("utf8-text", REP + 'report "fraud" "Betrug! Grüße" "abuse@example.com";', msg()),
    Case(
        "encoded-subject",
        REP + 'report "abuse" "x" "abuse@example.com";',
        msg(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin"),
    ),
    Case("8bit-original", REP + 'report "abuse" "x" "abuse@example.com";', msg(body="Grüße\n")),
    Case("long-subject", REP + 'report "abuse" "x" "abuse@example.com";', msg(Subject=" ".join(["word"] * 40))),
    Case("long-text-line", REP + 'report "abuse" "' + "y" * 1200 + '" "abuse@example.com";', msg()),
    Case("no-subject", REP + 'report "abuse" "x" "abuse@example.com";', msg(Subject=None)),
    Case("type-trimmed-case-kept", REP + 'report " Abuse " "x" "abuse@example.com";', msg()),
    Case("display-name-address", REP + 'report "abuse" "x" "Abuse Desk <abuse@example.com>";', msg()),
    Case(
        "duplicate-address",
        REP + 'report "abuse" "one" "abuse@example.com"; report "fraud" "two" "abuse@EXAMPLE.com";',
        msg(),
    ),
    Case("two-addresses", REP + 'report "abuse" "one" "a@example.com"; report "virus" "two" "b@example.com";', msg()),
    Case("auto-submitted-message", REP + 'report "abuse" "x" "abuse@example.com";', msg(Auto_Submitted="auto-replied")),
    Case("with-discard", REP + 'report "abuse" "x" "abuse@example.com"; discard;', msg()),
    Case("variable-address", REP + 'set "a" "abuse@example.com"; report "abuse" "${a}" "${a}";', msg()),
    Case(
        "from-sender",
        REP + 'report "abuse" "x" "abuse@example.com";',
        msg(),
        {"sieve_report_from": ("sender", '"sender"')},
    ),
    Case(
        "from-recipient",
        REP + 'report "abuse" "x" "abuse@example.com";',
        msg(),
        {"sieve_report_from": ("recipient", '"recipient"')},
    ),
    Case(
        "from-orig-recipient",
        REP + 'report "abuse" "x" "abuse@example.com";',
        msg(),
        {"sieve_report_from": ("orig_recipient", '"orig_recipient"')},
    ),
    Case(
        "from-user-email",
        REP + 'report "abuse" "x" "abuse@example.com";',
        msg(),
        {
            "sieve_report_from": ("user_email", '"user_email"'),
            "sieve_user_email": ("me@example.net", '"me@example.net"'),
        },
    ),
    Case(
        "from-explicit",
        REP + 'report "abuse" "x" "abuse@example.com";',
        msg(),
        {"sieve_report_from": ('"<frop@example.com>"', '"<frop@example.com>"')},
    ),
    Case(
        "reporting-user",
        REP + 'report "abuse" "x" "abuse@example.com";',
        msg(),
        {"sieve_user_email": ("newuser@example.net", '"newuser@example.net"')},
    ),
    Case("invalid-type", REP + 'report "abuse;x" "x" "abuse@example.com";', msg()),
    Case("invalid-address", REP + 'report "abuse" "x" "not an address";', msg()),
    Case("runtime-invalid-type", REP + 'set "t" "abuse x"; report "${t}" "x" "abuse@example.com";', msg()),
]

# What may differ, each with its reason: (item regex, predicate on (pigeonhole, owlery), reason).
ALLOWED = {
    "long-text-lines": (
        r"body-lines-over-998|part0:header:content-transfer-encoding",
        lambda ph, owl: ph in ("True", "7bit") and owl in ("False", "quoted-printable"),
        "RFC 5322 2.1.1: lines MUST be no more than 998 characters; for a text with a longer line Pigeonhole "
        "sends it as it is, Owlery encodes the text part quoted-printable.",
    ),
    "header-line-length": (
        r"header-lines-over-78",
        lambda ph, owl: ph == "True" and owl == "False",
        "RFC 5322 2.1.1: lines SHOULD be no more than 78 characters; Pigeonhole writes a long Subject on one "
        "line, Owlery folds it within 76 (RFC 2047 2).",
    ),
    "8bit-original": (
        r"part2:header:content-transfer-encoding",
        lambda ph, owl: ph == "<absent>" and owl == "8bit",
        "RFC 2045 6.1: without Content-Transfer-Encoding a part is 7bit, 7-bit data only; Owlery labels "
        "an original with 8-bit octets 8bit, Pigeonhole leaves the label out.",
    ),
}


@pytest.fixture(scope="module")
def ph_root():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-report-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _pigeonhole_for(root: Path, case: Case) -> pigeonhole.Pigeonhole:
    ph = pigeonhole.Pigeonhole(root / case.name, ())
    if case.settings:
        conf = ph.home / "dovecot.conf"
        extra = "".join(f"  {k} = {v[0]}\n" for k, v in case.settings.items())
        conf.write_text(conf.read_text().replace("plugin {\n", "plugin {\n" + extra, 1))
        ph.env = ph._config_env()
    return ph


def test_reports_agree_with_pigeonhole(ph_root, tmp_path):
    problems, used, compared = [], set(), 0
    for case in CASES:
        script = case.script.encode()
        ph = run_pigeonhole(_pigeonhole_for(ph_root, case), script, case.message, case.mail_from)
        settings = SETTINGS + ON + "".join(f"{k} = {v[1]}\n" for k, v in case.settings.items())
        owl = run_owlery(tmp_path, script, case.message, case.mail_from, settings)
        if ph.status == "other":
            ph = Run("ok", [], ph.log)  # a runtime error: the implicit keep, nothing sent
        if ph.status != owl.status:
            problems.append(f"{case.name}: status pigeonhole={ph.status} owlery={owl.status}")
            continue
        if len(ph.sent) != len(owl.sent):
            problems.append(f"{case.name}: sent pigeonhole={len(ph.sent)} owlery={len(owl.sent)}")
            continue
        for (_, pf, pr, pm), (_, of, orc, om) in zip(ph.sent, owl.sent):
            compared += 1
            problems += [f"{case.name}: owlery: {p}" for p in rfc_problems("report", om)]
            if (pf, sorted(pr)) != (of, sorted(orc)):
                problems.append(f"{case.name}: envelope pigeonhole={(pf, pr)} owlery={(of, orc)}")
            a, b = feedback_items(pm), feedback_items(om)
            for item in sorted(set(a) | set(b)):
                pv, ov = a.get(item, "<absent>"), b.get(item, "<absent>")
                if pv == ov:
                    continue
                for key, (pattern, when, _reason) in ALLOWED.items():
                    if re.fullmatch(pattern, item) and when(pv, ov):
                        used.add(key)
                        break
                else:
                    problems.append(f"{case.name}: {item}: pigeonhole={pv!r} owlery={ov!r}")
    assert not problems, "\n".join(problems)
    assert compared >= 17
    assert set(ALLOWED) - used == set(), "allow-list entries no case needs"


# --- Owlery alone ------------------------------------------------------------------------------


def _run(script: str, message: bytes | None = None, settings: Settings | None = None, **env):
    s = settings or Settings().replace(sieve_extensions_disabled=[])
    envelope = Envelope(
        mail_from=env.get("mail_from", SENDER), rcpt_to=env.get("rcpt_to", USER), orig_rcpt=env.get("orig_rcpt")
    )
    return run(compile_script(script.encode(), settings=s), msg() if message is None else message, envelope, settings=s)


def _reports(result) -> list[Report]:
    return [a for a in result.actions if isinstance(a, Report)]


def test_8bit_original_is_labelled():
    r = _run(REP + 'report "abuse" "x" "abuse@example.com";', msg(body="Grüße\n"))
    [rep] = _reports(r)
    assert describe("report", rep.message)["part2:header:content-transfer-encoding"] == "8bit"


def test_report_leaves_the_implicit_keep_and_goes_from_null_sender():
    r = _run(REP + 'report "abuse" "x" "abuse@example.com";')
    [rep] = _reports(r)
    assert r.implicit_keep and rep.envelope_from == "" and rep.address == "abuse@example.com"
    assert header_values(rep.message, "auto-submitted") == ["auto-generated (report)"]


@pytest.mark.parametrize(
    "script,error",
    [
        ('report "abuse;x" "x" "a@example.com";', "feedback type"),
        ('report "" "x" "a@example.com";', "feedback type"),
        ('report "abuse" "x" "two@example.com, more@example.com";', "report address"),
        ('report "abuse" "x" "nodomain";', "report address"),
        ('report :headers_only "abuse" "x";', ""),
    ],
)
def test_compile_errors(script, error):
    with pytest.raises(SieveCompileError) as e:
        compile_script((REP + script).encode(), settings=Settings().replace(sieve_extensions_disabled=[]))
    assert error in str(e.value)


def test_runtime_invalid_address_is_a_runtime_error():
    r = _run(REP + 'set "a" "no address"; report "abuse" "x" "${a}";')
    assert r.status == "error" and not _reports(r) and "report address" in " ".join(r.errors)


def test_report_counts_against_max_actions():
    s = Settings().replace(sieve_max_actions=2, sieve_extensions_disabled=[])
    r = _run(
        REP + 'report "abuse" "x" "a@example.com"; report "abuse" "x" "b@example.com"; '
        'report "abuse" "x" "c@example.com";',
        settings=s,
    )
    assert r.status == "resource_limit"


def test_reporting_user_and_original_recipient_fields():
    r = _run(REP + 'report "abuse" "x" "abuse@example.com";', orig_rcpt="orig@example.net")
    items = feedback_items(_reports(r)[0].message)
    assert items["feedback:original-rcpt-to"] == "<orig@example.net>"
    assert items["feedback:dovecot-reporting-user"] == "<orig@example.net>"
    assert items["feedback:original-mail-from"] == f"<{SENDER}>"
    r = _run(REP + 'report "abuse" "x" "abuse@example.com";', mail_from="")
    assert feedback_items(_reports(r)[0].message)["feedback:original-mail-from"] == "<>"


def test_from_sender_of_null_sender_falls_back_to_postmaster():
    s = Settings().replace(
        sieve_report_from="sender", sieve_postmaster_address="pm@example.net", sieve_extensions_disabled=[]
    )
    r = _run(REP + 'report "abuse" "x" "abuse@example.com";', settings=s, mail_from="")
    items = describe("report", _reports(r)[0].message)
    assert items["header:from:addr"] == "pm@example.net" and items["header:from:display"] == "Postmaster"


@pytest.mark.parametrize(
    "value,parsed",
    [
        ("default", "postmaster"),
        ("POSTMASTER", "postmaster"),
        ("<a@example.com>", "<a@example.com>"),
        ("Sender", "sender"),
    ],
)
def test_report_from_setting(value, parsed):
    assert Settings().replace(sieve_report_from=value).sieve_report_from == parsed


@pytest.mark.parametrize("value", ["nobody", "<not an address", "a@example.com"])
def test_report_from_setting_refuses_garbage(value):
    with pytest.raises(SettingsError):
        Settings().replace(sieve_report_from=value)


def test_text_with_a_boundary_line_keeps_the_mime_structure():
    r = _run(REP + 'report "abuse" "x" "abuse@example.com";')
    boundary = re.search(rb'boundary="([^"]+)"', _reports(r)[0].message).group(1).decode()
    # the same run state gives the same boundary: a text holding it must get another one
    r2 = _run(REP + f'report "abuse" "--{boundary}" "abuse@example.com";')
    m = _reports(r2)[0].message
    b2 = re.search(rb'boundary="([^"]+)"', m).group(1).decode()
    assert b2 != boundary and describe("report", m)["parts"] == "3"


def test_report_goes_out_through_the_delivery(tmp_path):
    """The executor sends the report like any ready message (planner SendStep): from <> to the
    address, besides storing the message."""
    out = run_owlery(
        tmp_path,
        (REP + 'report :headers_only "abuse" "spam" "abuse@example.com";').encode(),
        msg(),
        SENDER,
        SETTINGS + ON,
    )
    [(_, env_from, rcpts, m)] = out.sent
    assert (env_from, rcpts) == ("", ("abuse@example.com",))
    assert describe("report", m)["part2:header:content-type"] == "text/rfc822-headers"


def test_extension_is_registered_with_its_specification():
    from sieve import extensions

    ext = extensions.REGISTRY["vnd.dovecot.report"]
    assert "RFC 5965" in ext.rfc and ext.summary
    assert parse_text('sieve_report_from = "recipient"\n').sieve_report_from == "recipient"


def test_report_copies_are_charged_to_the_memory_budget():
    s = Settings().replace(sieve_max_memory="64k", sieve_extensions_disabled=[])
    big = msg(body="x" * 40000 + "\n")
    script = REP + 'report "abuse" "x" "a@example.com"; report "abuse" "x" "b@example.com";'
    assert _run(script, big, settings=s).status == "resource_limit"
    # the header alone is small
    script = script.replace('report "abuse"', 'report :headers_only "abuse"')
    assert len(_reports(_run(script, big, settings=s))) == 2


def test_extension_is_off_by_default_as_in_pigeonhole(tmp_path):
    """Pigeonhole leaves vnd.dovecot.report out of its default sieve_extensions (the parity run
    enables it with -x); Owlery's default sieve_extensions_disabled names it."""
    from sieve import extensions

    assert "vnd.dovecot.report" not in extensions.capabilities(Settings())
    assert "vnd.dovecot.report" in extensions.capabilities(Settings().replace(sieve_extensions_disabled=[]))
    with pytest.raises(SieveCompileError):
        compile_script((REP + 'report "abuse" "x" "a@example.com";').encode(), settings=Settings())
    assert run_owlery(tmp_path, (REP + 'report "abuse" "x" "a@example.com";').encode(), msg(), SENDER).status == (
        "compile-error"
    )
