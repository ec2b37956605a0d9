"""`owlery sieve check|test|testsuite` exit codes and output."""

from __future__ import annotations

from owlery.app.cli import main


def test_check_ok_and_error(tmp_path, capsys):
    good = tmp_path / "good.sieve"
    good.write_text('require "fileinto";\nif header :contains "subject" "x" { fileinto "INBOX.x"; }\n')
    bad = tmp_path / "bad.sieve"
    bad.write_text("keep;\nfrobnicate;\n")
    assert main(["sieve", "check", str(good)]) == 0
    assert main(["sieve", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:1: error: unknown command 'frobnicate'" in err


def test_test_prints_actions(tmp_path, capsys):
    s = tmp_path / "s.sieve"
    s.write_text('require "fileinto";\nif address :domain "from" "example.com" { fileinto "INBOX.Friends"; }\n')
    m = tmp_path / "m.eml"
    m.write_bytes(b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")
    assert main(["sieve", "test", str(s), str(m), "--from", "a@example.com", "--to", "b@example.org"]) == 0
    out = capsys.readouterr().out
    assert "fileinto 'INBOX.Friends'" in out and "status: ok" in out


def test_testsuite_command(tmp_path, capsys):
    t = tmp_path / "t.svtest"
    t.write_text('require "vnd.dovecot.testsuite";\ntest "ok" { if false { test_fail "x"; } }\n'
                 'test "bad" { test_fail "boom"; }\n')
    assert main(["sieve", "testsuite", str(t)]) == 1
    out = capsys.readouterr().out
    assert "FAIL:" in out and "1 succeeded, 1 failed" in out and "TOTAL: 1 files, 2 blocks" in out
