"""Benchmark: messages/s through a private Postfix (smtp-source -> smtpd -> milter -> smtp-sink).

Default (`--mode inbound`): the inbound stage set. Every message is DKIM-signed (RSA 2048,
relaxed/relaxed) by example.net, whose SPF record passes the client and whose DMARC record
is p=none; the client (127.0.0.1) counts as external for every milter. Peers in the same
run, over inet sockets, with the same DNS (dnsmasq on loopback, answering from memory):
- no milter (Postfix's own ceiling);
- Owlery, stages spf, dkim_verify, arc_verify, dmarc, authres, with milter_workers = 1
  and = 2 (each process caches DNS answers for their TTL);
- OpenDKIM in verify mode (Mode v, its query cache on): DKIM and A-R only, less work;
- Rspamd's milter proxy (self_scan) when `rspamd` is installed (Debian package rspamd):
  SPF, DKIM, ARC, DMARC and its A-R header, with the modules that need the network or
  Redis (RBLs, fuzzy, reputation...) off; its regexp rules run as shipped.
Each scenario runs at each session count (default 20 and 100); rounds alternate the order
of the scenarios; the tables show medians of msgs/s and of the milter's own CPU time per
message (its process tree's user + system time over the run: what other work on the
machine moves least).
`--mode sign` runs the older signing comparison (Owlery, OpenDKIM, dkimpy-milter signing).

Usage: .venv/bin/python bench/bench_milter.py [--sessions 20,100] [--messages 1000] [--rounds 3]
Talks to: postfix, smtp-source, dnsmasq, opendkim, rspamd, dkimpy-milter, owlery milter
(all private, loopback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
RSPAMD = shutil.which("rspamd")
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
    """A started milter: `.spec` for Postfix's smtpd_milters, `.stop()`, `.pid` (its process,
    whose tree `cpu_seconds` sums)."""

    def __init__(self, spec, stop, pid=None):
        self.spec, self.stop, self.pid = spec, stop, pid


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of `pid` and its descendants (living ones) so far."""
    if pid is None:
        return 0.0
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return total
    return total + sum(cpu_seconds(child) for child in children)


def _socket(work: Path, unix: bool) -> tuple[str, str, object]:
    if unix:
        path = work / "m.sock"
        return f"unix:{path}", f"unix:{path}", lambda proc: wait_for_unix(str(path), 20, proc)
    port = free_port()
    return f"inet:{port}@127.0.0.1", f"inet:127.0.0.1:{port}", lambda proc: wait_for_tcp(port, timeout=20, proc=proc)


# --------------------------------------------------------------------------- signing mode

def start_owlery_signing(work: Path, key_dir: Path, unix: bool) -> Milter:
    config = (f'dkim_key_directory = "{key_dir}"\n'
              f'dkim_sign_keys = {{ "{DOMAIN}" = ["{SELECTOR}"] }}\n'
              'milter_outbound_stages = ["dkim_sign"]\nlog_level = "warning"\n')
    proc = MilterProcess(work / "owlery", config, listen="unix" if unix else "tcp").start()
    if unix:
        os.chmod(proc.path, 0o666)       # Postfix's smtpd runs as the postfix user
    return Milter(proc.spec, proc.stop)


def start_opendkim_signing(work: Path, key_path: Path, unix: bool) -> Milter:
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


# --------------------------------------------------------------------------- inbound mode

