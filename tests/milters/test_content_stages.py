"""Content stages (antivirus, spam, quarantine) through the sans-I/O session, with fake scanners.

Each case drives a real MilterSession with the stage under test and a scripted clamd/spamd
client, then checks the Outcome (action, reply, header effects) and the quarantine store.
"""

import ipaddress

import pytest

from milters import effects as fx
from milters.clients import ScannerUnavailable
from milters.clients.clamav import ScanResult
from milters.clients.spamd import RuleHit, SpamResult
from owlery.quarantine import ListFilter, QuarantineUnavailable
from owlery.quarantine.directory import DirectoryStore
from milters.session import MilterSession
from milters.stages import Services
from milters.stages.antivirus import AntivirusStage
from milters.stages.quarantine import QuarantineStage
from milters.stages.spam import SpamStage, dnsbl_query_name, header_problems, rbl_symbol
from milters.testing import split_message
from owlery.directory import SpamLevels
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings
from tests.milters.session_driver import NOW, FixedPipeline, run_session

CLEAN = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
         b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\nHi Bob\r\n")


class FakeClamd:
    def __init__(self, result=ScanResult(False), error=None):
        self.result, self.error, self.seen = result, error, []

    def scan(self, data):
        self.seen.append(data)
        if self.error:
            raise self.error
        return self.result


class FakeSpamd:
    def __init__(self, score=0.0, rules=(), error=None, oversize=False):
        self.score, self.rules, self.error, self.oversize, self.seen = score, rules, error, oversize, []

    def scan(self, data, prefix=b""):
        self.seen.append(data)
        if self.error:
            raise self.error
        if self.oversize:
            return None
        return SpamResult(self.score, 5.0, self.score >= 5, tuple(RuleHit(n, s) for n, s in self.rules))


@pytest.fixture
def settings(tmp_path):
    return Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1",
                              milter_authserv_id="mx.owlery.test")


def services(resolver=None):
    return Services(resolver=resolver, now=lambda: NOW)


def run(settings, stages, raw=CLEAN, **kw):
    """rcpts, client, on_error: see session_driver.run_session."""
    return run_session(settings, stages, raw, **kw)


def headers(outcome):
    return [(e.name, e.value) for e in outcome.effects if isinstance(e, fx.AddHeader)]


def header(outcome, name):
    values = [v for n, v in headers(outcome) if n == name]
    assert len(values) <= 1, f"{name} added {len(values)} times"
    return values[0] if values else None


# --- antivirus -------------------------------------------------------------------------------

def test_clean_message_is_marked_scanned(settings):
    clamd = FakeClamd()
    out = run(settings, [AntivirusStage(settings, services(), client=clamd)])
    assert out.action == fx.ACCEPT
    assert header(out, "X-Virus-Scanned").startswith("ClamAV at ")
    assert clamd.seen[0].startswith(b"From: Alice") and clamd.seen[0].endswith(b"Hi Bob\r\n")


def test_infected_is_rejected_naming_the_virus(settings):
    out = run(settings, [AntivirusStage(settings, services(), client=FakeClamd(ScanResult(True, "Eicar-Sig")))])
    assert out.action == fx.REJECT
    assert (out.reply.code, out.reply.dsn) == (554, "5.7.1") and "Eicar-Sig" in out.reply.text


def test_a_virus_name_with_8bit_or_control_characters_still_rejects(settings):
    """clamd's name goes into the SMTP reply: printable ASCII there, never an internal error
    (which would tempfail an infected message forever)."""
    out = run(settings, [AntivirusStage(settings, services(), client=FakeClamd(ScanResult(True, "Eicär\r\n250 ok")))])
    assert out.action == fx.REJECT and (out.reply.code, out.reply.dsn) == (554, "5.7.1")
    assert "Eic?r??250 ok" in out.reply.text


def test_infected_is_quarantined_and_discarded_by_setting(settings, tmp_path):
    s = settings.replace(antivirus_infected_action="quarantine")
    out = run(s, [AntivirusStage(s, services(), client=FakeClamd(ScanResult(True, "Eicar-Sig")))])
    assert out.action == fx.DISCARD
    [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW)
    assert (rec.reason, rec.detail, rec.sender, rec.pending()) == ("virus", "Eicar-Sig", "alice@sender.test",
                                                                  ("bob@example.test",))
    assert (rec.client_addr, rec.queue_id, rec.host, rec.subject, rec.created) == \
        ("203.0.113.5", "QID1", "mx1", "hello", NOW)
    assert DirectoryStore(str(tmp_path / "q")).message(rec.mail_id).endswith(b"\r\n\r\nHi Bob\r\n")


