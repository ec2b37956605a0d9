"""Runs Pigeonhole's `sieve-test` (Debian dovecot-sieve) on one script and message and reads
what it really did: the messages it stored (Maildir files, with their flags), and the
messages it sent (redirect, vacation, reject, notify), as a `sieve-test -e` run prints them.

One `Pigeonhole` per worker thread: it owns a private home (config, Maildir++ with the
generator's folder pool created, the script and message files, the personal and global script
directories `include` reads, as the config's sieve and sieve_global name them), owned by `nobody` when the
tests run as root (sieve-test refuses root without mail_uid). Nothing touches /etc/dovecot.
Used by tests/sieve/differential/runner.py; tests: tests/sieve/differential/test_differential.py.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

SIEVE_TEST = shutil.which("sieve-test") or "/usr/bin/sieve-test"
RUN_USER = "nobody"
HOSTNAME = "mx.example.net"
POSTMASTER = "postmaster@example.net"

# Extensions Pigeonhole 0.5.19 has but does not enable by default.
_EXTRA_EXTENSIONS = ("+vnd.dovecot.environment +editheader +vacation-seconds +spamtest +spamtestplus "
                     "+virustest +special-use")

CONF = """\
log_path = /dev/stderr
info_log_path = /dev/stderr
mail_location = maildir:{home}/mail:INDEX=MEMORY
mail_fsync = never
hostname = {hostname}
postmaster_address = {postmaster}
recipient_delimiter = +
plugin {{
  # include's :personal and :global directories (filled per pair: the include shape)
  sieve = file:{home}/personal
  sieve_global = {home}/global
  sieve_extensions = {extensions}
  sieve_spamtest_status_type = score
  sieve_spamtest_status_header = X-Spam-Score: (-?[0-9]+(\\.[0-9]+)?)
  sieve_spamtest_max_value = 10
  sieve_virustest_status_type = text
  sieve_virustest_status_header = X-Virus-Scan
  sieve_virustest_text_value1 = clean
  sieve_virustest_text_value2 = cured
  sieve_virustest_text_value3 = unknown
  sieve_virustest_text_value4 = suspicious
  sieve_virustest_text_value5 = infected
  sieve_max_redirects = 4
  sieve_max_actions = 32
}}
"""

# Maildir filename flag letters (Dovecot): system flags; a-z are keywords (dovecot-keywords).
EXTPROGRAMS_PLUGIN = Path("/usr/lib/dovecot/modules/sieve/lib90_sieve_extprograms_plugin.so")
# a vnd.dovecot.debug line of sieve-test's output: "info: DEBUG: <text>." up to the next line's prefix
DEBUG_LINE = re.compile(r"info: DEBUG: (.*?)\.\n(?=info:|error:|sieve-test|\Z|[a-z]+:)", re.S)


def sieve_test_extprograms(work: Path, bindir: Path, script: str, message: bytes, envelope,
                           eol: str | None = None) -> str:
    """sieve-test's output (stdout, then stderr) for `script` on `message`, with Pigeonhole's
    extprograms plugin taking pipe, filter and execute programs from `bindir`
    (sieve_execute_input_eol `eol` when given); `envelope` has mail_from, rcpt_to, orig_rcpt.
    Files go in `work` (made readable to RUN_USER, who runs it when we are root)."""
    os.chmod(work, 0o777)
    (work / "s.sieve").write_text(script)
    (work / "m.eml").write_bytes(message)
    (work / "dovecot.conf").write_text(f"""base_dir = {work}/run
