"""Files backend specifics: map syntax, reload on change and on request, errors with file:line."""

import os

import pytest

from owlery.directory.files import FilesDirectory, MapError, parse_quota, read_map
from owlery.settings import Settings


def test_map_syntax(tmp_path):
    p = tmp_path / "m"
    p.write_text("# comment\n\na@x.test  b@x.test,c@x.test\n   d@x.test\n  # indented comment\ne@x.test\tf@x.test\n"
                 "lonely@x.test\n")
    assert list(read_map(str(p))) == [("a@x.test", ["b@x.test", "c@x.test", "d@x.test"], 3),
                                      ("e@x.test", ["f@x.test"], 6), ("lonely@x.test", [], 7)]


def test_continuation_without_entry_is_an_error(tmp_path):
    p = tmp_path / "m"
    p.write_text("  orphan\n")
    with pytest.raises(MapError, match=":1: continuation"):
        list(read_map(str(p)))


@pytest.mark.parametrize("values,expected", [(["100M"], (100 << 20, None)), (["1000S,10C"], (1000, 10)),
                                             (["1000S", "10C"], (1000, 10)), (["0"], (None, None)),
                                             (["none"], (None, None)), (["2048"], (2048, None))])
def test_parse_quota(values, expected):
    assert parse_quota(values) == expected


def test_bad_quota_names_file_and_line(tmp_path):
    (tmp_path / "q").write_text("a@x.test 1M\nb@x.test lots\n")
    with pytest.raises(MapError, match=r"/q:2: bad quota for b@x.test"):
        FilesDirectory(Settings().replace(files_quotas=str(tmp_path / "q")))


def test_missing_file_is_an_error_at_start(tmp_path):
    with pytest.raises(MapError, match="cannot read"):
        FilesDirectory(Settings().replace(files_mailboxes=str(tmp_path / "absent")))


def test_reread_on_change_and_keep_old_on_broken_file(tmp_path):
    mb = tmp_path / "mailboxes"
    mb.write_text("a@x.test\n")
    now = [0.0]
    d = FilesDirectory(Settings().replace(files_mailboxes=str(mb), files_check_interval=5), clock=lambda: now[0])
    assert not d.resolve("b@x.test").exists
    mb.write_text("a@x.test\nb@x.test\n")
    os.utime(mb, ns=(1, 1))
    assert not d.resolve("b@x.test").exists        # not checked before the interval
    now[0] = 6
    assert d.resolve("b@x.test").exists
    (tmp_path / "lists").write_text("a@x.test  ???\n")
    d2 = FilesDirectory(Settings().replace(files_mailboxes=str(mb)), clock=lambda: now[0])
    d2.paths["lists"] = str(tmp_path / "lists")
    d2.reload()                                    # broken: old tables kept
    assert d2.resolve("b@x.test").exists


def test_explicit_domains_file(tmp_path):
    (tmp_path / "mb").write_text("a@x.test\n")
    (tmp_path / "dom").write_text("x.test\nempty.test\n")
    d = FilesDirectory(Settings().replace(files_mailboxes=str(tmp_path / "mb"), files_domains=str(tmp_path / "dom")))
    assert d.resolve("who@empty.test").kind == "unknown"
    assert d.resolve("who@other.test").kind == "not_local"


def test_case_sensitive_local_parts(tmp_path):
    (tmp_path / "mb").write_text("Alice@X.test\n")
    d = FilesDirectory(Settings().replace(files_mailboxes=str(tmp_path / "mb"),
                                          directory_local_part_case_sensitive=True))
    assert d.resolve("Alice@x.TEST").exists and not d.resolve("alice@x.test").exists


def test_alias_loop_is_bounded(tmp_path):
    (tmp_path / "al").write_text("a@x.test b@x.test\nb@x.test a@x.test\n")
    d = FilesDirectory(Settings().replace(files_aliases=str(tmp_path / "al")))
    r = d.resolve("a@x.test")
    assert r.kind == "alias" and r.mailboxes == ()


def test_specific_mailbox_beats_catch_all_alias(tmp_path):
    (tmp_path / "mb").write_text("a@x.test\nall@x.test\n")
    (tmp_path / "al").write_text("@x.test all@x.test\n")
    d = FilesDirectory(Settings().replace(files_mailboxes=str(tmp_path / "mb"), files_aliases=str(tmp_path / "al")))
    assert [m.address for m in d.resolve("a@x.test").mailboxes] == ["a@x.test"]
    assert [m.address for m in d.resolve("zz@x.test").mailboxes] == ["all@x.test"]


def test_spam_levels_keys_and_per_level_fallback(tmp_path):
    (tmp_path / "levels").write_text(
        "bob+lists@x.test   tag2=9\n"
        "bob@x.test         tag2=3.5\n"
        "@x.test            quarantine=7\n"
        "x.test             reject=20 tag=1\n"
        "test               tag=-999\n")                # a parent domain covers its subdomains
    d = FilesDirectory(Settings().replace(files_spam_levels=str(tmp_path / "levels")))
    levels = d.spam_levels("Bob@X.test")
    assert (levels.tag, levels.tag2, levels.quarantine, levels.reject) == (1.0, 3.5, 7.0, 20.0)
    assert d.spam_levels("bob+lists@x.test").tag2 == 9.0
    sub = d.spam_levels("carol@sub.x.test")            # @x.test is that domain only; x.test covers subdomains
    assert (sub.tag, sub.tag2, sub.quarantine, sub.reject) == (1.0, None, None, 20.0)
    assert d.spam_levels("z@other.test").tag == -999.0 and d.spam_levels("z@other.example").empty
    assert not d.hosts_domain("x.test")                # the levels map hosts nothing


@pytest.mark.parametrize("line,error", [("a@x.test  tag2=lots", "is not a number"),
                                        ("a@x.test  spam=5", "cannot read spam level"),
                                        ("a@x.test  kill=inf", "is not a number")])
def test_bad_spam_levels_name_file_and_line(tmp_path, line, error):
    (tmp_path / "levels").write_text("ok@x.test kill=5\n" + line + "\n")
    with pytest.raises(MapError, match=rf"/levels:2: a@x.test: .*{error}"):
        FilesDirectory(Settings().replace(files_spam_levels=str(tmp_path / "levels")))
