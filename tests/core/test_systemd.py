"""The systemd units: valid for systemd-analyze, hardened, and pointing at real subcommands."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICES = sorted(UNITS.glob("*.service"))
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}


def parse(path):
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read(path)
    return cp


def test_units_exist():
    names = {p.name for p in UNITS.iterdir()}
    assert {"owlery-policyd.service", "owlery-policyd.socket", "owlery-milter.service",
            "owlery-lmtpd.service", "owlery-lmtpd.socket"} <= names


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_services_are_hardened(unit):
    service = parse(unit)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{unit.name}: {key}"
    assert "AF_UNIX" in service.get("RestrictAddressFamilies", "")
    assert service.get("CapabilityBoundingSet") == ""
    assert service.get("User") not in (None, "root")
    if "ReadWritePaths" in service:
        assert all(p.startswith(("/var/lib/owlery", "/var/vmail", "/var/spool/postfix/owlery"))
                   for p in service["ReadWritePaths"].split())


def test_no_state_directory_is_shared_between_users():
    """systemd chowns a StateDirectory= recursively to the unit's user at each start: units
    with different users must not share one (the expire timer would hand every Maildir to
    owlery). Every directory a unit writes comes from owlery.tmpfiles, never chowned by 'Z'."""
    owners: dict[str, set[str]] = {}
    for unit in SERVICES:
        service = parse(unit)["Service"]
        for name in service.get("StateDirectory", "").split():
            owners.setdefault(name, set()).add(service["User"])
    assert all(len(users) == 1 for users in owners.values()), owners
    tmpfiles = [line.split() for line in (UNITS / "owlery.tmpfiles").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert all(entry[0] == "d" for entry in tmpfiles)          # create, never chown recursively
    created = {entry[1] for entry in tmpfiles}
    for unit in SERVICES:
        for path in parse(unit)["Service"].get("ReadWritePaths", "").split():
            assert path in created or path == "/var/vmail", f"{unit.name}: {path}"
    mail = next(e for e in tmpfiles if e[1] == "/var/lib/owlery/mail")
    assert mail[3:5] == ["vmail", "vmail"]


DAEMONS = ("policyd", "milter", "lmtpd", "socketmap", "managesieve", "web")


@pytest.mark.parametrize("daemon", DAEMONS)
def test_daemon_units_notify_and_are_watched(daemon):
    """Type=notify with a watchdog (tests/core/test_sdnotify.py: each daemon sends READY=1 when
    it serves and WATCHDOG=1 from its loop). NotifyAccess=main: a worker parent speaks for
    its workers, and nothing the daemon starts may speak for it."""
    service = parse(UNITS / f"owlery-{daemon}.service")["Service"]
    assert service.get("Type") == "notify"
    assert service.get("NotifyAccess") == "main"
    assert service.get("WatchdogSec") == "30s"
    assert service.get("Restart") == "on-failure"          # a watchdog timeout counts as a failure


def _verify(tool, units):
    r = subprocess.run([tool, "verify", "--man=no"] + units, capture_output=True, text=True, timeout=120,
                       env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"})
    return r.returncode, [line for line in (r.stdout + r.stderr).splitlines()
                          if line.strip() and "Failed to connect to bus" not in line]


def test_systemd_analyze_sees_a_bad_notify_setting(tmp_path):
    """The verify test below would notice a mistyped Type= or WatchdogSec= (systemd only warns,
    exit status 0: the test reads the warnings)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (scripts/install-deps --test installs it)")
    owlery = Path(sys.executable).with_name("owlery")
    text = (UNITS / "owlery-lmtpd.service").read_text().replace("/usr/local/bin/owlery", str(owlery))
    (tmp_path / "owlery-lmtpd.socket").write_text((UNITS / "owlery-lmtpd.socket").read_text())
    unit = tmp_path / "owlery-lmtpd.service"
    unit.write_text(text.replace("WatchdogSec=30s", "WatchdogSec=thirty"))
    assert any("WatchdogSec" in line or "sec value" in line for line in _verify(tool, [str(unit)])[1])
    unit.write_text(text)
    assert _verify(tool, [str(unit)]) == (0, [])


@pytest.mark.parametrize("unit", sorted(UNITS.glob("*.socket")), ids=lambda p: p.name)
def test_socket_names_match_services(unit):
    sock = parse(unit)["Socket"]
    service = parse(unit.with_suffix(".service"))["Service"]
    assert f"--listen systemd:{sock['FileDescriptorName']}" in service["ExecStart"]


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_execstart_subcommand_parses(unit):
    """The ExecStart command line is one `owlery` accepts (parsed, not run)."""
    from owlery.app.cli import build_parser
    argv = parse(unit)["Service"]["ExecStart"].split()[1:]
    build_parser().parse_args(argv)


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (scripts/install-deps --test installs it)")
    owlery = Path(sys.executable).with_name("owlery")
    for unit in UNITS.iterdir():
        if unit.suffix not in (".service", ".socket", ".timer"):
            continue
        (tmp_path / unit.name).write_text(unit.read_text().replace("/usr/local/bin/owlery", str(owlery)))
    units = sorted(str(p) for p in tmp_path.iterdir())
    r = subprocess.run([tool, "verify", "--man=no"] + units, capture_output=True, text=True, timeout=120,
                       env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"})
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if line.strip() and "Failed to connect to bus" not in line]
    assert r.returncode == 0 and not problems, "\n".join(problems)
