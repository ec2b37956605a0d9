"""Per-recipient content policy: *_lovers and policy banks, from the directory, applied by the banned, antivirus, spam and quarantine stages."""

from __future__ import annotations

import logging

import pytest

from milters import effects as fx
from milters.clients.clamav import ScanResult
from milters.stages.antivirus import AntivirusStage
from milters.stages.banned import BannedStage
from milters.stages.quarantine import QuarantineStage
from owlery.content_policy import NO_POLICY, ContentPolicy, check_token, resolve, split_tokens
from owlery.directory.base import SpamLevels
from owlery.directory.files import FilesDirectory, MapError
from owlery.quarantine import ListFilter
from owlery.quarantine.directory import DirectoryStore
from tests.milters.test_content_banned import mime
from tests.milters.test_content_stages import NOW, FakeClamd, FakeSpamd, header, run, services, spam_stage

LOVER, PLAIN, FAN = "lover@example.test", "plain@example.test", "fan@fans.test"
POLICY_MAP = (f"{LOVER}  banned_files_lover, virus_lover\n"
              "@fans.test  bank=Relaxed\n"
              "example.org  spam_lover\n")
EVIL = mime(("application/octet-stream", "invoice.exe", b"hello"))


@pytest.fixture
def policy_settings(tmp_path):
    (tmp_path / "policy").write_text(POLICY_MAP)
    from owlery.settings import Settings
    return Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1",
                              milter_authserv_id="mx.owlery.test", files_content_policy=str(tmp_path / "policy"),
                              content_policy_banks={"relaxed": ["spam_lover", "virus_lover", "tag2=8"]})


def stored(s):
    return DirectoryStore(s.quarantine_directory).list(ListFilter(), NOW + 1)


def removed(out):
    return [e.address for e in out.effects if isinstance(e, fx.DelRcpt)]


# --- the vocabulary and banks ------------------------------------------------------------------

def test_tokens_and_banks():
    assert split_tokens(["banned_files_lover,virus_lover", " bank=x "]) == ["banned_files_lover", "virus_lover",
                                                                             "bank=x"]
    assert check_token("Spam_Lover") == "spam_lover"
    with pytest.raises(ValueError, match="unknown content policy"):
        check_token("tag2=5")                       # levels belong in a bank, not in an entry
    with pytest.raises(ValueError):
        check_token("hates_spam")
    banks = {"Relaxed": ("spam_lover", "tag2=8", "kill=20")}
    assert resolve(["bank=relaxed", "virus_lover"], banks) == ContentPolicy(
        frozenset({"spam_lover", "virus_lover"}), "relaxed", SpamLevels(tag2=8.0, quarantine=20.0))


def test_unknown_bank_or_token_is_logged_and_left_out(caplog):
    with caplog.at_level(logging.WARNING, logger="owlery.directory"):
        assert resolve(["bank=nope", "virus_lover", "junk"], {}, "bob@x.test") == ContentPolicy(
            frozenset({"virus_lover"}))
    assert "bank 'nope' is not in content_policy_banks" in caplog.text and "junk" in caplog.text


def test_banks_setting_refuses_bad_tokens():
    from owlery.settings import SettingsError, parse_text
    with pytest.raises(SettingsError, match="content_policy_banks.x"):
        parse_text('content_policy_banks = { x = ["spam_lover", "tag2=high"] }')


# --- the files directory -----------------------------------------------------------------------

def test_files_map_lookup_order(policy_settings):
    d = FilesDirectory(policy_settings)
    assert d.content_policy("Lover+tag@Example.TEST") == ("banned_files_lover", "virus_lover")
    assert d.content_policy(PLAIN) == ()
    assert d.content_policy("anyone@fans.test") == ("bank=relaxed",)
    assert d.content_policy("x@sub.example.org") == ("spam_lover",)        # a domain covers its subdomains


def test_files_map_with_a_bad_token_is_refused(tmp_path, policy_settings):
    (tmp_path / "policy").write_text("bob@example.test  loves_everything\n")
    with pytest.raises(MapError, match="loves_everything"):
        FilesDirectory(policy_settings)


def test_ldap_attribute_most_specific_entry_wins(policy_settings):
    from owlery.directory.ldap import LdapDirectory, _Entry
    s = policy_settings.replace(directory_backend="ldap", ldap_content_policy_attribute="owleryContentPolicy",
                                ldap_address_attributes=["mail"])
    d = LdapDirectory(s)
    assert "owleryContentPolicy" in d.attributes
    d.search = lambda flt, **kw: [
        _Entry("cn=dom", {"mail": ["@example.test"], "owleryContentPolicy": ["spam_lover"]}),
        _Entry("cn=bob", {"mail": ["bob@example.test"], "owleryContentPolicy": ["virus_lover banned_files_lover"]})]
    assert d.content_policy("bob@example.test") == ("virus_lover", "banned_files_lover")
    assert d.content_policy("carol@example.test") == ("spam_lover",)


# --- banned files ------------------------------------------------------------------------------

def test_no_lover_banned_is_refused_for_all(policy_settings):
    out = run(policy_settings, [BannedStage(policy_settings, services())], raw=EVIL, rcpts=(PLAIN,))
    assert out.action == fx.REJECT


