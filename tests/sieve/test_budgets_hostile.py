"""Run budgets against hostile scripts: the string memory budget (sieve_max_memory) and the
compiled-include cache whose compile work is charged to the CPU budget. Each hostile run must
end in a resource-limit error (keep into INBOX), quickly and without allocating much."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import pytest

from owlery.settings import Settings
from sieve import validator
from sieve.api import Envelope, Keep, MemoryHost, compile_script, run
from sieve.extensions import include as include_ext

NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ENV = Envelope("sender@example.com", "rcpt@example.org")
MSG = b"From: sender@example.com\r\nTo: rcpt@example.org\r\nSubject: hello world\r\n\r\nBody\r\n"
MiB = 1 << 20


def _run(src, settings=None, host=None, message=MSG):
    settings = settings or Settings()
    script = compile_script(src, settings=settings)
    return run(script, message, ENV, host=host or MemoryHost(), settings=settings, now=NOW)


def _kept_after_limit(r, what: str) -> None:
    assert r.status == "resource_limit", (r.status, r.errors)
    assert what in r.errors[0], r.errors
    [keep] = r.effective_actions()
    assert isinstance(keep, Keep) and keep.mailbox == "INBOX"


@pytest.fixture(autouse=True)
def _fresh_include_cache():
    cache = getattr(include_ext, "INCLUDE_CACHE", None)
    if cache is not None:
        cache.clear()
    yield
    if cache is not None:
        cache.clear()


# --- memory -------------------------------------------------------------------------------

def _mib_items_script(items: int) -> str:
    """A string list whose every item expands to 1 MiB (4 KiB variable x 256)."""
    item = '"' + "${a}" * 256 + '"'
    return ('require "variables"; set "a" "' + "x" * 4096 + '";\n'
            'if string :is [' + ", ".join([item] * items) + '] "nothing" { discard; }')


def test_string_list_of_mib_items_stops_at_the_memory_budget_with_default_settings():
    # 200 items of 1 MiB: before the budget this built 200 MiB (the CPU budget allows ~1 GiB)
    src = _mib_items_script(200)
    script = compile_script(src, settings=Settings())
    tracemalloc.start()
    try:
        r = run(script, MSG, ENV, host=MemoryHost(), settings=Settings(), now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _kept_after_limit(r, "memory")
    assert peak < Settings().sieve_max_memory + 8 * MiB, peak


def test_memory_budget_counts_every_expansion_cumulatively():
    s = Settings().replace(sieve_max_memory="64k")
    # 4 KiB per expansion, 20 of them: each is small, together they pass 64 KiB
    src = ('require "variables"; set "a" "' + "x" * 4000 + '";'
           + 'set :upper "b" "${a}";' * 20)
    _kept_after_limit(_run(src, s), "sieve_max_memory")
    assert _run(src, s.replace(sieve_max_memory="1M")).status == "ok"


def test_set_modifiers_are_charged():
    s = Settings().replace(sieve_max_memory="100k")
    # the value is a constant (no expansion charge): only the modifiers build strings
    src = 'require "variables";' + ('set :lower :upperfirst "b" "' + "Q" * 4000 + '";') * 20
    _kept_after_limit(_run(src, s), "memory")


def test_match_variables_are_charged():
    s = Settings().replace(sieve_max_memory="64k")
    msg = b"Subject: " + b"s" * 8000 + b"\r\n\r\nbody\r\n"
    src = 'require "variables";' + 'if header :matches "subject" "*" { set "x" "1"; }' * 20
    _kept_after_limit(_run(src, s, message=msg), "memory")


def test_added_header_fields_are_charged():
    s = Settings().replace(sieve_max_memory="64k")
    src = 'require "editheader";' + ('addheader "X-Pad" "' + "p" * 1500 + '";') * 60
    _kept_after_limit(_run(src, s), "memory")


def test_ordinary_script_fits_the_default_budget():
    src = ('require ["variables", "fileinto"]; if header :matches "subject" "* *" '
           '{ set :upper "w" "${1}"; fileinto "INBOX.${w}"; }')
    r = _run(src)
    assert r.status == "ok" and [a.mailbox for a in r.effective_actions()] == ["INBOX.HELLO"]


# --- include cache and compile charge ------------------------------------------------------

def _counting_compiles(monkeypatch) -> list[str]:
    names: list[str] = []
    real = validator.compile_source

    def counting(source, *, name, **kw):
        names.append(name)
        return real(source, name=name, **kw)
    monkeypatch.setattr(validator, "compile_source", counting)
    return names


MAIN = 'require "include"; include :personal "lib"; keep;'
LIB = b'require "fileinto"; fileinto "INBOX.lib";'


def test_runtime_include_is_compiled_once_across_runs(monkeypatch):
    settings = Settings()
    script = compile_script(MAIN, settings=settings)
    compiled = _counting_compiles(monkeypatch)
    host = MemoryHost(scripts={("personal", "lib"): LIB})
    for _ in range(3):
        r = run(script, MSG, ENV, host=host, settings=settings, now=NOW)
        assert r.status == "ok" and "INBOX.lib" in [a.mailbox for a in r.effective_actions()]
    assert compiled == ["lib"]          # before: recompiled on every run


def test_changed_include_source_is_recompiled(monkeypatch):
    settings = Settings()
    script = compile_script(MAIN, settings=settings)
    compiled = _counting_compiles(monkeypatch)
    host = MemoryHost(scripts={("personal", "lib"): LIB})
    run(script, MSG, ENV, host=host, settings=settings, now=NOW)
    host.scripts[("personal", "lib")] = b'require "fileinto"; fileinto "INBOX.new";'
    r = run(script, MSG, ENV, host=host, settings=settings, now=NOW)
    assert "INBOX.new" in [a.mailbox for a in r.effective_actions()]
    assert compiled == ["lib", "lib"]


def test_include_cache_is_bounded():
    settings = Settings().replace(sieve_max_include_cache=3)
    script = compile_script(MAIN, settings=settings)
    for i in range(10):
        host = MemoryHost(scripts={("personal", "lib"): b'require "fileinto"; fileinto "INBOX.f%d";' % i})
        assert run(script, MSG, ENV, host=host, settings=settings, now=NOW).status == "ok"
    assert len(include_ext.INCLUDE_CACHE) == 3


def test_broken_include_is_a_runtime_error_every_time(monkeypatch):
    settings = Settings()
    script = compile_script(MAIN, settings=settings)
    compiled = _counting_compiles(monkeypatch)
    host = MemoryHost(scripts={("personal", "lib"): b"if {"})
    for _ in range(2):
        r = run(script, MSG, ENV, host=host, settings=settings, now=NOW)
        assert r.status == "error" and "failed to compile" in r.errors[0]
    assert compiled == ["lib"]


def _big_lib(statements: int) -> bytes:
    return b'require "variables";' + b'if header :is "x-never" "y" { set "v" "w"; }\n' * statements


@pytest.mark.parametrize("warm", [False, True])
def test_include_compile_work_is_charged_to_the_cpu_budget_hit_or_miss(warm):
    settings = Settings().replace(sieve_max_cpu_steps=5000)
    script = compile_script(MAIN, settings=settings)
    host = MemoryHost(scripts={("personal", "lib"): _big_lib(400)})     # ~19 KB: ~9500 steps
    if warm:
        include_ext.INCLUDE_CACHE.get(host.scripts[("personal", "lib")], "lib", settings,
                                      validator.compile_source)
    r = run(script, MSG, ENV, host=host, settings=settings, now=NOW)
    # before: compiling was free, and running 400 cheap tests fitted the budget
    _kept_after_limit(r, "CPU")


def test_include_source_is_charged_to_the_memory_budget():
    settings = Settings().replace(sieve_max_memory="16k")
    script = compile_script(MAIN, settings=settings)
    host = MemoryHost(scripts={("personal", "lib"): _big_lib(400)})
    _kept_after_limit(run(script, MSG, ENV, host=host, settings=settings, now=NOW), "memory")


def test_small_include_fits_the_default_budgets():
    script = compile_script(MAIN, settings=Settings())
    r = run(script, MSG, ENV, host=MemoryHost(scripts={("personal", "lib"): _big_lib(20)}),
            settings=Settings(), now=NOW)
    assert r.status == "ok", r.errors
