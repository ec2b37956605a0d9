"""Secure defaults (issue 13, item 13 and the low item on chrooted Postfix).

Before: the daemons listened on loopback TCP by default (any local process could have the
milter DKIM-sign mail, query the policy daemon or deliver over LMTP), stayed root when
`daemon_user` was unset, and unix-socket paths printed for Postfix were absolute, which a
chrooted smtpd or lmtp cannot reach. Now:
- the listen defaults are unix sockets in Postfix's queue directory, and `owlery postfix`
  names a socket under it relative to it (tests/e2e/test_chroot_sockets_e2e.py drives a
  chrooted Postfix through them);
- a daemon started as root without daemon_user refuses to start, naming the setting, unless
  daemon_allow_root; `owlery run` says so once;
- a daemon creates a missing socket directory 0750 for daemon_user and group postfix, gives
  its sockets (0660) to them, and runs as daemon_user;
- the starter set, as root, names the system user `owlery` (refusing without it), creates
  the data directories as that user and gives it the settings file by group; as a normal
  user it writes loopback TCP endpoints, saying what they expose.
The tests run as root (as the suite does); in-process checks fake the uid where they can.
"""

import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from owlery import daemon
from owlery.app import postfix, starter
from owlery.endpoints import parse_endpoint
from owlery.settings import Settings, load
from tests.harness.procs import unix_connects, wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("daemon_app.py")
QUEUE = "/var/spool/postfix"
USER = "nobody"                 # an unprivileged user this machine has
POSTFIX_GID = grp.getgrnam("postfix").gr_gid


