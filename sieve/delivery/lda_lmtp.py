"""The LDA's fast path: hand the message to a running `owlery lmtpd` over LMTP (Cyrus `deliver` style).

`owlery lda` starts one Python process per message; importing settings, the directory
and the Sieve engine costs far more than the delivery. So this module — standard library
only, no owlery imports — reads the few keys it needs from the settings file and hands the
message to lmtpd whenever one runs: at `lda_lmtp_endpoint` when that is set, else at the
first unix:/tcp: entry of `lmtpd_listen` (the same file configures the daemon; its default
is lmtpd's default socket), unless `lda_lmtp_handoff = false`. Nothing listening there is
cheap to find out (ENOENT or ECONNREFUSED) and means in-process delivery. It sends the message to lmtpd, and maps the
per-recipient LMTP reply to a sysexits status: 2xx -> 0, 4xx -> 75, 5.1.1 -> 67, other
5xx -> 77, with the reply text as the first stderr line (pipe(8) puts it in the DSN).
`-a ADDRESS -d USER` (dovecot-lda's meaning, as in-process: USER's mailbox and script,
ADDRESS the envelope recipient Sieve sees) goes as `RCPT TO:<ADDRESS> X-OWLERY-USER=USER`
when lmtpd advertises that parameter.
As in-process (sieve.delivery.lda), a leading mbox From line (local(8) writes one) is dropped
and names the sender when -f is absent, the MTA's Return-Path and Delivered-To (X-Original-To
may come between them) go when lmtpd writes the same, and with no -a or -d the recipient is
$RECIPIENT (sieve.delivery.mta_input).
`run()` returns None ("not handled, deliver in-process") when the endpoint is unset, the
daemon is unreachable or not ready (refused, timeout, 421 before DATA, no X-OWLERY-USER
when it is needed), the arguments need the in-process path (a non-empty -m, -o, -p, -r,
--help, anything unusual) or the settings file cannot be read simply. After DATA was sent and no reply came, the outcome is
unknown: exit 75 (the MTA retries; a duplicate is possible, a loss is not). MAIL, RCPT and DATA
go in one write when lmtpd advertises PIPELINING (RFC 2920).
Run as `python -I -S .../sieve/delivery/lda_lmtp.py ARGS` (no site import at all), or
through `owlery lda` (owlery.app.cli's fast path).
Talks to: the settings file (read), lmtpd (LMTP). Tests: tests/delivery/test_lda_lmtp.py
"""

import sys
# sysexits, as os.EX_*: os re-exports them from the built-in posix, already loaded (os costs ~1 ms)
from posix import EX_NOPERM, EX_NOUSER, EX_OK, EX_TEMPFAIL

# `_socket`, the C module behind `socket` (which pulls in enum and selectors, ~5 ms per run), is
# imported by the handoff when it connects: an in-process delivery does not load it at all.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket as socket

DEFAULT_CONFIG_PATH = "/etc/owlery/owlery.toml"    # = owlery.settings.DEFAULT_CONFIG_PATH (tested)
DEFAULT_MESSAGE_SIZE_LIMIT = 50 * 1024 * 1024       # = lda_message_size_limit's default (tested)
DEFAULT_TIMEOUT = 60.0                              # = lda_lmtp_timeout's default (tested)
DEFAULT_LMTPD_LISTEN = "unix:/var/spool/postfix/owlery/lmtpd.sock"   # = lmtpd_listen's default (tested)

_VALUE_OPTIONS = {"-f": "sender", "-a": "recipient", "-d": "user", "-m": "mailbox", "-o": "override",
                  "-c": "config", "--config": "config", "-p": "path", "-r": "final_recipient"}
# dovecot-lda's two flags, taken so its command lines work unchanged: -e (report a refusal on
# stderr with exit 77 instead of mailing a bounce: the only way Owlery ever reports one) and -k
# (do not clear the environment: Owlery never clears it).
_FLAG_OPTIONS = {"-e": "stderr_rejection", "-k": "keep_environment"}


