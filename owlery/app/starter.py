"""The starter set `owlery run` writes on a first start: settings, a mailbox for postmaster@, and how to try it.

A newcomer without a directory of their own gets one mailbox, postmaster@ of the hosted
domain (RFC 5321 section 4.5.1 requires it anyway), and an empty aliases file, in the
files directory; `owlery run` then prints a swaks line that delivers a message to it
over LMTP and the Maildir where it lands. Where things go:
- the default settings file (/etc/owlery/owlery.toml): the map files beside it in
  /etc/owlery, mail, state and quarantine under /var/lib/owlery (the built-in defaults);
- any other settings file (e.g. `run/owlery.toml` when quickstart runs as a normal user):
  the map files beside it, and mail/, state/ and quarantine/ in its directory.
Who runs the daemons and where they listen:
- as root: they bind, then switch to the system user `owlery` (scripts/quickstart creates
  it; the starter refuses to go on without it), written as `daemon_user`. The data
  directories are created for that user, the settings file is given to its group (the
  daemons read it again on SIGHUP), and the daemons listen on the built-in unix sockets in
  Postfix's queue directory (/var/spool/postfix/owlery/, group postfix), where a chrooted
  Postfix reaches them and other local users cannot;
- as a normal user, who can neither create those sockets nor give them to Postfix: on
  loopback TCP (10040, 10041, 10042; 10044 for the socketmap an LDAP directory needs),
  written into the file with a note on what a TCP port exposes (every local user may
  connect; see README's Hardening).
The hosted domain is Postfix's `mydomain` when Postfix is installed and configured with
a real domain, else example.org; the output says which. An existing file is never
overwritten, and the settings file is written 0640 (it may later hold passwords).
The settings file also turns on each daemon's Prometheus metrics on loopback (9040-9044).
Talks to: the file system, `postconf`, the user database. Tests: tests/core/test_starter.py,
tests/core/test_secure_defaults.py
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shlex
import shutil
import stat
import subprocess
from typing import Any

from owlery.metrics import DEFAULT_PORTS

FALLBACK_DOMAIN = "example.org"
SYSTEM_DATA_DIR = "/var/lib/owlery"
SYSTEM_USER = "owlery"          # the daemon user scripts/quickstart creates when run as root
CREATE_USER = ("useradd --system --user-group --home-dir /var/lib/owlery --no-create-home "
               f"--shell /usr/sbin/nologin {SYSTEM_USER}")
# A normal user's daemons: loopback TCP, which Postfix can reach (a user's unix socket it cannot).
# The socketmap (10044) serves Postfix's tables only with an LDAP directory (owlery/app/postfix.py).
USER_LISTEN = (("policyd_listen", '["tcp:127.0.0.1:10040"]'), ("milter_listen", '"tcp:127.0.0.1:10041"'),
               ("lmtpd_listen", '["tcp:127.0.0.1:10042"]'), ("socketmap_listen", '["tcp:127.0.0.1:10044"]'))
# Prometheus metrics of the daemons `owlery run` starts, on loopback (README.rst, Metrics).
METRICS_LISTEN = tuple((f"{name}_metrics_listen", f'"tcp:127.0.0.1:{DEFAULT_PORTS[name]}"')
                       for name in ("policyd", "milter", "lmtpd", "socketmap"))


class StarterError(OSError):
    """The starter set cannot be written as asked (the message says what to do)."""


@dataclasses.dataclass(frozen=True)
class HostedDomain:
    name: str
    source: str      # said in the output: where the name came from


@dataclasses.dataclass(frozen=True)
class StarterLayout:
    """Where the starter files go for one settings file."""

    config_path: str
    maps_dir: str        # mailboxes, aliases
    data_dir: str        # mail/, state, quarantine/
    system: bool         # the built-in default layout (no path settings written)
    daemon_user: str | None = None    # who the daemons become (root only); None: the starting user

    @classmethod
    def for_config(cls, config_path: str, default_config_path: str,
                   daemon_user: Any = ...) -> "StarterLayout":
        """`daemon_user`: by default `owlery` when running as root, else None."""
        if daemon_user is ...:
            daemon_user = SYSTEM_USER if os.geteuid() == 0 else None
        path = os.path.abspath(config_path)
        here = os.path.dirname(path)
        if path == os.path.abspath(default_config_path):
            return cls(path, here, SYSTEM_DATA_DIR, True, daemon_user)
        return cls(path, here, here, False, daemon_user)

    @property
    def writable_dirs(self) -> list[tuple[str, int]]:
        """(directory, mode) the daemons write in, created for daemon_user."""
        if self.system:
            return [(self.data_dir, 0o750)]
        return [(os.path.join(self.data_dir, "mail"), 0o750), (os.path.join(self.data_dir, "state"), 0o750),
                (os.path.join(self.data_dir, "quarantine"), 0o700)]

    @property
    def mailboxes(self) -> str:
        return os.path.join(self.maps_dir, "mailboxes")

    @property
    def aliases(self) -> str:
        return os.path.join(self.maps_dir, "aliases")


def _usable_domain(value: str) -> bool:
    labels = value.lower().rstrip(".").split(".")
    return (len(labels) >= 2 and all(labels) and labels[-1] not in ("localdomain", "local", "localhost")
            and all(ch.isascii() and (ch.isalnum() or ch == "-") for label in labels for ch in label))


def hosted_domain(postconf: str | None = None, timeout_s: float = 5.0) -> HostedDomain:
    """Postfix's mydomain when Postfix is configured with a real one, else example.org."""
    exe = postconf or shutil.which("postconf") or "/usr/sbin/postconf"
    if not os.access(exe, os.X_OK):
        return HostedDomain(FALLBACK_DOMAIN, "Postfix is not installed")
    try:
        done = subprocess.run([exe, "-h", "mydomain"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        return HostedDomain(FALLBACK_DOMAIN, f"postconf failed: {e}")
    value = done.stdout.strip()
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        return HostedDomain(FALLBACK_DOMAIN, f"Postfix is not configured ({why})")
    if not _usable_domain(value):
        return HostedDomain(FALLBACK_DOMAIN, f"Postfix's mydomain {value!r} is not a mail domain")
    return HostedDomain(value.lower().rstrip("."), "Postfix's mydomain")


def _write_new(path: str, text: str, mode: int, gid: int = -1) -> bool:
    """Create `path` with `text` unless it exists; True when written. Atomic: tmp, fsync, link.
    `gid`: the group the file is given to (-1: the creator's)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        return False
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if gid != -1:
            os.chown(tmp, -1, gid)
        os.chmod(tmp, mode)      # whatever the umask
        try:
            os.link(tmp, path)   # fails if the file appeared meanwhile: never overwrite
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    return True


def starter_settings(layout: StarterLayout) -> list[tuple[str, str]]:
    """The settings the starter sets (name, TOML value); everything else stays at its default."""
    q = _toml_string
    out = [("files_mailboxes", q(layout.mailboxes)), ("files_aliases", q(layout.aliases))]
    if not layout.system:
        data = layout.data_dir
        out += [("files_maildir_base", q(os.path.join(data, "mail"))),
                ("maildir_path_template", q(os.path.join(data, "mail", "{domain}", "{localpart}", "Maildir"))),
                ("delivery_sieve_script_template",
                 q(os.path.join(data, "mail", "{domain}", "{localpart}", "sieve", "active.sieve"))),
                ("state_sqlite_path", q(os.path.join(data, "state", "state.sqlite"))),
                ("quarantine_directory", q(os.path.join(data, "quarantine")))]
    if layout.daemon_user is not None:
        out.append(("daemon_user", q(layout.daemon_user)))
    else:
        out += list(USER_LISTEN)
    return out


def _daemon_ids(user: str) -> tuple[int, int, list[int]]:
    """(uid, gid, every gid) of the daemon user; StarterError when this host has no such user."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise StarterError(f"the daemons run as user {user!r} when started as root, and this host has "
                           f"no such user; create it ({CREATE_USER}; scripts/quickstart does) and run "
                           "again") from None
    return pw.pw_uid, pw.pw_gid, os.getgrouplist(user, pw.pw_gid)


def _unreachable(path: str, uid: int, gids: list[int]) -> str | None:
    """The first existing directory on the way to `path` that uid cannot search, if any."""
    here = os.path.abspath(path)
    chain = []
    while True:
        chain.append(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    for directory in reversed(chain):
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            return None          # created later, by root, with the usual 0755
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid in gids else stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


def _writable_by(directory: str, uid: int, gids: Any) -> bool:
    """Could `uid` (with groups `gids`) create files in `directory`? (Mode bits, as the kernel
    decides for a non-root user; ACLs are not read.)"""
    st = os.stat(directory)
    bits = (stat.S_IWUSR | stat.S_IXUSR) if st.st_uid == uid else \
        (stat.S_IWGRP | stat.S_IXGRP) if st.st_gid in gids else (stat.S_IWOTH | stat.S_IXOTH)
    return st.st_mode & bits == bits


def _prepare_for_daemon_user(layout: StarterLayout) -> tuple[int, list[str]]:
    """Check the daemon user exists and can reach the files; create the data directories it
    writes, as its own. Returns (its gid, the directories created)."""
    assert layout.daemon_user is not None
    uid, gid, gids = _daemon_ids(layout.daemon_user)
    for path in (layout.maps_dir, layout.data_dir):
        blocked = _unreachable(path, uid, gids)
        if blocked is not None:
            raise StarterError(f"the daemons run as {layout.daemon_user}, who cannot enter {blocked} "
                               f"(mode {stat.S_IMODE(os.stat(blocked).st_mode):04o}) to reach {path}; "
                               "put the settings file elsewhere (--config FILE)")
    created = []
    for directory, mode in layout.writable_dirs:
        if os.path.isdir(directory):
            if not _writable_by(directory, uid, gids):
                # Left by an earlier run as root (a tool run before the first start): the daemons
                # could not write there, and every delivery would be deferred. Say so instead.
                st = os.stat(directory)
                raise StarterError(
                    f"{directory} exists but {layout.daemon_user}, who runs the daemons, cannot write in it "
                    f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}): "
                    f"chown -R {layout.daemon_user}: {directory}, or name another place with --config FILE")
            continue
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        os.mkdir(directory, mode)
        os.chown(directory, uid, gid)
        os.chmod(directory, mode)
        created.append(directory)
    return gid, created


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_starter(layout: StarterLayout, domain: HostedDomain, defaults_text: str) -> list[str]:
    """Write the settings file, mailboxes and aliases that do not exist yet, and (as root) the
    data directories of the daemon user; the paths written."""
    written: list[str] = []
    config_gid = -1
    if layout.daemon_user is not None:
        config_gid, written = _prepare_for_daemon_user(layout)
    mailboxes = (f"# Owlery mailboxes (files_mailboxes): address, then its Maildir relative to\n"
                 f"# files_maildir_base. Written by `owlery run` for {domain.name} ({domain.source}).\n"
                 f"# RFC 5321 section 4.5.1: every hosted domain has a postmaster.\n"
                 f"postmaster@{domain.name}    {domain.name}/postmaster/Maildir\n")
    aliases = ("# Owlery aliases (files_aliases): address, then one or more targets, e.g.\n"
               f"#   abuse@{domain.name}    postmaster@{domain.name}\n")
    if _write_new(layout.mailboxes, mailboxes, 0o644):
        written.append(layout.mailboxes)
    if _write_new(layout.aliases, aliases, 0o644):
        written.append(layout.aliases)
    head = ["# Written by `owlery run` as a starting point: a files directory with one mailbox,",
            f"# postmaster@{domain.name}. Change what you need, then run: owlery config check", ""]
    values = starter_settings(layout)
    if layout.daemon_user is None:
        head += ["# Started as a normal user, the daemons listen on loopback TCP, which Postfix can",
                 "# reach. Every local user can reach it too: query the policy daemon, have mail",
                 "# DKIM-signed by the milter, deliver into any mailbox over LMTP. On a shared host",
                 "# start them as root instead (unix sockets in Postfix's queue directory, group",
                 "# postfix; see README.rst, Hardening).", ""]
    head += [f"{name} = {value}" for name, value in values]
    head += ["", "# Prometheus metrics on loopback, GET http://127.0.0.1:PORT/metrics (README.rst,",
             "# Metrics); delete a line to turn that daemon's off."]
    head += [f"{name} = {value}" for name, value in METRICS_LISTEN]
    if _write_new(layout.config_path, "\n".join(head) + "\n\n" + defaults_text + "\n", 0o640, config_gid):
        written.insert(0, layout.config_path)
    return written


def try_it(settings: Any, address: str, maildir: str) -> list[str]:
    """The lines that tell a newcomer how to deliver one message and where it lands."""
    from owlery.endpoints import parse_endpoint
    listen = settings.lmtpd_listen
    first = parse_endpoint(listen if isinstance(listen, str) else list(listen)[0])
    if first.kind == "tcp":
        where = ["--server", first.host, "--port", str(first.port)]
    elif first.kind == "unix":
        where = ["--socket", first.path]
    else:
        return []
    command = ["swaks", *where, "--protocol", "LMTP", "--from", "newcomer@example.net", "--to", address,
               "--header", "Subject: Hello from Owlery"]
    return ["owlery: try it: deliver a test message over LMTP to the starter mailbox:",
            "  " + shlex.join(command),
            f"owlery: it lands in {os.path.join(maildir, 'new')}/"]