plugin {{
  sieve_plugins = sieve_extprograms
  sieve_extensions = +vnd.dovecot.pipe +vnd.dovecot.filter +vnd.dovecot.execute +vnd.dovecot.debug
  sieve_pipe_bin_dir = {bindir}
  sieve_filter_bin_dir = {bindir}
  sieve_execute_bin_dir = {bindir}
""" + (f"  sieve_execute_input_eol = {eol}\n" if eol else "") + "}\n")
    for f in work.iterdir():
        os.chmod(f, 0o644)
    cmd = [SIEVE_TEST, "-c", str(work / "dovecot.conf"), "-f", envelope.mail_from, "-r", envelope.rcpt_to,
           "-a", envelope.orig_rcpt, "-l", f"maildir:{work}/Maildir", str(work / "s.sieve"), str(work / "m.eml")]
    if os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={RUN_USER}", "--regid=nogroup", "--clear-groups", *cmd]
    out = subprocess.run(cmd, capture_output=True, timeout=60, cwd=str(work),
                         env={"HOME": str(work), "USER": RUN_USER, "PATH": "/usr/bin:/bin"})
    return out.stdout.decode("utf-8", "replace") + out.stderr.decode("utf-8", "replace")


_SYSTEM_LETTERS = {"S": "\\seen", "F": "\\flagged", "R": "\\answered", "D": "\\draft", "T": "\\deleted"}


@dataclasses.dataclass
class Raw:
    """What one sieve-test run did, before normalisation."""

    status: str                    # "ok" | "compile-error" | "error" | "crash" (sieve-test panicked) | "harness-error"
    stored: list[tuple[str, tuple[str, ...], bytes]]   # (mailbox, flags, message)
    sent: list[tuple[str, str, str, bytes]]           # (kind, envelope from, recipient, message)
    log: str = ""


def imap_utf7_decode(name: str) -> str:
    """Modified UTF-7 (RFC 3501 5.1.3) to text."""
    out, i = [], 0
    while i < len(name):
        c = name[i]
        if c == "&":
            j = name.index("-", i)
            if j == i + 1:
                out.append("&")
            else:
                b64 = name[i + 1:j].replace(",", "/")
                b64 += "=" * (-len(b64) % 4)
                import base64
                out.append(base64.b64decode(b64).decode("utf-16-be"))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def imap_utf7_encode(name: str) -> str:
    import base64
    out, buf = [], []

    def flush():
        if buf:
            b = base64.b64encode("".join(buf).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")
            buf.clear()
    for c in name:
        if 0x20 <= ord(c) <= 0x7e:
            flush()
            out.append("&-" if c == "&" else c)
        else:
            buf.append(c)
    flush()
    return "".join(out)


class Pigeonhole:
    """A private sieve-test set-up in `home` (created); `run()` one pair at a time."""

    def __init__(self, home: Path, folders: tuple[str, ...]):
        self.home = Path(home)
        self.folders = tuple(folders)
        self.mail = self.home / "mail"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dovecot.conf").write_text(CONF.format(
            home=self.home, hostname=HOSTNAME, postmaster=POSTMASTER, extensions=_EXTRA_EXTENSIONS))
        self._dirs = {"INBOX": self.mail}
        for f in self.folders:
            self._dirs[f] = self.mail / ("." + imap_utf7_encode(f))
        for d in self._dirs.values():
            for sub in ("cur", "new", "tmp"):
                (d / sub).mkdir(parents=True, exist_ok=True)
        self.script_dirs = {"personal": self.home / "personal", "global": self.home / "global"}
        for d in self.script_dirs.values():
            d.mkdir(exist_ok=True)
        self.uid = self.gid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_USER)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            os.chmod(self.home, 0o755)
            for root, dirs, files in os.walk(self.home):
                os.chown(root, self.uid, self.gid)
                for n in dirs + files:
                    os.chown(os.path.join(root, n), self.uid, self.gid)
        self.env = self._config_env()

    def _config_env(self) -> dict[str, str]:
        """The configuration as doveconf exports it to the environment. Every Dovecot tool
        started without it execs `doveconf -e` and then itself again: exporting it once
        halves the cost of a sieve-test run."""
        base = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}
        doveconf = shutil.which("doveconf") or "/usr/bin/doveconf"
        out = subprocess.run([doveconf, "-f", "service=sieve-test", "-c", str(self.home / "dovecot.conf"),
                              "-m", "mail", "-e", "/usr/bin/env", "-0"], capture_output=True, env=base,
                             timeout=20, user=self.uid, group=self.gid, extra_groups=[] if self.uid is not None else None)
        env = dict(x.split("=", 1) for x in out.stdout.decode("utf-8", "replace").split("\0") if "=" in x)
        if out.returncode != 0 or env.get("DOVECONF_ENV") != "1":
            raise RuntimeError(f"doveconf failed: {out.stderr.decode('utf-8', 'replace')[-500:]}")
        return env

    def _write(self, name: str, data: bytes) -> Path:
        p = self.home / name
        p.write_bytes(data)
        if self.uid is not None:
            os.chown(p, self.uid, self.gid)
        return p

    def _cleanup(self) -> None:
        for d in self.script_dirs.values():
            for entry in os.scandir(d):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        for entry in os.scandir(self.mail):
            if entry.is_dir() and entry.name.startswith(".") and entry.name not in \
                    {"." + imap_utf7_encode(f) for f in self.folders}:
                shutil.rmtree(entry.path)
        for d in self._dirs.values():
            for sub in ("cur", "new", "tmp"):
                for e in os.scandir(d / sub):
                    os.unlink(e.path)
            # Maildir holds 26 keywords a folder: start each pair with none
            if (d / "dovecot-keywords").exists():
                os.unlink(d / "dovecot-keywords")

    def _collect(self) -> list[tuple[str, tuple[str, ...], bytes]]:
        out = []
        for entry in os.scandir(self.mail):
            if entry.name in ("cur", "new"):
                out.extend(self._read_dir("INBOX", self.mail, Path(entry.path)))
            elif entry.is_dir() and entry.name.startswith("."):
                name = imap_utf7_decode(entry.name[1:])
                for sub in ("cur", "new"):
                    p = Path(entry.path) / sub
                    if p.is_dir():
                        out.extend(self._read_dir(name, Path(entry.path), p))
        return out

    def _read_dir(self, mailbox: str, root: Path, d: Path):
        keywords = {}
        kw = root / "dovecot-keywords"
        files = list(os.scandir(d))
        if files and kw.exists():
            for line in kw.read_text("utf-8", "replace").splitlines():
                n, _, word = line.partition(" ")
                if n.isdigit():
                    keywords[chr(ord("a") + int(n))] = word
        for e in files:
            flags: list[str] = []
            if ":2," in e.name:
                for ch in e.name.split(":2,", 1)[1]:
                    if ch in _SYSTEM_LETTERS:
                        flags.append(_SYSTEM_LETTERS[ch])
                    elif ch in keywords:
                        flags.append(keywords[ch])
            with open(e.path, "rb") as f:
                yield mailbox, tuple(sorted(flags)), f.read()

    def run(self, script: bytes, message: bytes, mail_from: str, rcpt_to: str, orig_rcpt: str,
            timeout: float = 20.0, scripts: tuple[tuple[str, str, bytes], ...] = ()) -> Raw:
        """`scripts`: (location, name, source) of the scripts `include` may name, written as
        NAME.sieve into the personal or global directory."""
        self._cleanup()
        for location, name, source in scripts:
            self._write(f"{location}/{name}.sieve", source)
        sp = self._write("script.sieve", script)
        mp = self._write("message.eml", message)
        for stale in (self.home / "script.svbin",):
            if stale.exists():
                stale.unlink()
        argv = [SIEVE_TEST, "-c", str(self.home / "dovecot.conf"), "-C", "-e",
                "-f", mail_from or "<>", "-r", rcpt_to, "-a", orig_rcpt, str(sp), str(mp)]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=self.env, cwd=self.home,
                                  user=self.uid, group=self.gid, extra_groups=[] if self.uid is not None else None)
        except subprocess.TimeoutExpired:
            return Raw("harness-error", [], [], "sieve-test timed out")
        log = proc.stderr.decode("utf-8", "replace")
        if "Panic:" in log or proc.returncode < 0:
            return Raw("crash", [], [], log)
        if "failed to compile sieve script" in log:
            return Raw("compile-error", [], [], log)
        stored = self._collect()
        sent, problem = _parse_sent(proc.stdout, log)
        if problem:
            return Raw("harness-error", stored, sent, problem + "\n" + log)
        if "final result: success" in log:
            status = "ok"
        elif "final result: failed; resolved with successful implicit keep" in log:
            status = "error"
        else:
            status = "harness-error"
        return Raw(status, stored, sent, log)


_SENDING = re.compile(r"Info: sending message from <([^>]*)>:")
_ACTION = re.compile(r"Info: sieve: msgid=.*?: (vacation|redirect|reject|notify) action: (.*)")


def _parse_sent(stdout: bytes, log: str) -> tuple[list[tuple[str, str, str, bytes]], str]:
    """Pair the messages sieve-test printed with the log lines that say what each was."""
    # sieve-test writes each message body first, then "RECIPIENT:" blocks (buffered stdio)
    m = re.search(rb"(?m)^RECIPIENT: ", stdout)
    bodies_part = stdout if m is None else stdout[:m.start()]
    recips = re.findall(rb"(?m)^RECIPIENT: (.*)$", stdout)
    bodies = [b for b in re.split(rb"(?m)^(?=X-Sieve: Pigeonhole Sieve)", bodies_part) if b.strip()]
    envs: list[str] = []
    kinds: list[str] = []
    # recipients of each message: one, but a notification to several (mailto:a,b or ?cc=)
    # is one message with a RECIPIENT block for each, as its log line lists them
    counts: list[int] = []
    pending = None
    for line in log.splitlines():
        s = _SENDING.search(line)
        if s:
            if pending is not None:
                kinds.append("?")
                counts.append(1)
            pending = s.group(1)
            envs.append(pending)
            continue
        a = _ACTION.search(line)
        if a and pending is not None:
            kinds.append(a.group(1))
            counts.append(max(1, a.group(2).count("<")) if a.group(1) == "notify" else 1)
            pending = None
    if pending is not None:
        kinds.append("?")
        counts.append(1)
    if len(bodies) == len(envs) == len(kinds) < len(recips) == sum(counts):
        # one entry per recipient, each with its message
        it = iter(recips)
        recips = [next(it) for n in counts for _ in range(n)]
        kinds, envs, bodies = ([x for x, n in zip(seq, counts) for _ in range(n)] for seq in (kinds, envs, bodies))
    if not (len(bodies) == len(recips) == len(envs) == len(kinds)):
        return [], (f"cannot pair sent messages: {len(bodies)} bodies, {len(recips)} recipients, "
                    f"{len(envs)} senders, {len(kinds)} kinds")
    out = [(k, e, r.decode("utf-8", "replace").strip(), b) for k, e, r, b in zip(kinds, envs, recips, bodies)]
    return out, ""
