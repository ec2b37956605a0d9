"""`owlery greylist` against a real SQLite state file filled by the greylist engine."""

from __future__ import annotations

import time

import pytest

from owlery.app.cli import main
from owlery.state.sqlite_store import SQLiteStore
from policyd.greylist_core import Greylister, GreylistPolicy


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "owlery.toml"
    path.write_text(f'state_sqlite_path = "{tmp_path}/state.sqlite"\n'
                    f'greylist_whitelist_clients = ["{tmp_path}/clients"]\n'
                    f'greylist_whitelist_recipients = ["{tmp_path}/rcpts"]\n'
                    "greylist_auto_whitelist_clients = 1\n")
    return tmp_path


def fill(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.sqlite"))
    g = Greylister(GreylistPolicy(auto_whitelist_clients=1))
    now = time.time()
    g.decide(store, "192.0.2.1", "a@x.example", "u@example.org", now - 1000)
    g.decide(store, "192.0.2.1", "a@x.example", "u@example.org", now - 500)   # passed
    g.decide(store, "198.51.100.7", "b@y.example", "v@example.org", now - 10)  # waiting
    store.set("gl:t:dead/x/y", "1", 1, now - 100)
    store.close()


def test_list_and_stats(config, capsys):
    fill(config)
    assert main(["greylist", "list", "-c", str(config / "owlery.toml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("192.0.2.0/24 a@x.example u@example.org ") and " passed " in out[0]
    assert out[1].startswith("198.51.100.0/24 b@y.example v@example.org ") and " waiting 2" in out[1]
    assert main(["greylist", "list", "--waiting", "-c", str(config / "owlery.toml")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["greylist", "stats", "-c", str(config / "owlery.toml")]) == 0
    out = capsys.readouterr().out
    assert "triplets waiting: 1" in out and "triplets passed: 1" in out
    assert "clients auto-whitelisted: 1" in out and "expired rows awaiting cleanup: 1" in out


def test_purge(config, capsys):
    fill(config)
    assert main(["greylist", "purge", "-c", str(config / "owlery.toml")]) == 0
    assert "removed 1 expired entries" in capsys.readouterr().out
    assert main(["greylist", "purge", "--all", "-c", str(config / "owlery.toml")]) == 0
    assert "deleted" in capsys.readouterr().out
    main(["greylist", "stats", "-c", str(config / "owlery.toml")])
    assert "triplets waiting: 0" in capsys.readouterr().out


def test_whitelist_add_remove(config, capsys):
    cfg = str(config / "owlery.toml")
    assert main(["greylist", "whitelist", "add", "-c", cfg, "192.0.2.0/24"]) == 0
    assert main(["greylist", "whitelist", "add", "-c", cfg, "192.0.2.0/24"]) == 0   # idempotent
    assert main(["greylist", "whitelist", "add", "-c", cfg, "--recipient", "postmaster@"]) == 0
    assert (config / "clients").read_text() == "192.0.2.0/24\n"
    assert (config / "rcpts").read_text() == "postmaster@\n"
    assert main(["greylist", "whitelist", "remove", "-c", cfg, "192.0.2.0/24"]) == 0
    assert (config / "clients").read_text() == ""
    assert main(["greylist", "whitelist", "remove", "-c", cfg, "192.0.2.0/24"]) == 1
    assert main(["greylist", "whitelist", "add", "-c", cfg, "/bad[/"]) == 1