class Fallback(Exception):
    """Deliver in-process instead (nothing was committed on the daemon's side)."""


def parse_args(argv: list[str]) -> dict[str, str] | None:
    """The LDA options, or None when anything is unusual (the full argparse path handles it)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config="):
            key, value = "config", arg[len("--config="):]
        elif arg in _FLAG_OPTIONS:
            key, value = _FLAG_OPTIONS[arg], "1"
        elif arg in _VALUE_OPTIONS:
            if i + 1 >= len(argv):
                return None
            key, value = _VALUE_OPTIONS[arg], argv[i + 1]
            i += 1
        elif len(arg) > 2 and arg[:2] in _VALUE_OPTIONS:
            key, value = _VALUE_OPTIONS[arg[:2]], arg[2:]
        else:
            return None
        if key in out:
            return None
        out[key] = value
        i += 1
    return out


# The settings grammar of owlery.settings (parse_size, parse_duration), copied because this
# module imports nothing of ours: the fast path must never take a value the full path refuses
# (nor read one differently); what it does not take goes to the full path, which reports it.
_SIZE_PREFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "ms": 0.001}


def _number_and_unit(text: str, number_chars: str) -> tuple[str, str]:
    text = text.strip()
    end = 0
    while end < len(text) and text[end] in number_chars:
        end += 1
    return text[:end], text[end:].lstrip()


def _size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        number, unit = _number_and_unit(value, "0123456789")
        unit = unit.lower()
        prefix = unit[:1] if unit[:1] in ("k", "m", "g", "t") else ""
        if number and unit[len(prefix):] in ("", "i", "b", "ib") and int(number) > 0:
            return int(number) * _SIZE_PREFIXES[prefix]
    raise Fallback("lda_message_size_limit not a plain size")


def _seconds(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and value - value == 0:
        return float(value)           # (x - x == 0: not TOML's inf or nan)
    if isinstance(value, str):
        number, unit = _number_and_unit(value, "0123456789.")
        if unit in _DURATION_UNITS and all(p and p.isdigit() for p in number.split(".", 1)):
            seconds = float(number) * _DURATION_UNITS[unit]
            if seconds > 0:
                return seconds
    raise Fallback("lda_lmtp_timeout not a plain duration")


def read_config(path: str | None) -> dict:
    """The few keys the fast path needs; {} when the default file does not exist."""
    explicit = path is not None
    try:
        with open(path or DEFAULT_CONFIG_PATH, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if explicit:
            raise Fallback("no such file") from None
        return {}
    except OSError:
        raise Fallback("unreadable settings") from None
    if b"lda_" not in raw and b"lmtpd_listen" not in raw:
        return {}                     # nothing of ours: skip parsing altogether
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Fallback("bad settings file") from None   # the full path reports it with file:line
    simple = scan_simple(text)
    if simple is not None:
        return simple
    import tomllib                    # ~7 ms: only for files the line scan cannot vouch for
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise Fallback("bad settings file") from None


FAST_KEYS = ("lda_lmtp_endpoint", "lda_message_size_limit", "lda_lmtp_timeout", "lda_lmtp_handoff",
             "lmtpd_listen")


def handoff_endpoint(config: dict) -> str | None:
    """Where to find lmtpd: lda_lmtp_endpoint, else lmtpd_listen's first entry the LDA can
    connect to (a wildcard address means loopback), else lmtpd's default socket; None when
    lda_lmtp_handoff is false or lmtpd only listens where the LDA cannot connect (systemd:)."""
    handoff = config.get("lda_lmtp_handoff", True)
    if handoff is False:
        return None
    if handoff is not True:
        raise Fallback("lda_lmtp_handoff not true or false")
    explicit = config.get("lda_lmtp_endpoint")
    if explicit is not None:
        return explicit if isinstance(explicit, str) and explicit else None
    listen = config.get("lmtpd_listen", [DEFAULT_LMTPD_LISTEN])
    for entry in [listen] if isinstance(listen, str) else listen if isinstance(listen, list) else []:
        if not isinstance(entry, str):
            continue
        if entry.startswith("unix:") and len(entry) > 5:
            return entry
        if entry.startswith("tcp:"):
            host, _, port = entry[4:].rpartition(":")
            host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)
            return f"tcp:{host}:{port}"
    return None


def scan_simple(text: str) -> dict | None:
    """Our keys from a flat settings file by a line scan, or None when the file has constructs
    (tables, multi-line strings, escapes) where only a TOML parser knows the answer."""
    if '"""' in text or "'''" in text:
        return None
    out: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            return None
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or key not in FAST_KEYS:
            continue
        value = value.strip()
        if value[:1] in ('"', "'"):
            q = value[0]
            end = value.find(q, 1)
            rest = value[end + 1:].strip() if end > 0 else "x"
            if end < 0 or "\\" in value[:end] or (rest and not rest.startswith("#")):
                return None
            out[key] = value[1:end]
        elif value.startswith("["):
            items = _simple_list(value)
            if items is None:
                return None
            out[key] = items
        else:
            word = value.split("#", 1)[0].strip()
            if word in ("true", "false"):
                out[key] = word == "true"
            elif word.isdigit():
                out[key] = int(word)
            else:
                return None
    return out


