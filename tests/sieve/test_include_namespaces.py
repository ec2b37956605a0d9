"""include (RFC 6609) namespaces: :personal and :global resolve to the user's script directory
(managesieve_script_dir_template, else beside the active script) and delivery_sieve_global_dir;
script names are plain ManageSieve names (RFC 5804 1.6), never paths; :once and `global`
variables behave as Pigeonhole's sieve-test shows (include :once twice runs once, a plain include
after it runs again)."""

from __future__ import annotations

import datetime as dt

import pytest

from owlery.settings import Settings
from owlery.state.memory_store import MemoryStore
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
MSG = b"From: a@example.org\nTo: b@example.org\nSubject: x\n\nbody\n"


# ("." and ".." are script names: tests/sieve/test_include_differential_fixes.py)
@pytest.mark.parametrize("name", ["../inc/a", "a/b", "", "x\u2028y", "x\x85y", "tab\there"])
def test_include_names_that_are_not_script_names_do_not_compile(name):
    src = 'require "include"; include "' + name + '";'
    with pytest.raises(SieveCompileError) as e:
        compile_script(src.encode(), name="t", settings=Settings())
    assert any("script name" in d.message for d in e.value.diagnostics)


def test_a_non_ascii_name_is_a_script_name():
    host = MemoryHost(scripts={("personal", "café"): 'require "fileinto"; fileinto "C";'.encode()})
    script = compile_script('require "include"; include "café";'.encode(), name="t", settings=Settings())
    r = run(script, MSG, Envelope(), host=host, settings=Settings(), now=NOW)
    assert [a.mailbox for a in r.actions] == ["C"]


def test_once_repeated_and_namespaces_as_pigeonhole():
    host = MemoryHost(scripts={
        ("personal", "a"): b'require ["fileinto", "variables", "include"]; global "n"; set "n" "${n}a"; '
                           b'fileinto "A${n}";',
        ("personal", "g"): b'require "fileinto"; fileinto "PersonalG";',
        ("global", "g"): b'require "fileinto"; fileinto "G";'})
    src = b'''require ["include", "variables", "fileinto"];
global "n";
include :once "a";
include :once "a";
include "a";
include :global "g";
include :personal "g";
include :once :global "g";
fileinto "End${n}";'''
    r = run(compile_script(src, name="t", settings=Settings()), MSG, Envelope(), host=host, settings=Settings(),
            now=NOW)
    # sieve-test (Pigeonhole 0.5.19): Aa, Aaa, G, PersonalG, Endaa
    assert r.status == "ok" and [a.mailbox for a in r.actions] == ["Aa", "Aaa", "G", "PersonalG", "Endaa"]


def test_the_same_script_reached_by_two_paths_is_no_loop():
    host = MemoryHost(scripts={
        ("personal", "left"): b'require "include"; include "shared";',
        ("personal", "right"): b'require "include"; include "shared";',
        ("personal", "shared"): b'require "fileinto"; fileinto "S";'})
    src = b'require "include"; include "left"; include "right";'
    r = run(compile_script(src, name="t", settings=Settings()), MSG, Envelope(), host=host, settings=Settings(),
            now=NOW)
    assert r.status == "ok" and [a.mailbox for a in r.actions] == ["S"]


def _deliver(tmp_path, settings: Settings, script: str, user_dir):
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "active.sieve").write_text(script)
    ex = DeliveryExecutor(settings, state=MemoryStore(), program="test")
    user = MailUser("carol@example.org", str(tmp_path / "Maildir"), str(user_dir / "active.sieve"))
    try:
        return ex.deliver(MSG, "a@example.org", "carol@example.org", user)
    finally:
        ex.close()


def _folders(tmp_path):
    return sorted(p.name for p in (tmp_path / "Maildir").iterdir() if p.name.startswith("."))


def test_delivery_resolves_personal_beside_the_active_script_and_global_in_the_site_dir(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "lib.sieve").write_text('require "fileinto"; fileinto "SiteLib";')
    user_dir = tmp_path / "carol" / "sieve"
    user_dir.mkdir(parents=True)
    (user_dir / "lib.sieve").write_text('require "fileinto"; fileinto "MyLib";')
    s = Settings().replace(delivery_sieve_global_dir=[str(site)], delivery_use_directory=False)
    o = _deliver(tmp_path, s, 'require "include"; include :personal "lib"; include :global "lib";', user_dir)
    assert o.ok and _folders(tmp_path) == [".MyLib", ".SiteLib"]


def test_delivery_personal_includes_come_from_the_managesieve_script_dir(tmp_path):
    scripts = tmp_path / "scripts" / "example.org" / "carol"
    scripts.mkdir(parents=True)
    (scripts / "lib.sieve").write_text('require "fileinto"; fileinto "Stored";')
    user_dir = tmp_path / "carol" / "sieve"
    user_dir.mkdir(parents=True)
    (user_dir / "lib.sieve").write_text('require "fileinto"; fileinto "Beside";')
    s = Settings().replace(managesieve_script_dir_template=str(tmp_path / "scripts" / "{domain}" / "{localpart}"),
                           delivery_use_directory=False)
    o = _deliver(tmp_path, s, 'require "include"; include "lib";', user_dir)
    assert o.ok and _folders(tmp_path) == [".Stored"]


def test_delivery_a_global_name_never_falls_back_to_personal(tmp_path):
    user_dir = tmp_path / "carol" / "sieve"
    user_dir.mkdir(parents=True)
    (user_dir / "only-mine.sieve").write_text('require "fileinto"; fileinto "Mine";')
    s = Settings().replace(delivery_sieve_global_dir=[str(tmp_path / "empty-site")], delivery_use_directory=False)
    o = _deliver(tmp_path, s, 'require "include"; include :global :optional "only-mine";', user_dir)
    assert o.ok and _folders(tmp_path) == []
