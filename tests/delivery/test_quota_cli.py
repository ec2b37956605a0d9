"""`owlery quota recalc` and `owlery quota report` (sieve/delivery/quota_cli.py) on real Maildirs."""

from __future__ import annotations

import os
from pathlib import Path

from owlery.directory.files import read_map
from owlery.maildir import Maildir, Quota

MSG = b"From: a@b.test\nSubject: x\n\n" + b"y" * 972 + b"\n"     # 1,000 bytes


def _run(*argv):
    from owlery.app.cli import main
    return main(list(argv))


def _setup(tmp_path: Path, users: dict[str, int], quota: str = "10k") -> Path:
    template = str(tmp_path / "mail/{domain}/{localpart}/Maildir")
    for address, count in users.items():
        local, domain = address.split("@")
        md = Maildir(template.format(domain=domain, localpart=local), fsync="never")
        for _ in range(count):
            md.deliver(MSG, quota=Quota(100_000, 0))
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'maildir_path_template = "{template}"\ndelivery_use_directory = false\n'
                   f'delivery_quota_size = "{quota}"\n')
    return cfg


def test_recalc_rewrites_a_drifted_maildirsize(tmp_path, capsys):
    cfg = _setup(tmp_path, {"alice@example.org": 3})
    md_path = tmp_path / "mail/example.org/alice/Maildir"
    (md_path / "maildirsize").write_text("10240S\n99999 77\n")         # drifted
    assert _run("quota", "recalc", "-c", str(cfg), "alice@example.org") == 0
    assert "alice@example.org: 3000 bytes, 3 messages (10240S)" in capsys.readouterr().out
    assert (md_path / "maildirsize").read_text().split() == ["10240S", "3000", "3"]


def test_recalc_of_a_path_keeps_the_limits_on_the_file(tmp_path, capsys):
    md = Maildir(str(tmp_path / "Maildir"), fsync="never")
    md.deliver(MSG, quota=Quota(5000, 9))
    (tmp_path / "Maildir/maildirsize").write_text("5000S,9C\n1 1\n1 1\n")
    cfg = tmp_path / "owlery.toml"
    cfg.write_text("")
    assert _run("quota", "recalc", "-c", str(cfg), "--maildir", md.root) == 0
    assert (tmp_path / "Maildir/maildirsize").read_text().split() == ["5000S,9C", "1000", "1"]


def test_report_lists_the_fullest_first_and_writes_the_over_quota_map(tmp_path, capsys):
    cfg = _setup(tmp_path, {"alice@example.org": 11, "bob@example.org": 2, "carol@example.org": 9})
    out_map = tmp_path / "over_quota"
    assert _run("quota", "report", "-c", str(cfg), "alice@example.org", "bob@example.org",
                "carol@example.org", "--over", "50", "--map", str(out_map), "--map-over", "85") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["alice@example.org", "carol@example.org"]
    assert lines[1].split()[0] == "107.4%"
    assert [key for key, _, _ in read_map(str(out_map))] == ["alice@example.org", "carol@example.org"]
    assert oct(os.stat(out_map).st_mode & 0o777) == "0o644"


def test_an_unknown_address_is_refused(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "owlery.toml"
    mailboxes = tmp_path / "mailboxes"
    mailboxes.write_text("alice@example.org\n")
    cfg.write_text(f'files_mailboxes = "{mailboxes}"\n')
    try:
        rc = _run("quota", "report", "-c", str(cfg), "nobody@example.org")
    except SystemExit as e:
        rc = e.code
    assert rc == 1 and "nobody@example.org: unknown user" in capsys.readouterr().err