def test_quarantine_then_reject_by_setting(settings, tmp_path):
    s = settings.replace(antivirus_infected_action="quarantine", quarantine_action="reject")
    out = run(s, [AntivirusStage(s, services(), client=FakeClamd(ScanResult(True, "Eicar-Sig")))])
    [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW)
    assert out.action == fx.REJECT and out.reply.code == 554 and rec.mail_id in out.reply.text


@pytest.mark.parametrize("action, expected", [("tempfail", fx.TEMPFAIL), ("accept", fx.ACCEPT)])
def test_clamd_unreachable(settings, action, expected):
    s = settings.replace(antivirus_unavailable_action=action)
    out = run(s, [AntivirusStage(s, services(), client=FakeClamd(error=ScannerUnavailable("down")))])
    assert out.action == expected
    if expected == fx.TEMPFAIL:
        assert (out.reply.code, out.reply.dsn) == (451, "4.7.1")
    else:
        assert header(out, "X-Virus-Status") == "unchecked (scanner unavailable)"
        assert header(out, "X-Virus-Scanned") is None


def test_too_large_for_clamd_is_marked_unchecked(settings):
    out = run(settings, [AntivirusStage(settings, services(), client=FakeClamd(ScanResult(False, scanned=False)))])
    assert out.action == fx.ACCEPT and header(out, "X-Virus-Status") == "unchecked (message too large)"


def test_quarantine_store_down_means_tempfail_not_loss(settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    s = settings.replace(antivirus_infected_action="quarantine", quarantine_directory=str(blocker / "q"))
    out = run(s, [AntivirusStage(s, services(), client=FakeClamd(ScanResult(True, "Eicar-Sig")))])
    assert out.action == fx.TEMPFAIL and out.reply.code == 451


# --- spam --------------------------------------------------------------------------------------

def spam_stage(s, spamd=None, resolver=None, directory=None):
    return SpamStage(s, services(resolver), client=spamd if spamd is not None else FakeSpamd(),
                     directory=directory)


def test_clean_message_gets_spam_headers(settings):
    out = run(settings, [spam_stage(settings, FakeSpamd(-0.1, [("NO_RELAYS", -0.1)]))])
    assert out.action == fx.ACCEPT
    status = header(out, "X-Spam-Status")
    assert status.startswith("No, score=-0.1 required=5 tests=[NO_RELAYS=-0.1]")
    assert header(out, "X-Spam-Score") == "-0.1" and header(out, "X-Spam-Level") == ""
    assert header(out, "X-Spam-Flag") is None


def test_tag2_flags_once_and_tags_subject(settings):
    s = settings.replace(spam_subject_tag="***Spam*** ")
    out = run(s, [spam_stage(s, FakeSpamd(7.5, [("BAYES_99", 7.5)]))])
    assert out.action == fx.ACCEPT
    assert header(out, "X-Spam-Status").startswith("Yes, score=7.5")
    assert header(out, "X-Spam-Level") == "*******"
    assert header(out, "X-Spam-Flag") == "YES"            # once: the stage settled the score
    assert fx.ChangeHeader("Subject", 1, "***Spam*** hello") in out.effects


def test_flag_added_by_stage_when_verdict_header_differs(settings):
    s = settings.replace(milter_tag_header="X-Owlery-Spam", spam_tag2_level=3.0)
    out = run(s, [spam_stage(s, FakeSpamd(4.0, [("X", 4.0)]))])
    assert header(out, "X-Spam-Flag") == "YES"


def test_quarantine_level(settings, tmp_path):
    s = settings.replace(spam_quarantine_level=10.0)
    out = run(s, [spam_stage(s, FakeSpamd(1000.0, [("GTUBE", 1000.0)]))])
    assert out.action == fx.DISCARD
    [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW)
    assert rec.reason == "spam" and rec.score == 1000.0 and ("SPAMD", 1000.0, "GTUBE") in rec.symbols


def test_reject_level_wins_over_quarantine(settings, tmp_path):
    s = settings.replace(spam_quarantine_level=10.0, spam_reject_level=20.0)
    out = run(s, [spam_stage(s, FakeSpamd(25.0, [("X", 25.0)]))])
    assert out.action == fx.REJECT and (out.reply.code, out.reply.dsn) == (550, "5.7.1")
    assert DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW) == []


