"""Where the Public Suffix List comes from: Debian's package, a configured file, the bundled fallback."""

import logging
import os

import pytest

from milters import psl
from owlery.settings import Settings, import_section

import_section("dmarc")

SMALL_LIST = "// test list\ncom\nuk\nco.uk\nnewsuffix.example\n"


def test_default_setting_is_debians_package_file():
    assert Settings().dmarc_public_suffix_list == psl.SYSTEM_LIST == "/usr/share/publicsuffix/public_suffix_list.dat"


def test_debians_list_is_installed_and_parses():
    # scripts/install-deps installs publicsuffix; the default path must not fall back here.
    assert os.path.exists(psl.SYSTEM_LIST)
    suffixes = psl.PublicSuffixList.load(psl.SYSTEM_LIST)
    assert suffixes.rule_count > 5000
    assert suffixes.organizational_domain("mail.example.co.uk") == "example.co.uk"


def test_configured_file_is_the_one_read(tmp_path, caplog):
    path = tmp_path / "psl.dat"
    path.write_text(SMALL_LIST)
    with caplog.at_level(logging.WARNING, logger="owlery.milter"):
        suffixes = psl.load_or_bundled(str(path))
    # a rule only this file has: the bundled and Debian lists do not know newsuffix.example
    assert suffixes.organizational_domain("a.b.newsuffix.example") == "b.newsuffix.example"
    assert suffixes.rule_count == 4
    assert "fallback" not in caplog.text


def test_missing_file_falls_back_to_the_bundled_copy_and_says_so(tmp_path, caplog):
    missing = str(tmp_path / "no-such-list.dat")
    with caplog.at_level(logging.WARNING, logger="owlery.milter"):
        suffixes = psl.load_or_bundled(missing)
    assert suffixes.organizational_domain("foo.bar.github.io") == "bar.github.io"   # the real list's rules
    assert suffixes.rule_count == psl.PublicSuffixList.load(psl.BUNDLED_LIST).rule_count
    [record] = [r for r in caplog.records if "psl: fallback" in r.getMessage()]
    assert missing in record.getMessage() and record.levelno == logging.WARNING


def test_fallback_is_logged_once_per_path_and_process(tmp_path, caplog):
    missing = str(tmp_path / "gone.dat")
    psl.shared.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="owlery.milter"):
            first, second = psl.shared(missing), psl.shared(missing)
        assert first is second
        assert sum("psl: fallback" in r.getMessage() for r in caplog.records) == 1
    finally:
        psl.shared.cache_clear()


@pytest.mark.parametrize("content", ["", "// only comments\n\n// nothing else\n"])
def test_a_present_but_empty_list_is_an_error_not_a_silent_fallback(tmp_path, content):
    path = tmp_path / "empty.dat"
    path.write_text(content)
    with pytest.raises(psl.PublicSuffixListError, match="holds no rules"):
        psl.load_or_bundled(str(path))


def test_a_directory_is_an_error(tmp_path):
    with pytest.raises(psl.PublicSuffixListError, match="cannot be read"):
        psl.load_or_bundled(str(tmp_path))


def test_dmarc_stage_uses_the_configured_list(tmp_path):
    from milters.stages import Services
    from milters.stages.dmarc import Dmarc
    path = tmp_path / "psl.dat"
    path.write_text(SMALL_LIST)
    settings = Settings().replace(dmarc_public_suffix_list=str(path))
    stage = Dmarc(settings, Services(resolver=None))
    try:
        assert stage.psl.organizational_domain("x.y.newsuffix.example") == "y.newsuffix.example"
    finally:
        stage.close()
