"""Benchmark: messages/s through a private Postfix (smtp-source -> smtpd -> milter -> smtp-sink).

Runs, in one go, the same load with (a) no milter, (b) Owlery signing (RSA 2048),
(c) OpenDKIM signing (RSA 2048), (d) dkimpy-milter signing (RSA 2048), each over an inet
socket (the production default; unix sockets with --unix), and prints msgs/s with many
SMTP sessions and with one session (latency). Every message is signed: the client
127.0.0.1 is internal for all three milters and the sender domain has a key.
dkimpy-milter comes from PyPI into a throwaway venv (default /tmp/dkimpy-bench-venv;
created with `python3 -m venv DIR && DIR/bin/pip install dkimpy-milter` if missing).

Usage: .venv/bin/python bench/bench_milter.py [--messages 400] [--sessions 10] [--size 4000]
Talks to: postfix, smtp-source, opendkim, dkimpy-milter, owlery milter (all private, loopback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from milters import dkimkeys  # noqa: E402
from tests.harness.owlery_milter import MilterProcess  # noqa: E402
from tests.harness.postfix import PostfixInstance  # noqa: E402
from tests.harness.procs import ManagedProcess, free_port, wait_for_tcp, wait_for_unix  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
DOMAIN, SELECTOR = "example.net", "bench"
SENDER, RCPT = f"alice@{DOMAIN}", "bob@example.test"


def ensure_dkimpy_venv(venv: Path) -> Path:
    exe = venv / "bin" / "dkimpy-milter"
    if not exe.exists():
        print(f"# creating {venv} with dkimpy-milter from PyPI", flush=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dkimpy-milter"], check=True)
    return exe


class Milter:
    """A started milter: `.spec` for Postfix's smtpd_milters, `.stop()`."""

    def __init__(self, spec, stop):
        self.spec, self.stop = spec, stop


def start_owlery(work: Path, key_dir: Path, unix: bool) -> Milter:
    config = (f'dkim_key_directory = "{key_dir}"\n'
              f'dkim_sign_keys = {{ "{DOMAIN}" = ["{SELECTOR}"] }}\n'
              'milter_outbound_stages = ["dkim_sign"]\nlog_level = "warning"\n')
    proc = MilterProcess(work / "owlery", config, listen="unix" if unix else "tcp").start()
    if unix:
        os.chmod(proc.path, 0o666)       # Postfix's smtpd runs as the postfix user
    return Milter(proc.spec, proc.stop)


def _socket(work: Path, unix: bool) -> tuple[str, str, object]:
    if unix:
        path = work / "m.sock"
        return f"unix:{path}", f"unix:{path}", lambda proc: wait_for_unix(str(path), 20, proc)
    port = free_port()
    return f"inet:{port}@127.0.0.1", f"inet:127.0.0.1:{port}", lambda proc: wait_for_tcp(port, timeout=20, proc=proc)


def start_opendkim(work: Path, key_path: Path, unix: bool) -> Milter:
    # OpenDKIM refuses files below a world-writable directory: keep them under build/.
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    sock, spec, wait = _socket(work, unix)
    conf = work / "opendkim.conf"
    conf.write_text(f"Socket {sock}\nMode s\nDomain {DOMAIN}\nSelector {SELECTOR}\nKeyFile {key_path}\n"
                    "Canonicalization relaxed/relaxed\nInternalHosts 127.0.0.1\nBackground no\n"
                    f"Syslog no\nUMask 000\nPidFile {work}/opendkim.pid\n")
    proc = ManagedProcess([OPENDKIM, "-f", "-x", str(conf)], "opendkim", work / "opendkim.log").start()
    wait(proc)
    return Milter(spec, proc.stop)


def start_dkimpy(work: Path, exe: Path, key_path: Path, unix: bool) -> Milter:
    work.mkdir(parents=True, exist_ok=True)
    sock, spec, wait = _socket(work, unix)
    conf = work / "dkimpy-milter.conf"
    conf.write_text(f"Socket {sock}\nMode s\nDomain {DOMAIN}\nSelector {SELECTOR}\nKeyFile {key_path}\n"
                    "Canonicalization relaxed/relaxed\nInternalHosts 127.0.0.1\nSyslog no\nUserID root\n"
                    f"UMask 0\nPidFile {work}/dkimpy.pid\n")
    proc = ManagedProcess([str(exe), str(conf)], "dkimpy-milter", work / "dkimpy.log").start()
    wait(proc)
    return Milter(spec, proc.stop)