def _simple_list(value: str) -> list[str] | None:
    """A one-line list of plain quoted strings (`["unix:/a", 'tcp:h:1']  # note`), else None."""
    end = value.find("]")
    if end < 0 or "\\" in value or (value[end + 1:].strip() and not value[end + 1:].strip().startswith("#")):
        return None
    items = []
    for part in value[1:end].split(","):
        part = part.strip()
        if not part:
            continue
        if len(part) < 2 or part[0] not in "\"'" or part[-1] != part[0] or part[0] in part[1:-1]:
            return None
        items.append(part[1:-1])
    return items


def connect(endpoint: str, timeout: float) -> "socket.socket":
    import _socket as socket
    kind, _, rest = endpoint.partition(":")
    if kind == "unix" and rest:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr: object = rest
    elif kind == "tcp" and ":" in rest:
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit():
            raise Fallback(f"bad endpoint {endpoint!r}")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        addr = (host, int(port))
    else:
        raise Fallback(f"bad endpoint {endpoint!r}")
    s.settimeout(timeout)
    try:
        if kind == "tcp":
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # the message's last segment at once
        s.connect(addr)
    except OSError as e:
        s.close()
        raise Fallback(f"cannot connect: {e}") from None
    return s


class _Conn:
    def __init__(self, sock: "socket.socket"):
        self.sock = sock
        self.buf = b""
        self.lines: list[str] = []     # the last reply's lines (LHLO: the extensions)

    def reply(self) -> tuple[int, str]:
        """(code, text of the last line); raises OSError/ValueError on trouble."""
        self.lines = text = []
        while True:
            nl = self.buf.find(b"\n")
            while nl < 0:
                if len(self.buf) > 65536:
                    raise ValueError("reply line too long")
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("connection closed")
                self.buf += chunk
                nl = self.buf.find(b"\n")
            line, self.buf = self.buf[:nl].rstrip(b"\r"), self.buf[nl + 1:]
            if len(line) < 3 or not line[:3].isdigit():
                raise ValueError(f"bad reply {line[:80]!r}")
            text.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), text[-1]


def dot_stuff(message: bytes) -> bytes:
    """LF or CRLF message -> CRLF, dot-stuffed, with the terminating line."""
    data = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _mta_input():
    """sieve.delivery.mta_input's readers (split_mbox_from, strip_pipe_trace, env_recipient),
    loaded as this module was: from the package when lda_lmtp came from it, else alone from the
    file beside this one, as owlery-lda and the bare script load lda_lmtp (without the sieve
    packages' __init__ files: ~0.3 ms a message)."""
    if __package__:
        from sieve.delivery import mta_input
    else:
        mta_input = sys.modules.get("mta_input")
        if mta_input is None:
            here = __file__.rpartition("/")[0] or "."
            sys.path.insert(0, here)
            try:
                import mta_input
            finally:
                del sys.path[0]
    return mta_input.split_mbox_from, mta_input.strip_pipe_trace, mta_input.env_recipient


