"""Settings declaration, TOML loading, errors with file and line (owlery.settings)."""

import importlib

import pytest

from owlery import settings as S
from owlery.sections import SECTION_MODULES

TEST_DURATION = S.setting("coretest_delay", S.Duration, "5m", "A duration for tests.", unit="s")
TEST_SIZE = S.setting("coretest_limit", S.Size, "10M", "A size for tests.", unit="bytes")
TEST_FLAG = S.setting("coretest_enabled", S.Bool, False, "A flag for tests.")
TEST_LIST = S.setting("coretest_names", S.StrList, ["a"], "A list for tests.")
TEST_CHOICE = S.setting("coretest_mode", S.choice("tag", "reject"), "tag", "A choice for tests.")
TEST_NETS = S.setting("coretest_networks", S.Networks, ["127.0.0.0/8"], "Networks for tests.")
TEST_UNSET = S.setting("coretest_user", S.Str, None, "Unset by default.")


def test_defaults_without_file():
    s = S.Settings()
    assert s.coretest_delay == 300.0
    assert s.coretest_limit == 10 * 1024 * 1024
    assert s[TEST_FLAG] is False
    assert s.coretest_user is None
    assert s.coretest_names == ("a",)


def test_missing_file_gives_defaults(tmp_path):
    s = S.load(str(tmp_path / "absent.toml"))
    assert s.path is None and s.coretest_delay == 300.0


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(S.SettingsError, match="no such file"):
        S.load(str(tmp_path / "absent.toml"), missing_ok=False)


@pytest.mark.parametrize("text,name,value", [
    ('coretest_delay = 10', "coretest_delay", 10.0),
    ('coretest_delay = "2d"', "coretest_delay", 172800.0),
    ('coretest_delay = "250ms"', "coretest_delay", 0.25),
    ('coretest_delay = 0', "coretest_delay", 0.0),           # 0 stays 0: no `x or default`
    ('coretest_limit = "512k"', "coretest_limit", 524288),
    ('coretest_limit = 0', "coretest_limit", 0),
    ('coretest_enabled = true', "coretest_enabled", True),
    ('coretest_names = "solo"', "coretest_names", ("solo",)),
    ('coretest_mode = "reject"', "coretest_mode", "reject"),
])
def test_values_parse(text, name, value):
    assert getattr(S.parse_text(text), name) == value


def test_networks_parse():
    s = S.parse_text('coretest_networks = ["192.0.2.0/24", "2001:db8::/32", "10.1.2.3"]')
    assert [str(n) for n in s.coretest_networks] == ["192.0.2.0/24", "2001:db8::/32", "10.1.2.3/32"]


@pytest.mark.parametrize("text,line,why", [
    ('# comment\n\ncoretest_dealy = 10\n', 3, "unknown setting .did you mean coretest_delay"),
    ('coretest_delay = "soon"', 1, "expected a duration"),
    ('coretest_delay = -5', 1, "cannot be negative"),
    ('coretest_delay = true', 1, "expected a duration"),
    ('\ncoretest_limit = "10 parsecs"', 2, "expected a size"),
    ('coretest_enabled = "yes"', 1, "expected true or false"),
    ('coretest_mode = "drop"', 1, "expected one of tag, reject"),
    ('coretest_names = ["a", 2]', 1, "item 2: expected a string, got 2"),
    ('coretest_networks = ["999.1.1.1/8"]', 1, "bad network"),
    ('nosuchsection_thing = 1', 1, "unknown setting"),
])
def test_bad_values_name_key_line_and_reason(text, line, why):
    with pytest.raises(S.SettingsError, match=why) as info:
        S.parse_text(text, "/etc/owlery/owlery.toml")
    assert info.value.line == line
    assert str(info.value).startswith(f"/etc/owlery/owlery.toml:{line}: ")


def test_invalid_toml_reports_line():
    with pytest.raises(S.SettingsError, match="not valid TOML") as info:
        S.parse_text("coretest_delay = 1\ncoretest_limit = = 2\n", "f.toml")
    assert info.value.line == 2


def test_non_utf8_file(tmp_path):
    p = tmp_path / "o.toml"
    p.write_bytes(b"coretest_mode = \"\xff\"\n")
    with pytest.raises(S.SettingsError, match="not UTF-8"):
        S.load(str(p))


def test_effective_and_non_default():
    s = S.parse_text('coretest_delay = "5m"\ncoretest_mode = "reject"\n')
    non_default = {d.name: v for d, v in s.effective(only_non_default=True)}
    assert "coretest_mode" in non_default
    assert "coretest_delay" not in non_default   # set, but to the default value
    everything = {d.name for d, _ in s.effective()}
    assert {"coretest_delay", "coretest_limit", "coretest_user"} <= everything


def test_replace_parses_by_type():
    s = S.Settings().replace(coretest_delay="1m")
    assert s.coretest_delay == 60.0
    with pytest.raises(S.SettingsError):
        S.Settings().replace(coretest_delay="never")


def test_declaration_rules():
    with pytest.raises(ValueError, match="snake case"):
        S.setting("Bad", S.Int, 1, "doc")
    # component_name, i.e. [a-z][a-z0-9]*(_[a-z0-9]+)+, checked without a regex
    for bad in ("coretest", "coretest_", "_coretest", "coretest__x", "1coretest_x", "coretest_X", "coretest-x_y",
                "coretest_\u00e9", "coretest_x\n"):
        with pytest.raises(ValueError, match="snake case"):
            S.setting(bad, S.Int, 1, "doc")
    assert S._is_setting_name("coretest_x1_2") and S._is_setting_name("a1_b")
    with pytest.raises(ValueError, match="needs a doc"):
        S.setting("coretest_nodoc", S.Int, 1, " ")
    with pytest.raises(ValueError):
        S.setting("coretest_baddefault", S.Int, "x", "doc")


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        S.Settings().coretest_nonexistent


@pytest.mark.parametrize("section", sorted(SECTION_MODULES))
def test_every_registered_section_declares_its_prefix(section):
    for module in SECTION_MODULES[section]:
        importlib.import_module(module)
    names = [d.name for d in S.declared().values() if d.module in SECTION_MODULES[section]]
    assert any(n.startswith(section + "_") for n in names), f"{section}: no setting declared"
    for name in names:
        assert S.section_of(name) in SECTION_MODULES and name.split("_")[0] != "", name