def pump(postfix: PostfixInstance, messages: int, sessions: int, size: int) -> float:
    """Send `messages` with smtp-source over `sessions` parallel sessions; msgs/s until all reached the sink."""
    postfix.clear_sent()
    started = time.monotonic()
    subprocess.run([SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                    "-f", SENDER, "-t", RCPT, f"127.0.0.1:{postfix.port}"], check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    postfix.wait_sent(messages, timeout=600)
    return messages / (time.monotonic() - started)


def check_signed(postfix: PostfixInstance, expect: bool) -> None:
    sent = postfix.sent_messages()
    signed = sum(1 for m in sent if m.message.get("DKIM-Signature"))
    if expect and signed != len(sent):
        raise SystemExit(f"only {signed}/{len(sent)} messages were signed; see {postfix.maillog_path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--latency-messages", type=int, default=100, help="messages for the one-session run")
    ap.add_argument("--size", type=int, default=4000, help="message size (bytes)")
    ap.add_argument("--unix", action="store_true", help="milters on unix sockets instead of inet")
    ap.add_argument("--dkimpy-venv", default="/tmp/dkimpy-bench-venv")
    ap.add_argument("--only", action="append", help="run only these scenarios (none, owlery, opendkim, dkimpy)")
    args = ap.parse_args(argv)

    dkimpy_exe = ensure_dkimpy_venv(Path(args.dkimpy_venv))
    tmp = Path(tempfile.mkdtemp(prefix="owlery-bench-"))
    os.chmod(tmp, 0o755)
    build = ROOT / "build" / f"bench-{os.getpid()}"
    build.mkdir(parents=True, exist_ok=True)
    key_path, _ = dkimkeys.generate(DOMAIN, SELECTOR, str(build / "keys"))
    os.chmod(build / "keys", 0o755)

    scenarios = [
        ("none", "no milter", lambda w: None),
        ("owlery", "Owlery signing", lambda w: start_owlery(w, build / "keys", args.unix)),
        ("opendkim", "OpenDKIM signing", lambda w: start_opendkim(build / "opendkim", Path(key_path), args.unix)),
        ("dkimpy", "dkimpy-milter signing", lambda w: start_dkimpy(w / "dkimpy", dkimpy_exe, Path(key_path), args.unix)),
    ]
    results = []
    try:
        for key, label, start in scenarios:
            if args.only and key not in args.only:
                continue
            work = tmp / key
            work.mkdir()
            milter = start(work)
            main_cf = {"milter_default_action": "tempfail", "milter_protocol": "6",
                       "default_process_limit": "100", "smtpd_client_connection_count_limit": "0"}
            if milter is not None:
                main_cf["smtpd_milters"] = milter.spec
            postfix = PostfixInstance(work / "postfix", main_cf=main_cf).start()
            try:
                pump(postfix, 20, 2, args.size)                # warm-up (process start, key load)
                check_signed(postfix, milter is not None)
                many = pump(postfix, args.messages, args.sessions, args.size)
                check_signed(postfix, milter is not None)
                one = pump(postfix, args.latency_messages, 1, args.size)
            finally:
                postfix.stop()
                if milter is not None:
                    milter.stop()
            results.append((label, many, one))
            print(f"{label:24s} {many:8.1f} msg/s with {args.sessions} sessions   "
                  f"{one:7.1f} msg/s one session ({1000 / one:6.1f} ms/msg)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(build, ignore_errors=True)
    by = {label: (many, one) for label, many, one in results}
    if "Owlery signing" in by:
        o = by["Owlery signing"][0]
        for other in ("OpenDKIM signing", "dkimpy-milter signing"):
            if other in by:
                print(f"Owlery / {other.split()[0]}: {o / by[other][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
