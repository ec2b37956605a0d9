"""The starter set `owlery run` writes on a first start: settings, a mailbox for postmaster@, and how to try it.

A newcomer without a directory of their own gets one mailbox, postmaster@ of the hosted
domain (RFC 5321 section 4.5.1 requires it anyway), and an empty aliases file, in the
files directory; `owlery run` then prints a swaks line that delivers a message to it
over LMTP and the Maildir where it lands. Where things go:
- the default settings file (/etc/owlery/owlery.toml): the map files beside it in
  /etc/owlery, mail, state and quarantine under /var/lib/owlery (the built-in defaults);
- any other settings file (e.g. `run/owlery.toml` when quickstart runs as a normal user):
  everything in that file's directory, so nothing outside it is needed or touched.
The hosted domain is Postfix's `mydomain` when Postfix is installed and configured with
a real domain, else example.org; the output says which. An existing file is never
overwritten, and the settings file is written 0640 (it may later hold passwords).
Talks to: the file system, `postconf`. Tests: tests/core/test_starter.py
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from typing import Any

FALLBACK_DOMAIN = "example.org"
SYSTEM_DATA_DIR = "/var/lib/owlery"


@dataclasses.dataclass(frozen=True)
class HostedDomain:
    name: str
    source: str      # said in the output: where the name came from


@dataclasses.dataclass(frozen=True)
class StarterLayout:
    """Where the starter files go for one settings file."""

    config_path: str
    maps_dir: str        # mailboxes, aliases
    data_dir: str        # mail/, state.sqlite, quarantine/
    system: bool         # the built-in default layout (no path settings written)

    @classmethod
    def for_config(cls, config_path: str, default_config_path: str) -> "StarterLayout":
        path = os.path.abspath(config_path)
        here = os.path.dirname(path)
        if path == os.path.abspath(default_config_path):
            return cls(path, here, SYSTEM_DATA_DIR, True)
        return cls(path, here, here, False)

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


def _write_new(path: str, text: str, mode: int) -> bool:
    """Create `path` with `text` unless it exists; True when written. Atomic: tmp, fsync, link."""
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
                ("state_sqlite_path", q(os.path.join(data, "state.sqlite"))),
                ("quarantine_directory", q(os.path.join(data, "quarantine")))]
    return out


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_starter(layout: StarterLayout, domain: HostedDomain, defaults_text: str) -> list[str]:
    """Write the settings file, mailboxes and aliases that do not exist yet; the paths written."""
    written = []
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
    head += [f"{name} = {value}" for name, value in starter_settings(layout)]
    if _write_new(layout.config_path, "\n".join(head) + "\n\n" + defaults_text + "\n", 0o640):
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