def start_dnsmasq(work: Path, key_txt: str) -> tuple[int, ManagedProcess]:
    """dnsmasq answering our three TXT records (and NXDOMAIN under example.net) from memory,
    with a TTL of 300 s as real records have (dnsmasq's default, 0, forbids any cache)."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    chunks = [key_txt[i:i + 255] for i in range(0, len(key_txt), 255)]
    key_record = ",".join(f'"{c}"' for c in chunks)
    conf = work / "dnsmasq.conf"
    conf.write_text("no-resolv\nno-hosts\nno-poll\nbind-interfaces\nlisten-address=127.0.0.1\n"
                    f"port={port}\nlocal=/{DOMAIN}/\ncache-size=0\nuser=root\nlocal-ttl=300\n"
                    f"txt-record={SELECTOR}._domainkey.{DOMAIN},{key_record}\n"
                    f'txt-record={DOMAIN},"v=spf1 ip4:127.0.0.1 -all"\n'
                    f'txt-record=_dmarc.{DOMAIN},"v=DMARC1; p=none"\n')
    proc = ManagedProcess([DNSMASQ, "-k", "-C", str(conf), "--log-facility=-"], "dnsmasq",
                          work / "dnsmasq.log").start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:     # ready once it answers our SPF record
        done = subprocess.run([sys.executable, "-c", (
            "import dns.resolver as r; x = r.Resolver(configure=False); x.nameservers = ['127.0.0.1']; "
            f"x.port = {port}; print(x.resolve('{DOMAIN}', 'TXT')[0])")], capture_output=True, text=True)
        if "spf1" in done.stdout:
            return port, proc
        time.sleep(0.1)
    proc.stop()
    raise SystemExit(f"dnsmasq did not answer; see {work / 'dnsmasq.log'}")


def start_owlery_inbound(work: Path, dns_port: int, workers: int) -> Milter:
    config = ('milter_inbound_stages = ["spf", "dkim_verify", "arc_verify", "dmarc", "authres"]\n'
              'milter_internal_networks = []\nmilter_authserv_id = "mx.example.test"\n'
              f'dns_nameservers = ["127.0.0.1"]\ndns_port = {dns_port}\ndns_timeout = 5\n'
              f'milter_workers = {workers}\nlog_level = "warning"\n')
    proc = MilterProcess(work / "owlery", config, listen="tcp").start()
    return Milter(proc.spec, proc.stop, proc.proc.popen.pid)


def start_opendkim_verify(work: Path, dns_port: int) -> Milter:
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    sock, spec, wait = _socket(work, False)
    conf = work / "opendkim.conf"
    # Verify only: no InternalHosts match 127.0.0.1, so Postfix's client is external.
    conf.write_text(f"Socket {sock}\nMode v\nInternalHosts 192.0.2.1\nAlwaysAddARHeader yes\n"
                    f"AuthservID mx.example.test\nQueryCache yes\nNameservers 127.0.0.1@{dns_port}\n"
                    f"Background no\nSyslog no\nUMask 000\nPidFile {work}/opendkim.pid\n")
    proc = ManagedProcess([OPENDKIM, "-f", "-x", str(conf)], "opendkim", work / "opendkim.log").start()
    wait(proc)
    return Milter(spec, proc.stop, proc.popen.pid)


# Rspamd modules that need the network, Redis or a trained database: off, so that it
# does what the others do (and no lookup waits on a server that is not there).
RSPAMD_OFF = ("rbl", "surbl", "fuzzy_check", "phishing", "neural", "ratelimit", "greylist",
              "reputation", "history_redis", "replies", "url_redirector", "asn", "emails",
              "mx_check", "dcc", "spamassassin", "antivirus", "external_services", "clickhouse",
              "metadata_exporter", "elastic", "bayes_expiry", "dynamic_conf", "maillist",
              "once_received", "hfilter", "known_senders", "fuzzy_collect", "p0f", "dkim_signing",
              "arc_signing", "mid", "rspamd_update", "multimap", "whitelist", "spf_flattening")


def start_rspamd(work: Path, dns_port: int) -> Milter:
    work.mkdir(parents=True, exist_ok=True)
    local = work / "local.d"
    local.mkdir(exist_ok=True)
    for d in ("db", "run", "log"):
        (work / d).mkdir(exist_ok=True)
    port = free_port()
    (local / "options.inc").write_text(
        f'dns {{ nameserver = ["127.0.0.1:{dns_port}"]; timeout = 2s; retransmits = 1; }}\n'
        "local_addrs = [];\n")
    (local / "worker-proxy.inc").write_text(
        f'bind_socket = "127.0.0.1:{port}";\nmilter = yes;\ntimeout = 120s;\n'
        "upstream \"local\" { default = yes; self_scan = yes; }\ncount = 2;\n")
    (local / "worker-normal.inc").write_text("enabled = false;\n")
    (local / "worker-controller.inc").write_text("enabled = false;\n")
    (local / "worker-fuzzy.inc").write_text("enabled = false;\n")
    (local / "logging.inc").write_text(f'type = "file";\nfilename = "{work}/log/rspamd.log";\nlevel = "error";\n')
    (local / "milter_headers.conf").write_text('use = ["authentication-results"];\nskip_local = false;\n'
                                               'skip_authenticated = false;\n'
                                               'routines { authentication-results { header = '
                                               '"Authentication-Results"; remove = 1; } }\n')
    (local / "actions.conf").write_text("reject = 1000;\nadd_header = 999;\ngreylist = 998;\n")
    # Postfix's client is 127.0.0.1, which Rspamd would count as local and not check.
    for module in ("dkim", "spf", "arc", "dmarc"):
        (local / f"{module}.conf").write_text("check_local = true;\ncheck_authed = true;\n")
    for module in RSPAMD_OFF:
        (local / f"{module}.conf").write_text("enabled = false;\n")
    argv = [RSPAMD, "-f", "-u", "root", "-g", "root", "-c", "/etc/rspamd/rspamd.conf",
            f"--var=LOCAL_CONFDIR={work}", f"--var=DBDIR={work}/db", f"--var=RUNDIR={work}/run",
            f"--var=LOGDIR={work}/log"]
    proc = ManagedProcess(argv, "rspamd", work / "rspamd.out").start()
    wait_for_tcp(port, timeout=60, proc=proc)
    return Milter(f"inet:127.0.0.1:{port}", proc.stop, proc.popen.pid)


def signed_message(key_path: Path, size: int) -> bytes:
    import dkim
    line = b"The quick brown fox jumps over the lazy dog, then some more words to fill it.\r\n"
    body = line * max(1, size // len(line))
    head = (f"From: Alice <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: benchmark message\r\n"
            f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <bench@{DOMAIN}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n").encode()
    sig = dkim.sign(head + body, SELECTOR.encode(), DOMAIN.encode(), key_path.read_bytes(),
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + head + body


# --------------------------------------------------------------------------- driving Postfix

def pump(postfix: PostfixInstance, messages: int, sessions: int, size: int, message_file: Path | None) -> float:
    """Send `messages` with smtp-source over `sessions` parallel sessions; msgs/s until all reached the sink."""
    postfix.clear_sent()
    argv = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-f", SENDER, "-t", RCPT]
    argv += ["-F", str(message_file)] if message_file is not None else ["-l", str(size)]
    started = time.monotonic()
    done = subprocess.run(argv + [f"127.0.0.1:{postfix.port}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"smtp-source failed ({done.returncode}): {done.stderr.strip()[-500:]}\n"
                         f"see {postfix.maillog_path}")
    postfix.wait_sent(messages, timeout=900)
    return messages / (time.monotonic() - started)


def check_signed(postfix: PostfixInstance, expect: bool) -> None:
    sent = postfix.sent_messages()
    signed = sum(1 for m in sent if m.message.get("DKIM-Signature"))
    if expect and signed != len(sent):
        raise SystemExit(f"only {signed}/{len(sent)} messages were signed; see {postfix.maillog_path}")


def check_verified(postfix: PostfixInstance, label: str) -> None:
    """Every message reached the sink with one of our milter's dkim=pass results."""
    sent = postfix.sent_messages()
    ok = sum(1 for m in sent if any("dkim=pass" in str(v) for v in m.message.get_all("Authentication-Results") or ()))
    if ok != len(sent) or not sent:
        heads = sent[0].raw.split(b"\n\n")[0].decode(errors="replace") if sent else "(none)"
        raise SystemExit(f"{label}: only {ok}/{len(sent)} messages carry dkim=pass; first:\n{heads}\n"
                         f"see {postfix.maillog_path}")