@pytest.fixture
def open_dir():
    """A directory every user may enter (tmp_path's parents are root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="owlery-secure."))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


# --- defaults and what `owlery postfix` prints ----------------------------------------------

def test_the_defaults_are_unix_sockets_in_postfix_s_queue_directory():
    s = Settings()
    assert list(s.policyd_listen) == [f"unix:{QUEUE}/owlery/policyd.sock"]
    assert s.milter_listen == f"unix:{QUEUE}/owlery/milter.sock"
    assert list(s.lmtpd_listen) == [f"unix:{QUEUE}/owlery/lmtpd.sock"]
    # the socketmap too: on loopback TCP any local user could ask it who exists
    assert list(s.socketmap_listen) == [f"unix:{QUEUE}/owlery/socketmap.sock"]
    assert all(parse_endpoint(e).mode == 0o660
               for e in [*s.policyd_listen, s.milter_listen, *s.lmtpd_listen, *s.socketmap_listen])
    assert (s.daemon_user, s.daemon_allow_root, s.daemon_socket_group) == (None, False, "postfix")
    cf = dict(postfix.main_cf(s, ["example.org"]))
    assert cf["smtpd_recipient_restrictions"] == "check_policy_service { unix:owlery/policyd.sock, timeout=47s }"
    assert cf["smtpd_milters"] == "unix:owlery/milter.sock"
    assert cf["virtual_transport"] == "lmtp:unix:owlery/lmtpd.sock"
    assert "outside Postfix's queue directory" not in postfix.render(s, ["example.org"], command="/x/owlery")
    ldap = s.replace(directory_backend="ldap")
    cf = dict(postfix.main_cf(ldap, ["example.org"]))
    assert cf["virtual_alias_maps"] == "socketmap:unix:owlery/socketmap.sock:virtual_alias_maps"
    assert postfix.unreachable_when_chrooted(ldap) == []


@pytest.mark.parametrize("endpoint, queue, spelled", [
    ("unix:/var/spool/postfix/owlery/policyd.sock", QUEUE, "unix:owlery/policyd.sock"),
    ("unix:/var/spool/postfix/private/owlery", QUEUE + "/", "unix:private/owlery"),
    ("unix:/srv/q/a/b.sock", "/srv/q", "unix:a/b.sock"),
    ("unix:/var/spool/postfix2/x.sock", QUEUE, "unix:/var/spool/postfix2/x.sock"),   # a prefix is not a parent
    ("unix:/run/owlery/policyd.sock", QUEUE, "unix:/run/owlery/policyd.sock"),
    ("unix:/run/owlery/policyd.sock", None, "unix:/run/owlery/policyd.sock"),
    ("tcp:127.0.0.1:10040", QUEUE, "inet:127.0.0.1:10040"),
])
def test_postfix_names_sockets_under_the_queue_directory_relative_to_it(endpoint, queue, spelled):
    assert postfix.postfix_endpoint(parse_endpoint(endpoint), queue) == spelled


def test_a_socket_outside_the_queue_directory_is_flagged_in_the_printed_lines():
    s = Settings().replace(policyd_listen=["unix:/run/owlery/policyd.sock"])
    text = postfix.render(s, ["example.org"], command="/x/owlery")
    assert ("# /run/owlery/policyd.sock is outside Postfix's queue directory /var/spool/postfix: "
            "a chrooted smtpd or lmtp (chroot column y in master.cf) cannot reach it") in text
    assert "smtpd_milters = unix:owlery/milter.sock" in text


# --- who a daemon runs as --------------------------------------------------------------------

@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_root_without_daemon_user_is_refused_naming_the_setting(as_root, tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text("")
    with pytest.raises(daemon.RootRefused) as e:
        daemon.check_user(load(str(cfg)), "policyd")
    assert "refusing to run as root: set daemon_user in " + str(cfg) in str(e.value)
    assert "daemon_allow_root = true" in str(e.value)
    daemon.check_user(load(str(cfg)).replace(daemon_allow_root=True), "policyd")
    daemon.check_user(load(str(cfg)).replace(daemon_user=USER), "policyd")


def test_an_unknown_daemon_user_or_group_is_refused_before_binding(as_root):
    with pytest.raises(daemon.RootRefused, match="no such user; create it .useradd --system"):
        daemon.check_user(Settings().replace(daemon_user="no-such-owlery-user"), "milter")
    with pytest.raises(daemon.RootRefused, match="daemon_group 'no-such-owlery-group'"):
        daemon.check_user(Settings().replace(daemon_user=USER, daemon_group="no-such-owlery-group"), "milter")


def test_a_normal_user_is_never_refused(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    daemon.check_user(Settings(), "lmtpd")


@pytest.mark.parametrize("program", ["policyd", "lmtpd", "milter"])
def test_each_daemon_started_as_root_without_daemon_user_refuses(tmp_path, program):
    assert os.geteuid() == 0, "the suite runs as root"
    sock = tmp_path / "sock" / f"{program}.sock"
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'{program}_listen = {"" if program == "milter" else "["}"unix:{sock}"'
                   f'{"" if program == "milter" else "]"}\n')
    done = subprocess.run([sys.executable, "-m", "owlery.app.cli", program, "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env())
    assert done.returncode == 1, done.stderr
    said = {"milter": "owlery: milter: refusing", "policyd": "ERROR policyd: refusing", "lmtpd": "ERROR lmtpd: refusing"}
    assert f"{said[program]} to run as root: set daemon_user in {cfg}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not sock.parent.exists()          # refused before anything was created or bound


def test_owlery_run_as_root_without_daemon_user_says_so_once(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'policyd_listen = ["unix:{tmp_path}/p.sock"]\n')
    done = subprocess.run([sys.executable, "-m", "owlery.app.cli", "run", "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env())
    assert done.returncode == 1
    assert done.stderr.count("refusing to run as root: set daemon_user") == 1, done.stderr
    assert done.stderr.startswith("owlery: refusing to run as root"), done.stderr
    assert not (tmp_path / "p.sock").exists()


def owner(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def nobody_uid():
    return pwd.getpwnam(USER).pw_uid


def uid_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    raise AssertionError("no Uid line")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_twisted_daemon_makes_its_socket_directory_and_runs_as_daemon_user(open_dir):
    nobody = pwd.getpwnam(USER).pw_uid
    sock = open_dir / "queue" / "owlery" / "app.sock"
    cfg = open_dir / "owlery.toml"
    cfg.write_text(f'daemon_user = "{USER}"\n')
    os.chmod(cfg, 0o644)
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"unix:{sock}"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=env())
    try:
        # listening comes first; the sockets are given away, then the user switched, after
        wait_until(lambda: unix_connects(str(sock)) and uid_of(proc.pid) == nobody_uid(), 30,
                   "the app's socket, served as the daemon user")
        assert owner(sock.parent) == (0o750, nobody, POSTFIX_GID)
        assert owner(sock) == (0o660, nobody, POSTFIX_GID)
        assert owner(sock.parent.parent)[:2] == (0o755, 0)     # a missing parent: the usual mode, root's
        assert uid_of(proc.pid) == nobody
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(b"hello\n")
            assert s.recv(100) == b"hello\n"
    finally:
        assert stop(proc) == 0, proc.stderr.read()
    assert not sock.exists()        # unlinked by daemon_user at stop: it owns the directory


def test_an_existing_socket_directory_is_left_as_it_is(open_dir):
    nobody = pwd.getpwnam(USER).pw_uid
    here = open_dir / "run"
    here.mkdir(mode=0o777)
    os.chmod(here, 0o1777)          # like /tmp: any user may create (and remove their own)
    sock = here / "app.sock"
    cfg = open_dir / "owlery.toml"
    cfg.write_text(f'daemon_user = "{USER}"\n')
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"unix:{sock}"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=env())
    try:
        # listening comes first; the sockets are given away, then the user switched, after
        wait_until(lambda: unix_connects(str(sock)) and uid_of(proc.pid) == nobody_uid(), 30,
                   "the app's socket, served as the daemon user")
        assert owner(here) == (0o1777, 0, 0)
        assert owner(sock) == (0o660, nobody, POSTFIX_GID)
    finally:
        assert stop(proc) == 0, proc.stderr.read()


def test_the_milter_makes_its_socket_directory_and_runs_as_daemon_user(open_dir):
    nobody = pwd.getpwnam(USER).pw_uid
    sock = open_dir / "queue" / "owlery" / "milter.sock"
    cfg = open_dir / "owlery.toml"
    cfg.write_text(f'daemon_user = "{USER}"\nmilter_listen = "unix:{sock}"\n')
    os.chmod(cfg, 0o644)
    proc = subprocess.Popen([sys.executable, "-m", "owlery.app.cli", "milter", "--config", str(cfg)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=env())
    try:
        wait_until(lambda: unix_connects(str(sock)) and uid_of(proc.pid) == nobody_uid(), 30,
                   "the milter's socket, served as the daemon user")
        assert owner(sock.parent) == (0o750, nobody, POSTFIX_GID)
        assert owner(sock) == (0o660, nobody, POSTFIX_GID)
        assert uid_of(proc.pid) == nobody
    finally:
        assert stop(proc) == 0, proc.stderr.read()
    assert not sock.exists()


def test_without_a_postfix_group_the_socket_keeps_the_daemon_s_group(open_dir):
    nobody = pwd.getpwnam(USER)
    sock = open_dir / "s" / "app.sock"
    cfg = open_dir / "owlery.toml"
    cfg.write_text(f'daemon_user = "{USER}"\ndaemon_socket_group = "no-such-owlery-group"\n')
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"unix:{sock}"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=env())
    try:
        # listening comes first; the sockets are given away, then the user switched, after
        wait_until(lambda: unix_connects(str(sock)) and uid_of(proc.pid) == nobody_uid(), 30,
                   "the app's socket, served as the daemon user")
        assert owner(sock) == (0o660, nobody.pw_uid, nobody.pw_gid)
        assert owner(sock.parent) == (0o750, nobody.pw_uid, nobody.pw_gid)
    finally:
        assert stop(proc) == 0, proc.stderr.read()


# --- the starter set -------------------------------------------------------------------------

def test_starter_as_root_names_the_daemon_user_and_makes_its_directories(open_dir):
    nobody = pwd.getpwnam(USER)
    config = open_dir / "etc" / "owlery.toml"
    layout = starter.StarterLayout.for_config(str(config), "/etc/owlery/owlery.toml", daemon_user=USER)
    written = starter.write_starter(layout, starter.HostedDomain("x.test", "test"), "# defaults\n")
    data = open_dir / "etc"
    assert written == [str(config), str(data / "mail"), str(data / "state"), str(data / "quarantine"),
                       str(data / "mailboxes"), str(data / "aliases")]
    assert owner(config) == (0o640, 0, nobody.pw_gid)        # the daemons re-read it on SIGHUP
    assert owner(data / "mail") == (0o750, nobody.pw_uid, nobody.pw_gid)
    assert owner(data / "state") == (0o750, nobody.pw_uid, nobody.pw_gid)
    assert owner(data / "quarantine") == (0o700, nobody.pw_uid, nobody.pw_gid)
    settings = load(str(config))
    assert settings.daemon_user == USER
    assert settings.state_sqlite_path == str(data / "state" / "state.sqlite")
    assert list(settings.policyd_listen) == list(Settings().policyd_listen)      # the unix defaults


def test_starter_as_a_normal_user_writes_loopback_tcp_and_what_it_exposes(tmp_path):
    config = tmp_path / "owlery.toml"
    layout = starter.StarterLayout.for_config(str(config), "/etc/owlery/owlery.toml", daemon_user=None)
    starter.write_starter(layout, starter.HostedDomain("x.test", "test"), "# defaults\n")
    text = config.read_text()
    assert "Every local user can reach it too" in text and "DKIM-signed" in text
    settings = load(str(config))
    assert (list(settings.policyd_listen), settings.milter_listen, list(settings.lmtpd_listen)) == (
        ["tcp:127.0.0.1:10040"], "tcp:127.0.0.1:10041", ["tcp:127.0.0.1:10042"])
    assert list(settings.socketmap_listen) == ["tcp:127.0.0.1:10044"]     # for an LDAP directory
    assert settings.daemon_user is None


def test_starter_as_root_refuses_without_the_system_user(tmp_path):
    layout = starter.StarterLayout.for_config(str(tmp_path / "o.toml"), "/etc/owlery/owlery.toml",
                                              daemon_user="no-such-owlery-user")
    with pytest.raises(starter.StarterError, match="create it .useradd --system .*scripts/quickstart does"):
        starter.write_starter(layout, starter.HostedDomain("x.test", "test"), "")
    assert list(tmp_path.iterdir()) == []


def test_starter_as_root_refuses_a_place_the_daemon_user_cannot_reach(open_dir):
    closed = open_dir / "closed"
    closed.mkdir(mode=0o700)
    layout = starter.StarterLayout.for_config(str(closed / "etc" / "o.toml"), "/etc/owlery/owlery.toml",
                                              daemon_user=USER)
    with pytest.raises(starter.StarterError, match=f"the daemons run as {USER}, who cannot enter {closed} "):
        starter.write_starter(layout, starter.HostedDomain("x.test", "test"), "")
    assert list(closed.iterdir()) == []


def test_by_default_the_starter_picks_owlery_as_root_and_nobody_otherwise(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert starter.StarterLayout.for_config("/x/o.toml", "/etc/owlery/owlery.toml").daemon_user == "owlery"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert starter.StarterLayout.for_config("/x/o.toml", "/etc/owlery/owlery.toml").daemon_user is None


# --- the systemd units agree with the defaults -----------------------------------------------

def test_units_listen_where_the_defaults_say_and_tmpfiles_makes_the_directory():
    from tests.core.test_systemd import UNITS, parse
    s = Settings()
    assert parse(UNITS / "owlery-policyd.socket")["Socket"]["ListenStream"] == list(s.policyd_listen)[0][5:]
    assert parse(UNITS / "owlery-lmtpd.socket")["Socket"]["ListenStream"] == list(s.lmtpd_listen)[0][5:]
    assert parse(UNITS / "owlery-socketmap.socket")["Socket"]["ListenStream"] == list(s.socketmap_listen)[0][5:]
    for unit in ("owlery-policyd.socket", "owlery-lmtpd.socket", "owlery-socketmap.socket"):
        sock = parse(UNITS / unit)["Socket"]
        assert (sock["SocketGroup"], sock["SocketMode"]) == ("postfix", "0660")
    milter = parse(UNITS / "owlery-milter.service")["Service"]
    assert "--listen" not in milter["ExecStart"]              # milter_listen decides, as `owlery postfix` reads it
    assert "/var/spool/postfix/owlery" in milter["ReadWritePaths"].split()
    entries = [line.split() for line in (UNITS / "owlery.tmpfiles").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ["d", "/var/spool/postfix/owlery", "0750", "owlery", "postfix", "-"] in entries