def test_forged_spam_headers_are_removed(settings):
    raw = CLEAN.replace(b"Subject:", b"X-Spam-Flag: NO\r\nX-Spam-Status: No\r\nX-Spam-Flag: NO\r\nSubject:")
    out = run(settings, [spam_stage(settings)], raw=raw)
    removed = [e for e in out.effects if isinstance(e, fx.ChangeHeader) and e.value is None]
    assert removed == [fx.ChangeHeader("X-Spam-Flag", 2, None), fx.ChangeHeader("X-Spam-Flag", 1, None),
                       fx.ChangeHeader("X-Spam-Status", 1, None)]


def test_spamd_down_defers_by_default(settings):
    """Nothing is let in unscanned while spamd is down unless the postmaster says so."""
    out = run(settings, [spam_stage(settings, FakeSpamd(error=ScannerUnavailable("spamd down")))])
    assert out.action == fx.TEMPFAIL


@pytest.mark.parametrize("action, expected", [("accept", fx.ACCEPT), ("tempfail", fx.TEMPFAIL)])
def test_spamd_down(settings, action, expected):
    s = settings.replace(spam_spamd_unavailable_action=action)
    out = run(s, [spam_stage(s, FakeSpamd(error=ScannerUnavailable("spamd down")))])
    assert out.action == expected
    assert "SPAMD_UNAVAILABLE" in [sym.name for sym in out.symbols]


def test_spamd_skipped_over_size(settings):
    out = run(settings, [spam_stage(settings, FakeSpamd(oversize=True))])
    assert "SPAMD_SKIPPED" in [sym.name for sym in out.symbols] and out.action == fx.ACCEPT


def test_auth_evidence_from_our_authentication_results_header(settings):
    raw = (b"Authentication-Results: mx.owlery.test; spf=fail smtp.mailfrom=sender.test; dkim=fail; dmarc=fail\r\n"
           b"Authentication-Results: forger.test; spf=pass smtp.mailfrom=sender.test\r\n" + CLEAN)
    out = run(settings, [spam_stage(settings)], raw=raw)
    names = {sym.name: sym.score for sym in out.symbols}
    assert names["SPF_FAIL"] == 2.0 and names["DKIM_INVALID"] == 1.0 and names["DMARC_FAIL"] == 3.0
    assert "SPF_PASS" not in names                       # the foreign header is not trusted
    assert "SPF_FAIL=2" in header(out, "X-Spam-Status")


def test_auth_evidence_from_earlier_stage_and_score_override(settings):
    class AuthStage:
        name = "spf"

        def check(self, message, report):
            report.auth_result("spf", "softfail", smtp_mailfrom="sender.test")
            report.auth_result("dkim", "pass", header_d="sender.test")
    s = settings.replace(milter_symbol_scores={"SPF_SOFTFAIL": 1.5})
    out = run(s, [AuthStage(), spam_stage(s)])
    names = {sym.name: sym.score for sym in out.symbols}
    assert names["SPF_SOFTFAIL"] == 1.5 and names["DKIM_VALID"] == -0.2


class FakeResolver:
    def __init__(self, listed):
        self.listed, self.asked = listed, []

    def resolve(self, name, rdtype, raise_on_no_answer=True):
        import dns.resolver
        self.asked.append(name)
        if name not in self.listed:
            raise dns.resolver.NXDOMAIN()

        class RR:
            address = self.listed[name]

        class Answer:
            rrset = [RR()]
        return Answer()


def test_dnsbl_listing_adds_symbol(settings):
    s = settings.replace(spam_dnsbl_zones=["bl.example.test", "other.example.test"])
    resolver = FakeResolver({"142.69.2.81.bl.example.test": "127.0.0.2"})
    # a global address (documentation ranges such as 203.0.113.0/24 are never looked up)
    out = run(s, [spam_stage(s, resolver=resolver)], client=("mx.sender.test", "81.2.69.142"))
    names = {sym.name: sym.score for sym in out.symbols}
    assert names == {**names, "RBL_BL_EXAMPLE_TEST": 3.0}
    assert "RBL_OTHER_EXAMPLE_TEST" not in names
    assert resolver.asked == ["142.69.2.81.bl.example.test", "142.69.2.81.other.example.test"]
    # private and loopback clients are never looked up
    resolver.asked.clear()
    run(s, [spam_stage(s, resolver=resolver)], client=("localhost", "127.0.0.1"))
    assert resolver.asked == []