def test_all_lovers_get_the_banned_file_marked(policy_settings):
    out = run(policy_settings, [BannedStage(policy_settings, services())], raw=EVIL, rcpts=(LOVER,))
    assert out.action == fx.ACCEPT
    assert header(out, "X-Content-Alert") == "BANNED, message contains invoice.exe (banned extension .exe)"
    assert [s.name for s in out.symbols] == ["BANNED_ATTACHMENT"]
    assert stored(policy_settings) == []


def test_mixed_recipients_lover_receives_the_others_copy_is_quarantined(policy_settings):
    out = run(policy_settings, [BannedStage(policy_settings, services())], raw=EVIL, rcpts=(LOVER, PLAIN))
    assert out.action == fx.ACCEPT                 # one answer for all: the lover must still get it
    assert removed(out) == [PLAIN]
    [record] = stored(policy_settings)
    assert [r.address for r in record.recipients] == [PLAIN] and record.reason == "banned"
    assert header(out, "X-Content-Alert").startswith("BANNED")


def test_lovers_do_not_bypass_undecidable_content(policy_settings):
    import lzma
    truncated = lzma.compress(b"x" * 5000)[:40]
    broken = mime(("application/x-xz", "x.tar.xz", truncated), ("application/octet-stream", "y.exe", b"x"))
    out = run(policy_settings, [BannedStage(policy_settings, services())], raw=broken, rcpts=(LOVER,))
    assert out.action == fx.DISCARD               # banned bypassed, the unreadable zip still quarantined
    assert {s.name for s in out.symbols} == {"BANNED_ATTACHMENT", "BANNED_UNDECIDABLE"}


def test_no_policy_source_means_no_lookup(tmp_path):
    from owlery.settings import Settings
    s = Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1")

    class Exploding:
        def content_policy(self, address):
            raise AssertionError("asked the directory")
    from milters.stages import Services
    svc = Services(resolver=None, now=lambda: NOW, directory=Exploding())
    out = run(s, [BannedStage(s, svc)], raw=EVIL, rcpts=(LOVER,))
    assert out.action == fx.REJECT


# --- viruses -----------------------------------------------------------------------------------

def av(s):
    return AntivirusStage(s, services(), client=FakeClamd(ScanResult(True, "Eicar-Sig")))


def test_virus_lover_gets_it_marked_others_quarantined(policy_settings):
    out = run(policy_settings, [av(policy_settings)], rcpts=(LOVER,))
    assert out.action == fx.ACCEPT
    assert header(out, "X-Virus-Status") == "infected (Eicar-Sig)"
    assert header(out, "X-Content-Alert") == "INFECTED, message contains virus: Eicar-Sig"
    out = run(policy_settings, [av(policy_settings)], rcpts=(PLAIN, "x@fans.test"))   # bank: virus_lover
    assert out.action == fx.ACCEPT and removed(out) == [PLAIN]
    out = run(policy_settings, [av(policy_settings)], rcpts=(PLAIN,))
    assert out.action == fx.REJECT


# --- spam --------------------------------------------------------------------------------------

def test_spam_lover_is_tagged_not_quarantined(policy_settings):
    s = policy_settings.replace(spam_quarantine_level=5.0)
    out = run(s, [spam_stage(s, FakeSpamd(12.0, [("X", 12.0)]))], rcpts=(FAN, PLAIN))
    assert out.action == fx.ACCEPT
    assert removed(out) == [PLAIN]
    assert header(out, "X-Spam-Flag") == "YES"      # the bank's tag2=8 for the fan


def test_bank_spam_levels_apply_under_the_recipients_own(policy_settings):
    st = spam_stage(policy_settings, FakeSpamd(0.0))
    levels = st.recipient_levels(type("M", (), {"recipients": [FAN, PLAIN]})(),
                                 type("R", (), {"data": {}, "removed": {}})())
    assert levels[FAN].tag2 == 8.0 and levels[FAN].quarantine is None and levels[FAN].reject is None
    assert levels[PLAIN] == st.global_levels()


def test_score_verdict_spares_spam_lovers(policy_settings):
    class Scores:
        name = "scores"

        def check(self, message, report):
            report.symbol("X", 100.0)

        def close(self):
            pass
    s = policy_settings.replace(milter_score_reject=50.0, milter_score_quarantine=10.0)
    out = run(s, [Scores(), QuarantineStage(s, services())], rcpts=("a@example.org",))
    assert out.action == fx.ACCEPT and header(out, s.milter_tag_header) == "YES"
    out = run(s, [Scores(), QuarantineStage(s, services())], rcpts=("a@example.org", PLAIN))
    assert out.action == fx.ACCEPT and removed(out) == [PLAIN]
    out = run(s, [Scores(), QuarantineStage(s, services())], rcpts=(PLAIN,))
    assert out.action == fx.REJECT


def test_policies_are_looked_up_once_per_message(policy_settings):
    from milters.content_policy import policies
    asked = []

    class Dir:
        def content_policy(self, address):
            asked.append(address)
            return ("virus_lover",)
    from milters.stages import Services
    svc = Services(resolver=None, now=lambda: NOW, directory=Dir())
    report = type("R", (), {"data": {}, "removed": {}})()
    message = type("M", (), {"recipients": [LOVER, LOVER, PLAIN]})()
    assert policies(policy_settings, svc, message, report)[PLAIN].loves("virus_lover")
    policies(policy_settings, svc, message, report)
    assert asked == [LOVER, PLAIN]
    assert NO_POLICY.empty