def _xtext_ok(address: str) -> bool:
    return all(33 <= ord(c) <= 126 and c not in "<>" for c in address)


USER_PARAM = "X-OWLERY-USER"        # = sieve.delivery.lmtp.USER_PARAM (tested)


def xtext(text: str) -> str:
    """RFC 3461 xtext of a printable-ASCII string ("+" and "=" as +2B and +3D)."""
    return "".join(f"+{ord(c):02X}" if c in "+=" else c for c in text)


def greet(endpoint: str, timeout: float) -> "_Conn":
    """Connect and read the greeting; Fallback when the daemon is not there or not ready."""
    sock = connect(endpoint, timeout)
    conn = _Conn(sock)
    try:
        code, text = conn.reply()
    except (OSError, ValueError) as e:
        sock.close()
        raise Fallback(f"greeting: {e}") from None
    if code != 220:
        sock.close()
        raise Fallback(f"greeting {code} {text}")
    return conn


def transact(conn: "_Conn", endpoint: str, sender: str, address: str, message: bytes,
             user: str | None = None) -> tuple[int, str]:
    """One LMTP transaction after the greeting; (exit status, stderr text). `user`: the
    mailbox to deliver to when it is not `address` (sent as X-OWLERY-USER).
    Raises Fallback while nothing can have been stored (before the message was sent)."""
    sock = conn.sock

    def command(line: str) -> tuple[int, str]:
        sock.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return conn.reply()
    try:
        from _socket import gethostname
        code, text = command(f"LHLO {gethostname() or 'localhost'}")
        if code != 250:
            raise Fallback(f"LHLO {code}")
        param = ""
        if user is not None:
            if not any(line.upper() == USER_PARAM for line in conn.lines):
                raise Fallback(f"lmtpd does not take {USER_PARAM}")    # an older lmtpd
            param = f" {USER_PARAM}={xtext(user)}"
        envelope = [f"MAIL FROM:<{sender}>", f"RCPT TO:<{address}>{param}", "DATA"]
        if any(line.upper() == "PIPELINING" for line in conn.lines):
            # RFC 2920: the three commands in one write, their replies read in order (one round
            # trip instead of three). Replies after a failed one are left unread: the
            # connection is closed then, and nothing can have been stored without the message.
            sock.sendall("".join(c + "\r\n" for c in envelope).encode("utf-8", "surrogateescape"))
            replies = (conn.reply() for _ in envelope)
        else:
            replies = (command(c) for c in envelope)
        code, text = next(replies)
        if code // 100 != 2:
            raise Fallback(f"MAIL {code} {text}")
        code, text = next(replies)
        if code // 100 != 2:
            return _exit_for(code, text), text    # the daemon's verdict: unknown user, directory down
        code, text = next(replies)
        if code != 354:
            raise Fallback(f"DATA {code}")
    except (OSError, ValueError) as e:
        raise Fallback(f"LMTP before DATA: {e}") from None
    try:
        sock.sendall(dot_stuff(message))
        code, text = conn.reply()
    except (OSError, ValueError) as e:
        # The daemon may or may not have stored it: let the MTA retry rather than guess.
        return EX_TEMPFAIL, f"4.4.2 owlery lda: lmtpd {endpoint}: no reply after DATA ({e})"
    try:
        sock.sendall(b"QUIT\r\n")
    except OSError:
        pass
    return _exit_for(code, text), text


