"""The `owlery config` commands, run as a postmaster would (owlery.app.cli)."""

import os
import subprocess
import sys


OWLERY = [sys.executable, "-m", "owlery.app.cli"]


def run(*args, cwd=None):
    return subprocess.run(OWLERY + list(args), capture_output=True, text=True, cwd=cwd, timeout=60)


def test_check_names_misspelled_key_and_line(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('log_level = "info"\n\nlog_levle = "debug"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 1
    assert f"{cfg}:3: log_levle: unknown setting (did you mean log_level?)" in r.stderr


def test_check_bad_value(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('daemon_drain_timeout = "a while"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 1 and "daemon_drain_timeout: bad value" in r.stderr


def test_check_reports_every_error_in_the_file(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('log_levle = "debug"\nlog_level = "info"\ndaemon_drain_timeout = "a while"\n'
                   'milter_symbol_scores = 3\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"owlery: 3 errors in {cfg}:"
    assert lines[1] == f"  {cfg}:1: log_levle: unknown setting (did you mean log_level?)"
    assert lines[2].startswith(f"  {cfg}:3: daemon_drain_timeout: bad value")
    assert lines[3].startswith(f"  {cfg}:4: milter_symbol_scores: ")


def test_check_good_file_and_missing_explicit_file(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('log_level = "debug"\n')
    assert run("config", "check", "--config", str(cfg)).returncode == 0
    r = run("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 1 and "no such file" in r.stderr


def test_show_and_show_n(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('log_level = "debug"\ndaemon_drain_timeout = "30s"\n')
    full = run("config", "show", "--config", str(cfg))
    assert full.returncode == 0, full.stderr
    assert 'log_level = "debug"' in full.stdout and "daemon_drain_timeout = 30" in full.stdout
    assert 'log_target = "stderr"' in full.stdout
    only = run("config", "show", "-n", "--config", str(cfg))
    assert only.stdout.strip().splitlines() == ['log_level = "debug"']


def test_init_writes_a_file_that_checks(tmp_path):
    cfg = tmp_path / "etc" / "owlery.toml"
    r = run("config", "init", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    text = cfg.read_text()
    assert "#log_level = \"info\"" in text
    assert run("config", "check", "--config", str(cfg)).returncode == 0
    assert run("config", "init", "--config", str(cfg)).returncode == 1   # never overwrites silently


def test_every_default_survives_a_round_trip(tmp_path):
    """Uncommenting every line of the default file must give a valid file with the same values."""
    cfg = tmp_path / "owlery.toml"
    assert run("config", "init", "--config", str(cfg)).returncode == 0
    lines = []
    for line in cfg.read_text().splitlines():
        if line.startswith("#") and " = " in line and not line.startswith("# ") and "unset by default" not in line:
            lines.append(line[1:].split("    #")[0])
    cfg.write_text("\n".join(lines) + "\n")
    assert run("config", "check", "--config", str(cfg)).returncode == 0
    assert run("config", "show", "-n", "--config", str(cfg)).stdout.strip() == ""


def test_no_config_file_runs_on_defaults(tmp_path):
    env = dict(os.environ)
    r = subprocess.run(OWLERY + ["config", "show"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0


def test_read_regular_file_refuses_what_a_config_reader_must_not_read(tmp_path):
    import os

    import pytest

    from owlery.cliutil import FileRefused, read_regular_file
    f = tmp_path / "x.conf"
    f.write_bytes(b"a" * 10)
    assert read_regular_file(str(f), 10) == b"a" * 10
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)            # a writer never comes: the read must not block
    for path, limit, says in [(f, 9, "larger than 9 bytes"), (tmp_path / "gone", 10, "No such file"),
                              (tmp_path, 10, "not a regular file"), (fifo, 10, "not a regular file")]:
        with pytest.raises(FileRefused, match=says):
            read_regular_file(str(path), limit)