def postfix_for(work: Path, milter: Milter | None) -> PostfixInstance:
    main_cf = {"milter_default_action": "tempfail", "milter_protocol": "6",
               "default_process_limit": "150", "smtpd_client_connection_count_limit": "0",
               "smtpd_client_connection_rate_limit": "0", "milter_command_timeout": "60s",
               "milter_content_timeout": "120s"}
    if milter is not None:
        main_cf["smtpd_milters"] = milter.spec
    return PostfixInstance(work / "postfix", main_cf=main_cf).start()


def run_inbound(args: argparse.Namespace, tmp: Path, build: Path, key_path: Path) -> int:
    key = dkimkeys.load_key(str(key_path), DOMAIN, SELECTOR)
    dns_port, dns_proc = start_dnsmasq(tmp / "dns", dkimkeys.public_txt(key.key))
    message_file = tmp / "message.eml"
    message_file.write_bytes(signed_message(key_path, args.size).replace(b"\r\n", b"\n"))
    sessions = [int(s) for s in args.sessions.split(",")]
    scenarios = [
        ("none", "no milter", lambda w: None),
        ("owlery1", "Owlery, 1 worker", lambda w: start_owlery_inbound(w, dns_port, 1)),
        ("owlery2", "Owlery, 2 workers", lambda w: start_owlery_inbound(w, dns_port, 2)),
        ("opendkim", "OpenDKIM verify", lambda w: start_opendkim_verify(build / "opendkim-v", dns_port)),
    ]
    if RSPAMD:
        scenarios.append(("rspamd", "Rspamd proxy", lambda w: start_rspamd(w / "rspamd", dns_port)))
    else:
        print("# rspamd not installed (Debian package rspamd): no Rspamd column", flush=True)
    scenarios = [s for s in scenarios if not args.only or s[0] in args.only]
    results: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}      # milter CPU ms per message
    print(f"# {args.messages} messages of {message_file.stat().st_size} bytes per run, "
          f"sessions {sessions}, {args.rounds} rounds, {os.cpu_count()} cores", flush=True)
    try:
        for rnd in range(args.rounds):
            order = scenarios[rnd % len(scenarios):] + scenarios[:rnd % len(scenarios)]
            for key_name, label, start in order:
                work = tmp / f"{key_name}-{rnd}"
                work.mkdir()
                milter = start(work)
                postfix = postfix_for(work, milter)
                try:
                    pump(postfix, 40, 4, args.size, message_file)            # warm-up
                    if milter is not None:
                        check_verified(postfix, label)
                    for n in sessions:
                        before = cpu_seconds(milter.pid if milter else None)
                        rate = pump(postfix, args.messages, n, args.size, message_file)
                        ms = (cpu_seconds(milter.pid if milter else None) - before) * 1000 / args.messages
                        results.setdefault((label, n), []).append(rate)
                        cpu.setdefault((label, n), []).append(ms)
                        print(f"  round {rnd + 1}: {label:20s} {n:4d} sessions {rate:8.1f} msg/s  "
                              f"milter CPU {ms:5.2f} ms/msg", flush=True)
                finally:
                    postfix.stop()
                    if milter is not None:
                        milter.stop()
                shutil.rmtree(work, ignore_errors=True)
    finally:
        dns_proc.stop()
    print()
    print(f"{'median msgs/s':22s}" + "".join(f"{n:>12d} sess" for n in sessions))
    med = {k: statistics.median(v) for k, v in results.items()}
    labels = [label for _, label, _ in scenarios]
    for label in labels:
        print(f"{label:22s}" + "".join(f"{med.get((label, n), float('nan')):17.1f}" for n in sessions))
    print(f"{'median milter CPU ms/msg':22s}" + "".join(f"{n:>12d} sess" for n in sessions))
    for label in labels[1:]:
        print(f"{label:22s}" + "".join(f"{statistics.median(cpu.get((label, n), [0])):17.2f}" for n in sessions))
    for ours in ("Owlery, 1 worker", "Owlery, 2 workers"):
        for peer in ("OpenDKIM verify", "Rspamd proxy"):
            if ours in labels and peer in labels:
                ratios = ", ".join(f"{n} sessions {med[(ours, n)] / med[(peer, n)]:.2f}x" for n in sessions)
                print(f"{ours} / {peer}: {ratios}")
    return 0