def _exit_for(code: int, text: str) -> int:
    if code // 100 == 2:
        return EX_OK
    if code // 100 == 5:
        return EX_NOUSER if text.startswith("5.1.1") else EX_NOPERM
    return EX_TEMPFAIL        # 4xx, and anything odd: never a false 5xx


def run(argv: list[str], stdin=None, stderr=None) -> int | None:
    """Deliver through lmtpd; None when the in-process path must do it (stdin then untouched).
    Raises Consumed(data) when the daemon failed after stdin was read."""
    opts = parse_args(argv)
    split_mbox_from, strip_pipe_trace, env_recipient = _mta_input()
    # -m (a folder), -p (a file for stdin) and -r (a Delivered-To other than the RCPT's) are
    # the in-process path's to carry out; an empty -m is no folder (dovecot-lda: -m ${extension})
    if opts is None or opts.get("mailbox") or "path" in opts or "final_recipient" in opts:
        return None
    user = opts.get("user") or opts.get("recipient") or env_recipient()
    if not user:
        return None
    address = opts.get("recipient") or user     # the envelope recipient, as in-process
    given_sender = opts.get("sender")
    sender = "" if given_sender in (None, "<>") else given_sender
    if not _xtext_ok(user) or not _xtext_ok(address) or (sender and not _xtext_ok(sender)):
        return None
    try:
        config = read_config(opts.get("config"))
        endpoint = handoff_endpoint(config)
        if "override" in opts:
            name, eq, raw = opts["override"].partition("=")
            if name.strip() != "lda_lmtp_endpoint" or not eq:
                return None       # other overrides only apply in-process
            endpoint = raw.strip().strip("\"'")
        if not isinstance(endpoint, str) or not endpoint:
            return None
        limit = _size(config.get("lda_message_size_limit", DEFAULT_MESSAGE_SIZE_LIMIT))
        timeout = _seconds(config.get("lda_lmtp_timeout", DEFAULT_TIMEOUT))
        conn = greet(endpoint, timeout)     # before reading stdin: a fallback still has it
    except Fallback:
        return None
    try:
        stdin = sys.stdin.buffer if stdin is None else stdin
        stderr = sys.stderr if stderr is None else stderr
        data = stdin.read(limit + 1)
        if len(data) > limit:
            return _fail(stderr, EX_NOPERM, "5.3.4 Message too big for system")
        line_sender, message = split_mbox_from(data)
        if given_sender is None and line_sender:
            sender = line_sender
            if not _xtext_ok(sender):
                raise Consumed(data)
        try:
            status, text = transact(conn, endpoint, sender, address, strip_pipe_trace(message, sender, address),
                                    user if user != address else None)
        except Fallback:
            raise Consumed(data) from None
    finally:
        conn.sock.close()
    if status != EX_OK:
        return _fail(stderr, status, text)
    return EX_OK


class Consumed(Exception):
    """The daemon failed after stdin was read: deliver these bytes in-process."""

    def __init__(self, data: bytes):
        super().__init__("stdin consumed")
        self.data = data


def _fail(stderr, code: int, text: str) -> int:
    stderr.write(text.replace("\n", " ") + "\n")
    stderr.flush()
    return code


_GC_THRESHOLD_ONE_MESSAGE = 20_000


def main(argv: list[str] | None = None, fast_exit: bool = False) -> int:
    """Fast path, else the full `owlery lda`; any unexpected error is a temporary failure (75):
    an exit status outside sysexits makes Postfix's pipe(8) bounce the message (5.3.0).
    `fast_exit` (the scripts that start the process for this call alone): after a handoff,
    end the process here (exit_now) instead of returning."""
    argv = sys.argv[1:] if argv is None else argv
    data = None
    try:
        try:
            status = run(argv)
        except Consumed as c:
            status, data = None, c.data
        if status is not None:
            return exit_now(status) if fast_exit else status
        if fast_exit:
            # This process delivers one message and ends: collect garbage cycles every 20,000
            # container allocations, not 700. Loading the engine made ~14 collections that freed
            # nothing, ~5% of an in-process delivery's instructions; collection stays on, so
            # what a script's run leaves in cycles is still freed.
            import gc
            gc.set_threshold(_GC_THRESHOLD_ONE_MESSAGE, 10, 10)
        _enable_site()
        from sieve.delivery.cli import lda_main
        status = lda_main(argv, stdin_data=data, plain=parse_args(argv))
    except Exception as e:  # noqa: BLE001  any failure defers (75), never bounces
        return _fail(sys.stderr, EX_TEMPFAIL, f"4.3.0 owlery lda: internal error: {e.__class__.__name__}: {e}")
    return exit_now(status, in_process=True) if fast_exit else status


