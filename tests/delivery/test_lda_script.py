"""`owlery-lda` (sieve/delivery/owlery-lda), the pipe command `owlery postfix` prints: it finds
its interpreter and the package without Python's site start-up, in each install layout.

Proves, in throw-away venvs built around the real interpreter: a normal install (package in
site-packages) and an editable install (PEP 610 direct_url.json) are found with site never
run (a .pth file that would leave a marker stays silent) and the message reaches lmtpd; a
layout it cannot see through falls back to site and still delivers; an `owlery` beside it
with a shebang sh cannot use means `owlery lda` runs instead; no `owlery` at all is a
temporary failure (75), never a bounce. System-wide installs (Debian's dist-packages) are
checked against the script's own locator.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.test_lda_lmtp import MSG, FakeLMTP

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "sieve" / "delivery" / "owlery-lda"
VERSION = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def make_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv skeleton: bin/python3 (the real interpreter), pyvenv.cfg, bin/owlery with the
    shebang pip writes, bin/owlery-lda; a .pth file in site-packages that marks site's runs."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    real = os.path.realpath(sys.executable)
    os.symlink(real, venv / "bin" / "python3")
    (venv / "pyvenv.cfg").write_text(f"home = {os.path.dirname(real)}\ninclude-system-site-packages = false\n")
    (venv / "bin" / "owlery").write_text(f"#!{venv}/bin/python3\n# the console script pip writes\n")
    (venv / "bin" / "owlery").chmod(0o755)
    (venv / "bin" / "owlery-lda").write_bytes(SCRIPT.read_bytes())
    (venv / "bin" / "owlery-lda").chmod(0o755)
    sp = venv / "lib" / VERSION / "site-packages"
    sp.mkdir(parents=True)
    (sp / "zz_marker.pth").write_text(f"import pathlib; pathlib.Path({str(tmp_path / 'site-ran')!r}).touch()\n")
    return venv, sp


def deliver(tmp_path, venv, server, command=None):
    """Run the LDA (`command`, default owlery-lda by its own name) as pipe(8) would."""
    conf = tmp_path / "lda.toml"
    conf.write_text(f'lda_lmtp_endpoint = "unix:{server.path}"\n')
    command = command or [str(venv / "bin" / "owlery-lda")]
    return subprocess.run([*command, "-c", str(conf), "-f", "s@remote.test", "-d", "a@example.org"],
                          input=MSG, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})      # pipe(8) passes almost nothing


def handed_over_without_site(tmp_path, venv, command=None):
    """The LDA hands the message to a fake lmtpd and site never ran (the fast start-up)."""
    server = FakeLMTP(tmp_path / "lmtp.sock", {})
    try:
        r = deliver(tmp_path, venv, server, command)
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    assert b"..dot line\r\n" in server.seen
    assert not (tmp_path / "site-ran").exists(), "site ran: the slow start-up"


@pytest.mark.parametrize("layout", ["installed", "editable"])
def test_found_without_site(tmp_path, layout):
    venv, sp = make_venv(tmp_path)
    if layout == "installed":
        os.symlink(ROOT / "sieve", sp / "sieve")
    else:
        info = sp / "owlery-0.1.0.dist-info"
        info.mkdir()
        (info / "direct_url.json").write_text(f'{{"dir_info": {{"editable": true}}, "url": "file://{ROOT}"}}')
    handed_over_without_site(tmp_path, venv)


def test_the_printed_pipe_command_runs_it_without_sh(tmp_path):
    """`owlery postfix` prints `PYTHON -I -S .../owlery-lda` (PYTHON from owlery's shebang):
    the Python part runs directly, finds the package without site and hands the message over."""
    from owlery.app.postfix import lda_command
    venv, sp = make_venv(tmp_path)
    os.symlink(ROOT / "sieve", sp / "sieve")
    argv = lda_command(str(venv / "bin" / "owlery")).split()
    assert argv == [f"{venv}/bin/python3", "-I", "-S", f"{venv}/bin/owlery-lda"]
    (venv / "bin" / "owlery").write_text("#!/bin/false\n")     # the sh part would now fail over to it
    handed_over_without_site(tmp_path, venv, command=argv)


def test_handoff_loads_the_module_without_its_packages(tmp_path):
    """The handoff imports lda_lmtp (and mta_input beside it) alone: sieve/__init__ and
    sieve/delivery/__init__ (each ~0.15 ms per message) are left for the in-process path."""
    venv, sp = make_venv(tmp_path)
    for pkg in ("sieve", "sieve/delivery"):
        (sp / pkg).mkdir()
        (sp / pkg / "__init__.py").write_text(
            f"import pathlib; pathlib.Path({str(tmp_path / pkg.replace('/', '.'))!r}).touch()\n")
    for module in ("lda_lmtp.py", "mta_input.py"):     # the handoff's two modules, loaded alone
        (sp / "sieve/delivery" / module).write_bytes((ROOT / "sieve/delivery" / module).read_bytes())
    server = FakeLMTP(tmp_path / "lmtp.sock", {})
    try:
        r = deliver(tmp_path, venv, server)
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    assert b"..dot line\r\n" in server.seen
    assert not (tmp_path / "sieve").exists() and not (tmp_path / "sieve.delivery").exists()


def test_unseen_layout_falls_back_to_site(tmp_path):
    venv, sp = make_venv(tmp_path)
    (sp / "owlery-src.pth").write_text(f"{ROOT}\n")      # only site knows this path
    server = FakeLMTP(tmp_path / "lmtp.sock", {})
    try:
        r = deliver(tmp_path, venv, server)
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    assert b"..dot line\r\n" in server.seen
    assert (tmp_path / "site-ran").exists()


def test_unusable_shebang_runs_owlery_lda(tmp_path):
    venv, _ = make_venv(tmp_path)
    # pip's form for an interpreter path with spaces: a sh script; ours must not run it as Python.
    args = tmp_path / "args"
    (venv / "bin" / "owlery").write_text(f'#!/bin/sh\necho "$@" > {args}\nexit 0\n')
    server = FakeLMTP(tmp_path / "lmtp.sock", {})
    try:
        r = deliver(tmp_path, venv, server)
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    assert args.read_text().startswith("lda -c ")


def test_no_owlery_beside_it_is_a_temporary_failure(tmp_path):
    venv, _ = make_venv(tmp_path)
    (venv / "bin" / "owlery").unlink()
    r = subprocess.run([str(venv / "bin" / "owlery-lda"), "-d", "a@example.org"], input=MSG,
                       capture_output=True, timeout=60)
    assert r.returncode == 75 and r.stderr.startswith(b"4.3.5 owlery-lda:"), r.stderr


def test_system_wide_install_is_found(tmp_path, monkeypatch):
    """Not a venv (Debian: pip install into /usr/local/lib/pythonX.Y/dist-packages): the
    locator asks site for the system directories, without running site."""
    loader = importlib.machinery.SourceFileLoader("owlery_lda_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    script = importlib.util.module_from_spec(spec)
    loader.exec_module(script)      # the sh part is a string statement to Python
    dist = tmp_path / "dist-packages"
    (dist / "sieve" / "delivery").mkdir(parents=True)
    (dist / "sieve" / "delivery" / "lda_lmtp.py").write_text("")
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(tmp_path / "elsewhere"), str(dist)])
    assert script._package_root() == str(dist)
    # A stale editable record pointing at a tree without the package is not taken.
    (dist / "sieve" / "delivery" / "lda_lmtp.py").unlink()
    info = dist / "owlery-0.1.0.dist-info"
    info.mkdir()
    (info / "direct_url.json").write_text('{"dir_info": {"editable": true}, "url": "file:///nonexistent"}')
    assert script._package_root() is None
    (info / "direct_url.json").write_text(f'{{"dir_info": {{"editable": true}}, "url": "file://{ROOT}"}}')
    assert script._package_root() == str(ROOT)


def test_linked_from_another_directory(tmp_path):
    """`ln -s /opt/owlery/bin/owlery-lda /usr/local/bin/`: it still finds `owlery` beside the real file."""
    venv, sp = make_venv(tmp_path)
    os.symlink(ROOT / "sieve", sp / "sieve")
    elsewhere = tmp_path / "usr-local-bin"
    elsewhere.mkdir()
    os.symlink(venv / "bin" / "owlery-lda", elsewhere / "owlery-lda")
    conf = tmp_path / "lda.toml"
    server = FakeLMTP(tmp_path / "lmtp.sock", {})
    conf.write_text(f'lda_lmtp_endpoint = "unix:{server.path}"\n')
    try:
        r = subprocess.run([str(elsewhere / "owlery-lda"), "-c", str(conf), "-d", "a@example.org"], input=MSG,
                           capture_output=True, timeout=60)
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    assert b"..dot line\r\n" in server.seen
    assert not (tmp_path / "site-ran").exists()


def test_the_installed_copy_is_this_one():
    """pip copies the script at install time (editable installs too): a stale copy means the
    other LDA tests run old code."""
    installed = ROOT / ".venv" / "bin" / "owlery-lda"
    assert installed.read_bytes() == SCRIPT.read_bytes(), "re-run: .venv/bin/pip install -e . --no-deps"