def test_dnsbl_names():
    assert dnsbl_query_name(ipaddress.ip_address("192.0.2.99"), "zen.example.") == "99.2.0.192.zen.example"
    assert dnsbl_query_name(ipaddress.ip_address("2001:db8::1"), "bl.test").startswith("1.0.0.0.0.0.0.0.")
    assert rbl_symbol("zen.spamhaus.org") == "RBL_ZEN_SPAMHAUS_ORG"


@pytest.mark.parametrize("raw, expected", [
    (CLEAN, []),
    (b"To: x@y\r\n\r\nbody\r\n", ["HDR_MISSING_FROM", "HDR_MISSING_DATE", "HDR_MISSING_MESSAGE_ID"]),
    (CLEAN.replace(b"To:", b"From: b@c.test\r\nTo:"), ["HDR_MULTIPLE_FROM"]),
    (CLEAN.replace(b"Alice <alice@sender.test>", b"just a name"), ["HDR_BAD_FROM"]),
    (CLEAN.replace(b"Mon, 02 Mar 2026 10:00:00 +0000", b"yesterday-ish"), ["HDR_BAD_DATE"]),
    (CLEAN.replace(b"Subject: hello", b"Subject: " + b"x" * 1000), ["HDR_LINE_TOO_LONG"]),
])
def test_header_problems(settings, raw, expected):
    session = MilterSession(settings, FixedPipeline([]))
    session.mail_from("<a@b>", (), {})
    for name, value in split_message(raw)[0]:
        session.header(name, value)
    assert [name for name, _ in header_problems(session.message)] == expected


class FakeDirectory:
    """spam_levels(address) from a table of keyword dicts; `down` makes every lookup fail."""

    def __init__(self, levels, down=False):
        self.levels, self.down, self.asked = levels, down, []

    def spam_levels(self, address):
        self.asked.append(address)
        if self.down:
            raise DirectoryUnavailable("LDAP search failed: server down")
        return SpamLevels(**self.levels.get(address, {}))


STRICT, LENIENT = "strict@example.test", "lenient@example.test"
LEVELS = {STRICT: {"quarantine": 3.0}, LENIENT: {"quarantine": 50.0}}


def spam_run(s, score, rcpts, levels=LEVELS, directory=None, **kw):
    directory = directory if directory is not None else FakeDirectory(levels)
    return run(s, [spam_stage(s, FakeSpamd(score, [("X", score)]), directory=directory)], rcpts=rcpts, **kw)


def stored(tmp_path):
    return DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW)


def removed(outcome):
    return [e.address for e in outcome.effects if isinstance(e, fx.DelRcpt)]


def test_single_recipient_with_own_level(settings, tmp_path):
    s = settings.replace(spam_quarantine_level=10.0)
    out = spam_run(s, 4.0, (STRICT,))
    assert out.action == fx.DISCARD and removed(out) == []
    [rec] = stored(tmp_path)
    assert rec.pending() == (STRICT,)
    assert spam_run(s, 4.0, (LENIENT,)).action == fx.ACCEPT         # 4 < 50: delivered


def test_recipient_over_own_level_is_removed_and_quarantined_others_still_get_it(settings, tmp_path):
    s = settings.replace(spam_quarantine_level=10.0)
    out = spam_run(s, 12.0, (STRICT, LENIENT))
    assert out.action == fx.ACCEPT
    assert removed(out) == [STRICT]
    [rec] = stored(tmp_path)
    assert (rec.reason, rec.detail, rec.pending(), rec.score) == ("spam", "score 12", (STRICT,), 12.0)
    assert DirectoryStore(str(tmp_path / "q")).message(rec.mail_id).endswith(b"Hi Bob\r\n")
    # the lenient recipient's copy is tagged by the global tag2 (milter_score_tag 5)
    assert header(out, "X-Spam-Flag") == "YES" and header(out, "X-Spam-Status").startswith("Yes, score=12")


def test_every_recipient_over_their_level_quarantines_the_whole_message(settings, tmp_path):
    s = settings.replace(spam_quarantine_level=10.0)     # no global reject level
    out = spam_run(s, 60.0, (STRICT, LENIENT))
    assert out.action == fx.DISCARD and removed(out) == []
    [rec] = stored(tmp_path)
    assert rec.pending() == (STRICT, LENIENT)