def run_signing(args: argparse.Namespace, tmp: Path, build: Path, key_path: Path) -> int:
    dkimpy_exe = ensure_dkimpy_venv(Path(args.dkimpy_venv))
    sessions = int(args.sessions.split(",")[0])
    scenarios = [
        ("none", "no milter", lambda w: None),
        ("owlery", "Owlery signing", lambda w: start_owlery_signing(w, build / "keys", args.unix)),
        ("opendkim", "OpenDKIM signing", lambda w: start_opendkim_signing(build / "opendkim", key_path, args.unix)),
        ("dkimpy", "dkimpy-milter signing", lambda w: start_dkimpy(w / "dkimpy", dkimpy_exe, key_path, args.unix)),
    ]
    by = {}
    for key, label, start in scenarios:
        if args.only and key not in args.only:
            continue
        work = tmp / key
        work.mkdir()
        milter = start(work)
        postfix = postfix_for(work, milter)
        try:
            pump(postfix, 20, 2, args.size, None)                # warm-up (process start, key load)
            check_signed(postfix, milter is not None)
            many = pump(postfix, args.messages, sessions, args.size, None)
            check_signed(postfix, milter is not None)
            one = pump(postfix, args.latency_messages, 1, args.size, None)
        finally:
            postfix.stop()
            if milter is not None:
                milter.stop()
        by[label] = many
        print(f"{label:24s} {many:8.1f} msg/s with {sessions} sessions   "
              f"{one:7.1f} msg/s one session ({1000 / one:6.1f} ms/msg)", flush=True)
    if "Owlery signing" in by:
        for other in ("OpenDKIM signing", "dkimpy-milter signing"):
            if other in by:
                print(f"Owlery / {other.split()[0]}: {by['Owlery signing'] / by[other]:.2f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("inbound", "sign"), default="inbound")
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--sessions", default="20,100", help="comma-separated SMTP session counts")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (inbound mode; medians are shown)")
    ap.add_argument("--latency-messages", type=int, default=100, help="messages for the one-session run (sign)")
    ap.add_argument("--size", type=int, default=4000, help="message body size (bytes)")
    ap.add_argument("--unix", action="store_true", help="sign mode: milters on unix sockets instead of inet")
    ap.add_argument("--dkimpy-venv", default="/tmp/dkimpy-bench-venv")
    ap.add_argument("--only", action="append", help="run only these scenarios (inbound: none, owlery1, "
                    "owlery2, opendkim, rspamd; sign: none, owlery, opendkim, dkimpy)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="owlery-bench-"))
    os.chmod(tmp, 0o755)
    build = ROOT / "build" / f"bench-{os.getpid()}"
    build.mkdir(parents=True, exist_ok=True)
    key_path, _ = dkimkeys.generate(DOMAIN, SELECTOR, str(build / "keys"))
    os.chmod(build / "keys", 0o755)
    try:
        if args.mode == "inbound":
            return run_inbound(args, tmp, build, Path(key_path))
        return run_signing(args, tmp, build, Path(key_path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