def exit_now(status: int, in_process: bool = False) -> int:
    """posix._exit(status) once stdout and stderr are flushed: the interpreter's tear-down
    (freeing every object and module) costs ~1.5 ms per message after a handoff, ~10 ms after an
    in-process delivery, and does nothing the delivery needs. After a handoff nothing is left
    to tear down (no atexit hook, thread or open file of ours: the socket is closed). After an
    in-process delivery (the message is fsynced and renamed by then, the state store committed,
    log files flushed and closed by logging's atexit hook, run here first) only while no other
    thread runs. Otherwise, or when a flush fails, return `status` and leave the exit to the
    interpreter, as before."""
    if in_process:
        threading = sys.modules.get("threading")
        if threading is not None and threading.active_count() > 1:
            return status            # the interpreter's exit waits for them
        import atexit
        atexit._run_exitfuncs()      # and clears them: a normal exit after this does not repeat them
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001  the normal exit reports it as it always did
        return status
    import posix      # built in, and already loaded by the interpreter's start-up
    posix._exit(status)
    return status     # not reached


def _enable_site() -> None:
    """Before the in-process path (which needs the whole `owlery` package, and may need
    third-party ones): when started without site (-S: `owlery-lda`, or this file as a script),
    add the package root if needed. Site itself (~16 ms with an editable install's import hook)
    runs only when an import finds nothing without it (_SiteOnMiss): the delivery needs the
    standard library and our packages alone unless the settings name a back end such as LDAP."""
    if "sieve.delivery" not in sys.modules:
        import os
        # Started as a script: find the package two levels up.
        here = os.path.dirname(os.path.abspath(__file__))
        if sys.path and sys.path[0] == here:
            del sys.path[0]          # not -I: the script's own directory must not shadow anything
        root = os.path.dirname(os.path.dirname(here))
        if root not in sys.path:
            sys.path.insert(0, root)
    if sys.flags.no_site and not _site_done and _SiteOnMiss not in sys.meta_path:
        sys.meta_path.append(_SiteOnMiss)


_site_done = False


def _run_site() -> None:
    """site.main() once, as a normal start-up would have run it (.pth files, site-packages)."""
    global _site_done
    if sys.flags.no_site and not _site_done:
        _site_done = True
        import site
        site.main()


class _SiteOnMiss:
    """The last meta-path finder: an import that nothing found runs site, then is looked up
    again (site adds directories and may add finders), so every module a normal start-up finds
    is found, and site's cost is paid only by deliveries that need it.
    Tests: tests/delivery/test_lda_lmtp.py (test_site_runs_when_an_import_needs_it)."""

    # What the standard library probes for and never finds on a POSIX CPython (copy.py tries
    # `org.python.core`, Jython's): no reason to run site.
    NEVER_HERE = frozenset({"org", "java", "nt", "msvcrt", "winreg", "_winreg", "_winapi", "_overlapped",
                            "vms_lib", "_scproxy", "_msi", "_wmi"})

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in cls.NEVER_HERE:
            return None
        if cls in sys.meta_path:
            sys.meta_path.remove(cls)
        if _site_done or not sys.flags.no_site:
            return None
        _run_site()
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                return spec
        return None


if __name__ == "__main__":
    sys.exit(main(fast_exit=True))