def test_every_recipient_over_their_reject_level_rejects(settings, tmp_path):
    levels = {STRICT: {"reject": 5.0}, LENIENT: {"reject": 8.0, "quarantine": 50.0}}
    out = spam_run(settings, 9.0, (STRICT, LENIENT), levels)
    assert out.action == fx.REJECT and (out.reply.code, out.reply.dsn) == (550, "5.7.1")
    assert stored(tmp_path) == []
    # one over reject, one over quarantine, nobody left: quarantined, not refused
    levels = {STRICT: {"reject": 5.0}, LENIENT: {"quarantine": 8.0}}
    assert spam_run(settings, 9.0, (STRICT, LENIENT), levels).action == fx.DISCARD


def test_recipient_over_own_reject_level_is_quarantined_when_others_take_the_message(settings, tmp_path):
    levels = {STRICT: {"reject": 5.0}, LENIENT: {"quarantine": 50.0, "reject": 60.0}}
    out = spam_run(settings, 9.0, (STRICT, LENIENT), levels)
    assert out.action == fx.ACCEPT and removed(out) == [STRICT]
    [rec] = stored(tmp_path)
    assert rec.pending() == (STRICT,)


def test_headers_follow_the_lowest_levels_of_those_still_receiving(settings, tmp_path):
    a, b, c = "a@example.test", "b@example.test", "c@example.test"
    levels = {a: {"tag2": 10.0, "tag": 2.0}, b: {"tag2": 4.0, "tag": 1.0}, c: {"tag2": 3.0, "quarantine": 5.0}}
    out = spam_run(settings, 6.0, (a, b, c), levels)
    assert removed(out) == [c]                       # c's tag2 of 3 no longer counts
    assert header(out, "X-Spam-Status").startswith("Yes, score=6 tagged_above=1 required=4")
    assert header(out, "X-Spam-Flag") == "YES"
    out = spam_run(settings, 6.0, (a, c), levels)
    assert removed(out) == [c] and header(out, "X-Spam-Flag") is None
    assert header(out, "X-Spam-Status").startswith("No, score=6 tagged_above=2 required=10")
    out = spam_run(settings, 1.5, (a,), levels)      # under a's own tag level: no spam-info headers
    assert header(out, "X-Spam-Status") is None and out.action == fx.ACCEPT


def test_own_levels_stand_instead_of_the_generic_score_verdict(settings):
    # 20 is over milter_score_reject (15), but the recipients' own levels say deliver
    levels = {STRICT: {"quarantine": 30.0, "reject": 40.0, "tag2": 25.0}, LENIENT: {"tag2": 25.0}}
    s = settings.replace(spam_quarantine_level=45.0, milter_score_quarantine=6.0)
    out = spam_run(s, 20.0, (STRICT, LENIENT), levels)
    assert out.action == fx.ACCEPT and removed(out) == []
    assert header(out, "X-Spam-Flag") is None and not any(isinstance(e, fx.Hold) for e in out.effects)


def test_milter_tag_header_follows_the_spam_tag2_level(settings):
    s = settings.replace(milter_tag_header="X-Owlery-Spam")
    levels = {STRICT: {"tag2": 3.0}}
    out = spam_run(s, 4.0, (STRICT,), levels)
    assert header(out, "X-Owlery-Spam") == "YES" and header(out, "X-Spam-Flag") == "YES"
    assert header(spam_run(s, 4.0, (LENIENT,), levels), "X-Owlery-Spam") is None   # global tag2 5


def test_directory_down_tempfails_by_default(settings, tmp_path):
    out = spam_run(settings, 12.0, (STRICT, LENIENT), directory=FakeDirectory({}, down=True))
    assert out.action == fx.TEMPFAIL and out.reply.code == 451
    assert stored(tmp_path) == []


def test_directory_down_with_continue_falls_back_to_the_milter_thresholds(settings):
    stage = spam_stage(settings, FakeSpamd(16.0, [("X", 16.0)]), directory=FakeDirectory({}, down=True))
    out = run(settings, [stage], rcpts=(STRICT, LENIENT), on_error="continue")
    # not a silent pass: the generic verdict (milter_score_reject 15) still applies
    assert out.action == fx.REJECT and "SPAM_ERROR" in [sym.name for sym in out.symbols]
    stage = spam_stage(settings, FakeSpamd(6.0, [("X", 6.0)]), directory=FakeDirectory({}, down=True))
    out = run(settings, [stage], rcpts=(STRICT,), on_error="continue")
    assert out.action == fx.ACCEPT and header(out, "X-Spam-Flag") == "YES"    # milter_score_tag 5


def test_real_ldap_levels_then_server_down_tempfails(settings, tmp_path, make_slapd):
    from owlery.directory import open_directory
    server = make_slapd()
    s = settings.replace(directory_backend="ldap", ldap_servers=[server.url], ldap_base_dn=server.base_dn,
                         spam_quarantine_level=6.9, directory_cache_positive_ttl=0, directory_cache_negative_ttl=0)
    directory = open_directory(s)
    out = spam_run(s, 5.0, ("alice@example.test", "bob@example.test"), directory=directory)
    assert out.action == fx.ACCEPT and removed(out) == ["bob@example.test"]     # bob's kill level is 3
    assert "required=4.5" in header(out, "X-Spam-Status")                       # alice's own tag2
    server.stop()
    out = spam_run(s, 5.0, ("alice@example.test", "bob@example.test"), directory=directory)
    assert out.action == fx.TEMPFAIL and out.reply.code == 451 and removed(out) == []
    assert len(stored(tmp_path)) == 1
    directory.close()


def test_quarantine_store_down_during_split_tempfails_and_removes_nobody(settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    s = settings.replace(quarantine_directory=str(blocker / "q"))
    out = spam_run(s, 12.0, (STRICT, LENIENT))
    assert out.action == fx.TEMPFAIL and removed(out) == []


def test_duplicate_and_no_directory(settings, tmp_path):
    s = settings.replace(spam_quarantine_level=10.0)
    directory = FakeDirectory(LEVELS)
    out = spam_run(s, 4.0, (STRICT, STRICT.upper(), LENIENT), directory=directory)
    assert directory.asked == [STRICT, STRICT.upper(), LENIENT]
    assert removed(out) == [STRICT]                  # the upper-case twin has no own levels: global 10
    out = run(s, [SpamStage(s, services(), client=FakeSpamd(4.0, [("X", 4.0)]))], rcpts=(STRICT, LENIENT))
    assert out.action == fx.ACCEPT and removed(out) == []


def test_split_through_the_milter_with_a_files_directory(milter_env, tmp_path):
    """The real pipeline and adapter (FakeMilterContext): own evidence only, levels from a map file."""
    levels = tmp_path / "spam_levels"
    levels.write_text("strict@example.test  kill=3\n@example.test  tag2=4\n")
    run_milter = milter_env(milter_inbound_stages=["spam"], spam_use_spamd=False, spam_directory_levels=True,
                            files_spam_levels=str(levels), quarantine_directory=str(tmp_path / "q"),
                            milter_symbol_scores={"HDR_MISSING_DATE": 4.5})
    raw = CLEAN.replace(b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n", b"")
    code, ctx = run_milter(raw, recipients=("<strict@example.test>", "<other@example.test>"))
    import Milter
    assert code == Milter.ACCEPT
    assert ctx.deleted_rcpts == ["<strict@example.test>"]
    assert ctx.header_value("X-Spam-Flag") == "YES"           # 4.5 >= the domain's tag2 of 4
    [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW * 2)
    assert rec.pending() == ("strict@example.test",) and rec.score == 4.5
    code, ctx = run_milter(raw, recipients=("<strict@example.test>",))
    assert code == Milter.DISCARD and ctx.deleted_rcpts == []


# --- quarantine stage (the score verdict) -------------------------------------------------------

def test_quarantine_stage_takes_the_score_verdict(settings, tmp_path):
    class Scorer:
        name = "scorer"

        def check(self, message, report):
            report.symbol("SOMETHING_BAD", 8.0)
    s = settings.replace(milter_score_quarantine=6.0)
    out = run(s, [Scorer(), QuarantineStage(s, services())])
    assert out.action == fx.DISCARD
    [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW)
    assert rec.reason == "spam" and rec.detail == "score 8" and not any(isinstance(e, fx.Hold) for e in out.effects)


def test_quarantine_stage_honours_requests_and_ignores_clean(settings, tmp_path):
    class Requester:
        name = "req"

        def check(self, message, report):
            report.data["quarantine_request"] = ("policy", "looked odd")
    out = run(settings, [Requester(), QuarantineStage(settings, services())])
    assert out.action == fx.DISCARD
    out = run(settings, [QuarantineStage(settings, services())])
    assert out.action == fx.ACCEPT
    assert [r.reason for r in DirectoryStore(str(tmp_path / "q")).list(ListFilter(), NOW)] == ["policy"]


def test_store_errors_are_temporary():
    assert issubclass(QuarantineUnavailable, Exception)
    assert QuarantineUnavailable.reply.code == 451
