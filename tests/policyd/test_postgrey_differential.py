"""Differential test: Owlery's greylist check against Debian's postgrey, on the same policy requests.

Postmasters replace postgrey with `policyd_checks = { RCPT = ["greylist"] }`; whatever postgrey
keys as one (client network, sender, recipient) triplet and Owlery keys apart would defer mail
again after the switch. Both servers get byte-identical requests and the test compares, per
request, the decision class (defer / pass / reject / none: no reply), that a deferral is
temporary (DEFER_IF_PERMIT or 4xx, DSN 4.x.x) and, when both pass, whether a PREPEND header
came. Reply wording differs on purpose (postgrey: "4.2.0 Greylisted, see http://...", as
Postfix sends etrn_domain; Owlery: "4.7.1 Greylisted, please try again in N seconds"), as do
the X-Greylist texts: both are recorded, only their presence is compared.

Two harnesses:
- Real time (`test_real_time`): postgrey (`--delay=2`, every other option at its default, its
  shipped /etc/postgrey whitelists) and `owlery policyd` (SQLite; the same delay, retry window,
  max age, /24 and /64 networks, auto-whitelist after 5, the same whitelist files; no skipped
  networks, as postgrey has none) over TCP. Phase A sends each case's first request, phase B
  repeats it at once (a retry before the delay: deferred), then the test waits on the clock
  until DELAY seconds after the last phase A request (bounded) and phase C sends the variant
  and the first request again: a variant that passes is the same triplet. Cases: hand-written
  (whitelists, missing attributes, other states and request types, raw protocol oddities) and
  generated from fixed seeds (GENERATED_SEEDS) over the variation families in FAMILIES.
- Warped time (`test_warped_time`): hours and days that cannot be waited for (auto-whitelist
  counted once an hour, retry window, max age). postgrey takes its clock from the request
  (`policy_test_time`, meant for its own tests; its --retry-window takes days or hours only,
  so it cannot be made short); Owlery's pipeline runs in this process on the same bytes with
  `now` passed in, on the same settings.

postgrey dies on a client_address NetAddr::IP cannot parse (it calls ->within on undef); those
cases run last (`test_postgrey_dies_on_unparseable_client_address`), each on a postgrey started
for it. Differences that are deliberate in Owlery are in DEVIATIONS, each with its reason; a
listed difference that no longer shows fails too, so the list stays true. The regression tests
at the end (no postgrey needed) pin the fixes this comparison led to.
Needs: root (postgrey drops to its user), Debian's postgrey (scripts/install-deps installs it).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import random
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.procs import ManagedProcess, free_port, wait_for_tcp, wait_until

POSTGREY = "/usr/sbin/postgrey"
DELAY = 2  # seconds, both servers
SETTLE = 0.3  # past the delay before phase C (Owlery's write-behind flushes in 20 ms)
WAIT_MAX = DELAY + 5.0  # bound on the wait for phase C
GENERATED_SEEDS = (1, 2, 3)
GENERATED_EXTRA_PER_SEED = 10  # random families drawn per seed, after one of each
HOSTNAME = "mx.test"
T_WARP = 1_900_000_000  # warped-time origin (postgrey's policy_test_time); far from the real clock


def _have_postgrey() -> str | None:
    if not os.path.exists(POSTGREY):
        return f"{POSTGREY} is not installed (scripts/install-deps installs it)"
    if os.geteuid() != 0:
        return "postgrey is started as root here (it drops to user postgrey)"
    try:
        pwd.getpwnam("postgrey")
    except KeyError:
        return "no postgrey user"
    return None


needs_postgrey = pytest.mark.skipif(_have_postgrey() is not None, reason=str(_have_postgrey()))


# --- requests -------------------------------------------------------------------------

BASE = (
    ("request", "smtpd_access_policy"),
    ("protocol_state", "RCPT"),
    ("protocol_name", "ESMTP"),
    ("client_address", "192.0.2.1"),
    ("client_name", "unknown"),
    ("reverse_client_name", "unknown"),
    ("helo_name", "helo.sender.example"),
    ("sender", "a@sender.example"),
    ("recipient", "u@rcpt.example"),
    ("recipient_count", "0"),
    ("queue_id", ""),
    ("instance", "0"),
    ("size", "0"),
    ("etrn_domain", ""),
    ("stress", ""),
    ("sasl_method", ""),
    ("sasl_username", ""),
    ("sasl_sender", ""),
    ("ccert_subject", ""),
    ("ccert_issuer", ""),
    ("ccert_fingerprint", ""),
    ("encryption_protocol", ""),
    ("encryption_cipher", ""),
    ("encryption_keysize", "0"),
    ("policy_context", ""),
)

_instances = iter(range(1, 10**9))


def req(*extra_lines: tuple[str, str], **attrs: str | bytes | None) -> bytes:
    """A request as Postfix 3.x writes it, with `attrs` replaced (None: left out) and
    `extra_lines` appended (repeated attributes). A unique instance unless given."""
    attrs.setdefault("instance", f"{next(_instances):x}.pd.0")
    lines = []
    for name, value in BASE:
        if name in attrs:
            value = attrs.pop(name)
            if value is None:
                continue
        lines.append((name, value))
    lines += [(k, v) for k, v in attrs.items() if v is not None] + list(extra_lines)
    return b"".join(_b(k) + b"=" + _b(v) + b"\n" for k, v in lines) + b"\n"


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@dataclasses.dataclass(frozen=True)
class Obs:
    """What one server answered to one request."""

    cls: str  # defer | pass | reject | none
    temporary: bool | None  # for defer: 4xx
    header: bool  # pass with PREPEND
    text: str  # the reply line as received ("" for none)


def summary(obs: Obs) -> str:
    """The compared part of an observation: its class, and "+header" for a PREPEND."""
    return obs.cls + ("+header" if obs.header else "")


def classify(reply: str | None) -> Obs:
    if reply is None:
        return Obs("none", None, False, "")
    if not reply.startswith("action="):
        return Obs("garbled", None, False, reply)
    action = reply[len("action=") :]
    verb, _, rest = action.partition(" ")
    word = verb.upper()
    dsn = re.match(r"(\d)\.\d{1,3}\.\d{1,3}\b", rest)
    if word in ("DEFER_IF_PERMIT", "DEFER", "DEFER_IF_REJECT"):
        return Obs("defer", dsn is None or dsn.group(1) == "4", False, reply)
    if re.fullmatch(r"4\d\d", word):
        return Obs("defer", dsn is None or dsn.group(1) == "4", False, reply)
    if word == "REJECT" or re.fullmatch(r"5\d\d", word):
        return Obs("reject", False, False, reply)
    if word in ("DUNNO", "OK", "PREPEND", "WARN", "INFO"):
        return Obs("pass", None, word == "PREPEND", reply)
    return Obs("garbled", None, False, reply)


class Conn:
    """One persistent client connection (Postfix's smtpd keeps one to its policy server);
    reconnects when the server closed it. `ask` returns the reply line or None (closed)."""

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self.buf = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, payload: bytes) -> None:
        self._connect().sendall(payload)

    def read_reply(self) -> str | None:
        sock = self._connect()
        while b"\n\n" not in self.buf:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.close()
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n\n", 1)
        return line.decode("utf-8", "replace")

    def ask(self, payload: bytes) -> str | None:
        try:
            self.send(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close()
            self.send(payload)
        return self.read_reply()


# --- servers ---------------------------------------------------------------------------


def owlery_config(state_lines: str) -> str:
    """Owlery's equivalents of postgrey's defaults (and --delay=DELAY)."""
    return (
        "\n".join(
            [
                'policyd_checks = { RCPT = ["greylist"] }',
                f"greylist_delay = {DELAY}",
                'greylist_retry_window = "2d"',  # --retry-window default: 2 days
                'greylist_max_age = "35d"',  # --max-age default: 35 days
                "greylist_ipv4_prefix = 24",  # --lookup-by-subnet, --ipv4cidr=24
                "greylist_ipv6_prefix = 64",  # --ipv6cidr=64
                "greylist_auto_whitelist_clients = 5",  # --auto-whitelist-clients default
                'greylist_whitelist_clients = ["/etc/postgrey/whitelist_clients", '
                '"/etc/postgrey/whitelist_clients.local"]',
                'greylist_whitelist_recipients = ["/etc/postgrey/whitelist_recipients", '
                '"/etc/postgrey/whitelist_recipients.local"]',
                "greylist_skip_networks = []",  # postgrey skips no network of its own
                f'greylist_hostname = "{HOSTNAME}"',
                state_lines,
            ]
        )
        + "\n"
    )


class Postgrey:
    """Debian's postgrey on a private port: --delay=DELAY, every other option at its default
    (shipped whitelists, 35 d max age, 2 d retry window, /24 and /64, auto-whitelist after 5)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None  # its per-write fsync is free there
        self.dbdir = Path(tempfile.mkdtemp(prefix="owlery-test-postgrey-", dir=base))
        shutil.chown(self.dbdir, "postgrey", "postgrey")
        self.proc: ManagedProcess | None = None
        self.port = 0

    def start(self) -> "Postgrey":
        self.port = free_port()
        self.proc = ManagedProcess(
            [
                POSTGREY,
                f"--inet=127.0.0.1:{self.port}",
                f"--dbdir={self.dbdir}",
                f"--delay={DELAY}",
                f"--hostname={HOSTNAME}",
            ],
            "postgrey",
            self.workdir / "postgrey.log",
        ).start()
        wait_for_tcp(self.port, timeout=30, proc=self.proc, what="postgrey")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dbdir, ignore_errors=True)


# --- cases -----------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """A request sequence. Pair cases: `first` in phase A, again in phase B, then `second` and
    `first` in phase C (after the delay). Single cases: `first` in phase A only. Raw cases:
    `raw` bytes on a fresh connection after a request that defers, then a sentinel request
    to a whitelisted recipient on the same connection (its DUNNO ends the reading)."""

    name: str
    first: bytes
    second: bytes | None = None
    raw: bytes | None = None
    family: str = ""

    def key(self) -> str:
        return self.family or self.name


def _letters(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


def _batv_tag(rnd: random.Random) -> str:
    # key digit, 3-digit day, 6 hex of hash: the 10 characters postgrey takes for a tag
    return f"{rnd.randrange(10)}{rnd.randrange(1000):03d}{rnd.getrandbits(24):06x}"


def _swapcase_some(rnd: random.Random, s: str) -> str:
    out = "".join(c.upper() if c.isalpha() and rnd.random() < 0.6 else c for c in s)
    return out if out != s else s.upper()


# Each family: (rnd, local, domain) -> (sender of the first request, sender of the variant),
# or for client and recipient families see _generated(). Locals are at most 8 letters with
# a '.' or '-' (never 10 tag-like characters), so BATV's tag side is unambiguous.
SENDER_FAMILIES = {
    "identical": lambda r, lp, d: (f"{lp}@{d}", f"{lp}@{d}"),
    "sender-local-case": lambda r, lp, d: (f"{lp}@{d}", f"{_swapcase_some(r, lp)}@{d}"),
    "sender-domain-case": lambda r, lp, d: (f"{lp}@{d}", f"{lp}@{_swapcase_some(r, d)}"),
    "sender-extension": lambda r, lp, d: (f"{lp}+{_letters(r, 4)}@{d}", f"{lp}+{_letters(r, 5)}@{d}"),
    "sender-extension-vs-plain": lambda r, lp, d: (f"{lp}@{d}", f"{lp}+{_letters(r, 5)}@{d}"),
    "sender-leading-plus": lambda r, lp, d: (f"+{_letters(r, 4)}@{d}", f"+{_letters(r, 5)}@{d}"),
    "sender-batv-prvs": lambda r, lp, d: (f"prvs={_batv_tag(r)}={lp}@{d}", f"prvs={_batv_tag(r)}={lp}@{d}"),
    "sender-batv-vs-plain": lambda r, lp, d: (f"prvs={_batv_tag(r)}={lp}@{d}", f"{lp}@{d}"),
    "sender-batv-reversed": lambda r, lp, d: (f"prvs={lp}={_batv_tag(r)}@{d}", f"prvs={lp}={_batv_tag(r)}@{d}"),
    "sender-batv-upper": lambda r, lp, d: (f"PRVS={_batv_tag(r)}={lp}@{d}", f"PRVS={_batv_tag(r)}={lp}@{d}"),
    "sender-batv-btv1": lambda r, lp, d: (f"btv1=={_batv_tag(r)}=={lp}@{d}", f"btv1=={_batv_tag(r)}=={lp}@{d}"),
    "sender-batv-msprvs": lambda r, lp, d: (f"msprvs1={_batv_tag(r)}={lp}@{d}", f"msprvs1={_batv_tag(r)}={lp}@{d}"),
    "sender-srs": lambda r, lp, d: (
        f"SRS0={_letters(r, 4)}={_letters(r, 2)}={d}={lp}@fwd.example",
        f"SRS0={_letters(r, 4)}={_letters(r, 2)}={d}={lp}@fwd.example",
    ),
    "sender-srs-digits": lambda r, lp, d: (
        f"SRS0=hash={r.randrange(10, 99)}={d}={lp}@fwd.example",
        f"SRS0=hash={r.randrange(10, 99)}={d}={lp}@fwd.example",
    ),
    "sender-verp-digits": lambda r, lp, d: (
        f"bounce-{r.randrange(10**6)}-{lp}@{d}",
        f"bounce-{r.randrange(10**6)}-{lp}@{d}",
    ),
    "sender-digits-glued": lambda r, lp, d: (
        f"{lp}x{r.randrange(100, 999)}@{d}",
        f"{lp}x{r.randrange(1000, 9999)}@{d}",
    ),
    "sender-verp-list": lambda r, lp, d: (
        f"{lp}-bounces+{_letters(r, 5)}=rcpt.example@{d}",
        f"{lp}-bounces+{_letters(r, 6)}=rcpt.example@{d}",
    ),
    "sender-verp-list-digits": lambda r, lp, d: (
        f"{lp}-bounces-{r.randrange(10**5)}-u=rcpt.example@{d}",
        f"{lp}-bounces-{r.randrange(10**5)}-u=rcpt.example@{d}",
    ),
    "sender-null": lambda r, lp, d: ("", ""),
    "sender-null-vs-named": lambda r, lp, d: ("", f"{lp}@{d}"),
    "sender-no-domain-digits": lambda r, lp, d: (f"{lp}-{r.randrange(100, 999)}", f"{lp}-{r.randrange(1000, 9999)}"),
    "sender-quoted-case": lambda r, lp, d: (f'"{lp} x"@{d}', f'"{_swapcase_some(r, lp)} x"@{d}'),
    "sender-quoted-at-extension": lambda r, lp, d: (f'"{lp}+1@x"@{d}', f'"{lp}+2@x"@{d}'),
    "sender-quoted-at-digits": lambda r, lp, d: (
        f'"{lp}@{r.randrange(10, 99)}"@{d}',
        f'"{lp}@{r.randrange(100, 999)}"@{d}',
    ),
    "sender-nonascii-case": lambda r, lp, d: (f"{lp}é@{d}", f"{lp.upper()}É@{d}"),
    "sender-nonascii-digits": lambda r, lp, d: (f"{lp}é{r.randrange(10, 99)}@{d}", f"{lp}é{r.randrange(100, 999)}@{d}"),
    "sender-unicode-digits": lambda r, lp, d: (f"{lp}-١٢{r.choice('٣٤')}@{d}", f"{lp}-٥٦{r.choice('٧٨')}@{d}"),
    "sender-latin1-digits": lambda r, lp, d: (
        f"{lp}\udce9{r.randrange(10, 99)}@{d}",
        f"{lp}\udce9{r.randrange(100, 999)}@{d}",
    ),
    "sender-long-tail": lambda r, lp, d: (
        f"{lp}{'x' * 600}{_letters(r, 5)}@{d}",
        f"{lp}{'x' * 600}{_letters(r, 6)}@{d}",
    ),
    "sender-long-domain": lambda r, lp, d: (
        f"{lp}-{'y' * 520}@{_letters(r, 5)}.example",
        f"{lp}-{'y' * 520}@{_letters(r, 6)}.example",
    ),
    "sender-long-digits": lambda r, lp, d: (
        f"{'1234567890' * 55}@{_letters(r, 5)}.example",
        f"{'1234567890' * 55}@{_letters(r, 6)}.example",
    ),
}
RECIPIENT_FAMILIES = {
    "recipient-case": lambda r, u, d: (f"{u}@{d}", f"{_swapcase_some(r, u)}@{_swapcase_some(r, d)}"),
    "recipient-extension": lambda r, u, d: (f"{u}@{d}", f"{u}+{_letters(r, 4)}@{d}"),
    "recipient-empty": lambda r, u, d: ("", ""),
    "recipient-long-tail": lambda r, u, d: (
        f"{u}{'z' * 600}{_letters(r, 4)}@{d}",
        f"{u}{'z' * 600}{_letters(r, 5)}@{d}",
    ),
}
# (rnd, case number) -> (client of the first request, client of the variant)
CLIENT_FAMILIES = {
    "client-same-24": lambda r, n: (
        f"100.{64 + n // 100}.{2 * (n % 100)}.{r.randrange(1, 128)}",
        f"100.{64 + n // 100}.{2 * (n % 100)}.{r.randrange(128, 255)}",
    ),
    "client-other-24": lambda r, n: (
        f"100.{64 + n // 100}.{2 * (n % 100)}.{r.randrange(1, 255)}",
        f"100.{64 + n // 100}.{2 * (n % 100) + 1}.{r.randrange(1, 255)}",
    ),
    "client-v6-same-64": lambda r, n: (
        f"2001:db8:{n:x}:0:{r.getrandbits(16):x}::1",
        f"2001:db8:{n:x}:0::{r.getrandbits(16):x}",
    ),
    "client-v6-other-64": lambda r, n: (f"2001:db8:{n:x}:0::1", f"2001:db8:{n:x}:1::1"),
    "client-v6-upper": lambda r, n: (f"2001:db8:{n:x}:0::ab", f"2001:DB8:{n:X}:0::AB"),
    "client-v6-expanded": lambda r, n: (f"2001:db8:{n:x}::5", f"2001:db8:{n:x}:0:0:0:0:6"),
    "client-v4-mapped": lambda r, n: (
        f"100.{64 + n // 100}.{2 * (n % 100)}.9",
        f"::ffff:100.{64 + n // 100}.{2 * (n % 100)}.9",
    ),
}
FAMILIES = [*SENDER_FAMILIES, *RECIPIENT_FAMILIES, *CLIENT_FAMILIES, "duplicate-sender"]


def _generated() -> list[Case]:
    cases = []
    n = 0
    for seed in GENERATED_SEEDS:
        rnd = random.Random(seed)
        for i in range(len(FAMILIES) + GENERATED_EXTRA_PER_SEED):
            n += 1
            # every family once per seed, then random ones
            family = FAMILIES[i] if i < len(FAMILIES) else rnd.choice(FAMILIES)
            local = rnd.choice(["{a}.{b}", "{a}-{b}", "{a}.{b}"]).format(
                a=_letters(rnd, rnd.randint(2, 4)), b=_letters(rnd, rnd.randint(2, 3))
            )
            domain = f"{_letters(rnd, 6)}.example"
            user, rdomain = f"u.{_letters(rnd, 4)}", f"{_letters(rnd, 5)}.example"
            net = f"100.{64 + n // 100}.{2 * (n % 100)}"
            c1 = c2 = f"{net}.{rnd.randrange(1, 255)}"
            s1 = s2 = f"{local}@{domain}"
            r1 = r2 = f"{user}@{rdomain}"
            extra: tuple = ()
            if family in SENDER_FAMILIES:
                s1, s2 = SENDER_FAMILIES[family](rnd, local, domain)
            elif family in RECIPIENT_FAMILIES:
                r1, r2 = RECIPIENT_FAMILIES[family](rnd, user, rdomain)
            elif family in CLIENT_FAMILIES:
                c1, c2 = CLIENT_FAMILIES[family](rnd, n)
            else:  # duplicate-sender: the last of a repeated attribute counts, on both
                extra = (("sender", s1),)
                s2 = f"other.{_letters(rnd, 4)}@{domain}"
            name = rnd.choice(["unknown", f"mta{rnd.randrange(9)}.{_letters(rnd, 5)}.example"])
            first = req(
                client_address=c1, client_name=name, reverse_client_name=name, sender=_raw(s1), recipient=_raw(r1)
            )
            second = req(
                *extra,
                client_address=c2,
                client_name=name,
                reverse_client_name=name,
                sender=_raw(s2),
                recipient=_raw(r2),
            )
            cases.append(Case(f"{family}[{seed}.{i}]", first, second, family=family))
    return cases


def _raw(value: str) -> bytes:
    """Text to bytes; lone surrogates (\\udce9) stand for raw 8-bit bytes (not UTF-8)."""
    return value.encode("utf-8", "surrogateescape")


def _hand() -> list[Case]:
    c = []

    def single(name, **attrs):
        c.append(Case(name, req(**attrs)))

    def pair(name, first, second):
        c.append(Case(name, req(**first), req(**second)))

    n = iter(range(1, 250))

    def client():
        return f"198.18.{next(n)}.7"

    # whitelist_clients: name suffix, regex, IP, partial IP, CIDR, IPv6 network
    single("wl-client-name", client_address=client(), client_name="mail.nic.fr", reverse_client_name="mail.nic.fr")
    single("wl-client-name-exact", client_address=client(), client_name="nic.fr", reverse_client_name="nic.fr")
    single("wl-client-name-upper", client_address=client(), client_name="MX.NIC.FR", reverse_client_name="MX.NIC.FR")
    single(
        "wl-client-name-suffix-only",
        client_address=client(),
        client_name="mailnic.fr",
        reverse_client_name="mailnic.fr",
    )
    single(
        "wl-client-name-trailing-dot",
        client_address=client(),
        client_name="mail.nic.fr.",
        reverse_client_name="mail.nic.fr.",
    )
    single(
        "wl-client-regex",
        client_address=client(),
        client_name="smtp12.orange.fr",
        reverse_client_name="smtp12.orange.fr",
    )
    single(
        "wl-client-regex-miss",
        client_address=client(),
        client_name="smtpx.orange.fr",
        reverse_client_name="smtpx.orange.fr",
    )
    single(
        "wl-client-reverse-name-only", client_address=client(), client_name="unknown", reverse_client_name="mail.nic.fr"
    )
    single("wl-client-ip", client_address="66.216.126.174")
    single("wl-client-ip-neighbour", client_address="66.216.126.175")
    single("wl-client-partial-ip", client_address="195.235.39.200")
    single("wl-client-cidr-in", client_address="51.4.80.31")
    single("wl-client-cidr-out", client_address="51.4.80.32")
    single("wl-client-ipv6-net", client_address="2a01:4180:4051:800::25")
    single("wl-client-ipv6-net-out", client_address="2a01:4180:4051:801::25")
    # whitelist_recipients: postmaster@, abuse@ (any domain, +extension)
    single("wl-rcpt-postmaster", client_address=client(), recipient="postmaster@rcpt.example")
    single("wl-rcpt-abuse", client_address=client(), recipient="abuse@sub.rcpt.example")
    single("wl-rcpt-case", client_address=client(), recipient="PostMaster@RCPT.example")
    single("wl-rcpt-extension", client_address=client(), recipient="postmaster+x@rcpt.example")
    single("wl-rcpt-empty-extension", client_address=client(), recipient="postmaster+@rcpt.example")
    single("wl-rcpt-bare-postmaster", client_address=client(), recipient="postmaster")
    single("wl-rcpt-prefixed", client_address=client(), recipient="xpostmaster@rcpt.example")
    single("wl-rcpt-as-sender", client_address=client(), sender="postmaster@sender.example")
    # attributes missing (Postfix always sends these four)
    single("missing-client-address", client_address=None, sender="m1@sender.example")
    single("missing-client-name", client_address=client(), client_name=None)
    single("missing-sender", client_address=client(), sender=None)
    single("missing-recipient", client_address=client(), recipient=None)
    single("missing-protocol-state", client_address=client(), protocol_state=None)
    # other protocol states
    single("state-data", client_address=client(), protocol_state="DATA")
    single("state-end-of-message", client_address=client(), protocol_state="END-OF-MESSAGE")
    single("state-mail", client_address=client(), protocol_state="MAIL")
    single("state-rcpt-lower", client_address=client(), protocol_state="rcpt")
    # authenticated clients: postgrey has no such skip (Postfix's permit_sasl_authenticated
    # usually comes first)
    single("sasl-authenticated", client_address=client(), sasl_method="PLAIN", sasl_username="alice")
    single("loopback-client", client_address="127.0.0.1")
    # a pair whose two requests differ only in attributes outside the triplet
    a = client()
    pair(
        "other-attributes-same-triplet",
        dict(client_address=a, helo_name="one.example", size="100"),
        dict(
            client_address=a, helo_name="two.example", size="99999", queue_id="ABC123", client_name="mx.renamed.example"
        ),
    )
    # two recipients of one message after the delay: one X-Greylist header (postgrey remembers
    # the last 20 instances; Owlery, per connection, as many)
    b = client()
    c.append(
        Case(
            "header-once-per-message-1",
            req(client_address=b, recipient="r1@rcpt.example"),
            req(client_address=b, recipient="r1@rcpt.example", instance="shared.instance"),
        )
    )
    c.append(
        Case(
            "header-once-per-message-2",
            req(client_address=b, recipient="r2@rcpt.example"),
            req(client_address=b, recipient="r2@rcpt.example", instance="shared.instance"),
        )
    )
    # raw protocol oddities on their own connection, then the whitelisted sentinel
    e = client()
    c.append(Case("raw-request-type-other", b"", raw=req(request="smtpd_other", client_address=e)))
    c.append(Case("raw-request-missing", b"", raw=req(request=None, client_address=e)))
    c.append(Case("raw-empty-line", b"", raw=b"\n"))
    c.append(
        Case("raw-garbage-line", b"", raw=req(client_address=e).replace(b"\nsender=", b"\nno equals sign\nsender="))
    )
    c.append(Case("raw-line-over-4096", b"", raw=req(client_address=e, sender="x" * 5000 + "@sender.example")))
    c.append(Case("raw-crlf", b"", raw=req(client_address=e, sender="crlf@sender.example").replace(b"\n", b"\r\n")))
    return c


SENTINEL_RECIPIENT = "postmaster@sentinel.example"


CASES = _hand() + _generated()
PAIR_CASES = [c for c in CASES if c.second is not None]


# --- deviations: differences that are deliberate in Owlery ----------------------------------


@dataclasses.dataclass(frozen=True)
class Deviation:
    """Per step index (see Case): (postgrey's, Owlery's) `summary`, and why Owlery differs.
    A later step of the same case may differ in consequence (the triplet one side keyed as
    new passes, with its header, in step 3): it is listed too."""

    steps: dict
    reason: str


LENIENT = (
    "Owlery keys as one what postgrey keeps apart, so it defers less, never more: a "
    "postmaster who switches sees no new deferral. "
)


def _owlery_keys_together(reason: str) -> Deviation:
    """A variant postgrey keys as a new triplet (deferred; the first request passes with its
    header in step 3) and Owlery as the same one (passed with the header in step 2)."""
    return Deviation({2: ("defer", "pass+header"), 3: ("pass+header", "pass")}, LENIENT + reason)


DEVIATIONS = {
    # keying (pair cases: step 2 is the variant after the delay)
    "sender-leading-plus": Deviation(
        {2: ("pass+header", "defer"), 3: ("pass", "pass+header")},
        "A local part that starts with '+' ('+tag@d') has no extension for Owlery (Postfix's "
        "recipient_delimiter rule; pinned by tests/policyd/test_greylist_core.py::test_normalise_sender), "
        "so '+a@d' and '+b@d' are two senders; postgrey strips from the first '+' and keys both as '@d'. "
        "The one difference in the direction that defers more after a switch: only for senders whose "
        "whole local part is a per-message '+tag', which no common VERP or BATV scheme produces.",
    ),
    "sender-batv-upper": _owlery_keys_together(
        "Owlery lower-cases before unwrapping BATV; postgrey matches 'prvs=' "
        "case-sensitively, so an upper-case PRVS= tag stays in its key."
    ),
    "sender-batv-btv1": _owlery_keys_together("Owlery also unwraps the btv1== form; postgrey knows only prvs=."),
    "sender-batv-msprvs": _owlery_keys_together(
        "Owlery also unwraps Microsoft's msprvs1= form; postgrey knows only prvs=."
    ),
    "sender-no-domain-digits": _owlery_keys_together(
        "Owlery folds digits in a sender without a domain too; postgrey "
        "substitutes only when there is an '@' (Postfix's "
        "reject_non_fqdn_sender usually refuses such senders first)."
    ),
    "sender-quoted-at-digits": _owlery_keys_together(
        "A quoted local part with '@' (\"x@12\"@d): postgrey splits at the "
        "first '@' (digits land in its domain, not folded), Owlery at the "
        "last (RFC 5321: the domain follows the last '@')."
    ),
    "sender-nonascii-case": _owlery_keys_together(
        "Owlery lower-cases non-ASCII letters too (É = é); postgrey's lc on bytes folds ASCII only."
    ),
    "client-v4-mapped": _owlery_keys_together(
        "::ffff:a.b.c.d is the IPv4 host a.b.c.d: Owlery keys its /24; postgrey "
        "takes the /64 of the mapped form (all of IPv4 in one network, a "
        "different key). Postfix reports such clients as plain IPv4 anyway."
    ),
    # single cases (step 0: phase A)
    "missing-client-address": Deviation(
        {0: ("pass", "defer")},
        "Postfix always sends client_address, client_name, sender and "
        "recipient. Owlery reads an absent attribute as empty "
        "(policyd/protocol.py) and greylists on what is there; postgrey "
        "warns and answers DUNNO (fail-open).",
    ),
    "missing-client-name": Deviation({0: ("pass", "defer")}, "As missing-client-address."),
    "missing-sender": Deviation({0: ("pass", "defer")}, "As missing-client-address (absent = null sender)."),
    "missing-recipient": Deviation({0: ("pass", "defer")}, "As missing-client-address."),
    "missing-protocol-state": Deviation(
        {0: ("defer", "pass")},
        "Owlery's greylist check runs at RCPT only (policyd_checks refuses "
        "it elsewhere); a request without protocol_state is no RCPT. "
        "postgrey ignores protocol_state.",
    ),
    "state-data": Deviation(
        {0: ("defer", "pass")},
        "Greylisting is an RCPT check in Owlery (policyd_checks refuses it at other "
        "states; at DATA Postfix sends an empty recipient when there are several). "
        "postgrey ignores protocol_state and greylists wherever it is called.",
    ),
    "state-end-of-message": Deviation({0: ("defer", "pass")}, "As state-data."),
    "state-mail": Deviation({0: ("defer", "pass")}, "As state-data."),
    "sasl-authenticated": Deviation(
        {0: ("defer", "pass")},
        "Owlery never greylists an authenticated client (a safer default: "
        "submission through the MX); postgrey has no such skip and relies on "
        "permit_sasl_authenticated coming first in smtpd_recipient_restrictions.",
    ),
    "wl-client-name-trailing-dot": Deviation(
        {0: ("defer", "pass")},
        LENIENT + "Owlery ignores a trailing dot on the client name (the same "
        "name); postgrey's suffix regex needs the name to end with the "
        "entry. Postfix never sends the dot.",
    ),
    "wl-rcpt-empty-extension": Deviation(
        {0: ("defer", "pass")},
        LENIENT + "'postmaster+@d' is postmaster with an empty extension for "
        "Owlery; postgrey's entry needs at least one character after "
        "the '+'.",
    ),
    "wl-rcpt-bare-postmaster": Deviation(
        {0: ("defer", "pass")},
        "RCPT TO:<postmaster> (no domain, which RFC 5321 requires a "
        "server to accept) matches 'postmaster@' in Owlery; postgrey's "
        "entry needs an '@'. Never greylisting it is the point of the "
        "entry.",
    ),
    # raw protocol cases: replies in order (0: the request that defers first, 1: the raw
    # payload, 2: the sentinel) -- Owlery closes the connection on what breaks the protocol
    # (policyd/protocol.py), Postfix then retries on a new connection; postgrey logs, skips
    # and reads on.
    "raw-empty-line": Deviation(
        {2: ("pass", "none")},
        "An empty request breaks the protocol: Owlery closes the connection "
        "(policyd/protocol.py); postgrey ignores it and answers the next request.",
    ),
    "raw-request-type-other": Deviation({2: ("pass", "none")}, "As raw-empty-line: not smtpd_access_policy."),
    "raw-request-missing": Deviation({2: ("pass", "none")}, "As raw-empty-line: no request= attribute."),
    "raw-garbage-line": Deviation(
        {1: ("defer", "none"), 2: ("pass", "none")},
        "A line without '=' breaks the protocol: Owlery closes the connection; "
        "postgrey skips the line and answers the rest of the request.",
    ),
    "raw-line-over-4096": Deviation(
        {1: ("defer", "none"), 2: ("pass", "none")},
        "Owlery refuses a line over policyd_line_length_max (4096 bytes; "
        "Postfix's own SMTP line limit is 2048) and closes; postgrey cuts "
        "values at 512 bytes and answers.",
    ),
}

WARP_DEVIATIONS = {
    "max-age": Deviation(
        {3: ("pass", "defer")},
        "postgrey forgets a triplet older than --max-age only in its maintenance "
        "(02:00 to 07:00 local time, once a day, and never on a warped clock); until "
        "then it still passes. Owlery forgets it at max age to the second. Both "
        "greylist it again after the clean-up.",
    ),
}


# --- real-time harness -----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_time(tmp_path_factory):
    """Run every case once against both servers; {case name: [(postgrey Obs, Owlery Obs), ...]}."""
    work = tmp_path_factory.mktemp("postgrey-diff")
    pg = Postgrey(work).start()
    od = OwleryDaemons(
        work / "owlery", which=("policyd",), extra_config=owlery_config(f'state_sqlite_path = "{work}/state.sqlite"')
    ).start()
    ports = {"postgrey": pg.port, "owlery": od.ports["policyd"]}
    conns = {k: Conn(p) for k, p in ports.items()}
    results: dict[str, list] = {c.name: [] for c in CASES}

    def both(case: Case, payload: bytes) -> None:
        results[case.name].append(tuple(classify(conns[k].ask(payload)) for k in ("postgrey", "owlery")))

    try:
        # Phase A: first sight of every case (pair cases first, so phase C can start soonest)
        ordered = PAIR_CASES + [c for c in CASES if c.second is None and c.raw is None]
        last_first = {}
        for case in ordered:
            both(case, case.first)
            last_first[case.name] = time.monotonic()
            if case.second is not None:  # Phase B: the retry before the delay
                both(case, case.first)
        for case in (c for c in CASES if c.raw is not None):
            results[case.name] = _raw_exchange(ports, case)
        # Phase C: once the delay is over for the last pair case's first sight (wall clock
        # for both: postgrey counts whole seconds of time(), so a full DELAY of real time is
        # always enough for it too)
        ready = max(last_first[c.name] for c in PAIR_CASES) + DELAY + SETTLE
        wait_until(lambda: time.monotonic() >= ready, WAIT_MAX, "the greylist delay to pass", interval=0.05)
        for case in PAIR_CASES:
            both(case, case.second)
            both(case, case.first)
        assert pg.proc.alive(), "postgrey died during the run:\n" + pg.proc.log_tail()
        yield results
    finally:
        for conn in conns.values():
            conn.close()
        od.stop()
        pg.remove()


def _raw_exchange(ports: dict, case: Case) -> list:
    """On one fresh connection per server: a request that defers, then the raw payload and the
    sentinel in one write. Replies in order: [opener, payload, sentinel], None where none came.
    The sentinel's DUNNO (a whitelisted recipient) ends the reading; no payload here is
    answered DUNNO (each is a new triplet or none), so a DUNNO right after the opener means
    the payload got no reply."""
    opener = req(client_address="198.18.250.1", sender=f"opener-{case.name}@sender.example")
    sentinel = req(client_address="198.18.250.2", recipient=SENTINEL_RECIPIENT)
    out = {}
    for server, port in ports.items():
        conn = Conn(port)
        replies = [conn.ask(opener)]
        try:
            conn.send(case.raw + sentinel)
        except (BrokenPipeError, ConnectionResetError):
            conn.close()
        later = []
        while conn.sock is not None and len(later) < 3:
            reply = conn.read_reply()
            later.append(reply)
            if reply is None or reply == "action=DUNNO":
                break
        conn.close()
        if later[-1:] == ["action=DUNNO"]:
            payload = later[0] if len(later) == 2 else None
            replies += [payload, later[-1]]
        else:
            replies += (later + [None, None])[:2]
        out[server] = [classify(r) for r in replies]
    return list(zip(out["postgrey"], out["owlery"]))


def _compare(name: str, key: str, observed: list, deviations: dict) -> list[str]:
    """Problems: a class difference not listed, a listed one that no longer shows, a deferral
    that is not temporary, a header on one side only."""
    problems = []
    dev = deviations.get(key)
    for i, (pg, ow) in enumerate(observed):
        expected = dev.steps.get(i) if dev else None
        got = (summary(pg), summary(ow))
        if expected is not None:
            if got != expected:
                problems.append(
                    f"{name} step {i}: listed deviation {expected} but saw {got}: "
                    f"postgrey {pg.text!r}, owlery {ow.text!r}"
                )
            continue
        if pg.cls != ow.cls:
            problems.append(f"{name} step {i}: postgrey {pg.cls} ({pg.text!r}) but owlery {ow.cls} ({ow.text!r})")
            continue
        if pg.cls == "defer" and not (pg.temporary and ow.temporary):
            problems.append(f"{name} step {i}: a deferral that is not temporary: {pg.text!r} / {ow.text!r}")
        if pg.cls == "pass" and pg.header != ow.header:
            problems.append(f"{name} step {i}: header on one side only: {pg.text!r} / {ow.text!r}")
        if pg.cls == "garbled":
            problems.append(f"{name} step {i}: unreadable replies {pg.text!r} / {ow.text!r}")
    if dev is not None:
        missing = [i for i in dev.steps if i >= len(observed)]
        problems += [f"{name}: listed deviation for step {i}, which never ran" for i in missing]
    return problems


@needs_postgrey
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_real_time(real_time, case):
    problems = _compare(case.name, case.key(), real_time[case.name], DEVIATIONS)
    assert not problems, "\n".join(problems)


# --- warped-time harness -----------------------------------------------------------------


@dataclasses.dataclass
class Warp:
    """A sequence of (seconds after T_WARP, request) sent to both in order."""

    name: str
    steps: list


def _warp_cases() -> list[Warp]:
    hour, day = 3600, 86400
    w = []

    def r(client, sender, recipient="u@rcpt.example", **attrs):
        return req(client_address=client, sender=sender, recipient=recipient, **attrs)

    # a retry before the delay does not move the first sight (postgrey keeps "first")
    w.append(
        Warp(
            "early-retry-keeps-first-seen",
            [
                (0, r("100.100.0.1", "a@s.example")),
                (1, r("100.100.0.1", "a@s.example")),
                (DELAY, r("100.100.0.1", "a@s.example")),
                (DELAY + 1, r("100.100.0.1", "a@s.example")),
            ],
        )
    )
    # the retry window: a first retry after it starts over; just inside, it passes
    w.append(
        Warp(
            "retry-window",
            [
                (0, r("100.100.1.1", "b@s.example")),
                (2 * day + 5, r("100.100.1.1", "b@s.example")),
                (2 * day + 5 + DELAY, r("100.100.1.1", "b@s.example")),
            ],
        )
    )
    w.append(
        Warp(
            "retry-window-inside",
            [(0, r("100.100.2.1", "c@s.example")), (2 * day - 5, r("100.100.2.1", "c@s.example"))],
        )
    )
    # max age since last seen: seen again within it, still known; 36 days unseen: see deviations
    w.append(
        Warp(
            "max-age-refreshed",
            [
                (0, r("100.100.3.1", "d@s.example")),
                (DELAY, r("100.100.3.1", "d@s.example")),
                (30 * day, r("100.100.3.1", "d@s.example")),
                (60 * day, r("100.100.3.1", "d@s.example")),
            ],
        )
    )
    w.append(
        Warp(
            "max-age",
            [
                (0, r("100.100.4.1", "e@s.example")),
                (DELAY, r("100.100.4.1", "e@s.example")),
                (DELAY + 1, r("100.100.4.1", "e@s.example")),
                (DELAY + 36 * day, r("100.100.4.1", "e@s.example")),
            ],
        )
    )
    # auto-whitelist: 5 triplets passing greylisting, an hour or more apart, whitelist the IP
    steps = []
    for k in range(5):
        t = k * (hour + 10)
        steps += [
            (t, r("100.100.5.1", f"awl{'abcde'[k]}@s.example")),
            (t + DELAY, r("100.100.5.1", f"awl{'abcde'[k]}@s.example")),
        ]
        # a brand-new triplet right after each pass: greylisted until the fifth
        steps.append((t + DELAY + 1, r("100.100.5.1", f"probe{'abcde'[k]}@s.example")))
    steps.append((5 * hour + 100, r("100.100.5.77", "neighbour@s.example")))  # per IP, not per /24
    w.append(Warp("auto-whitelist-after-5", steps))
    # passes within one hour count once
    steps = []
    for k in range(6):
        steps += [
            (k * 60, r("100.100.6.1", f"hour{'abcdef'[k]}@s.example")),
            (k * 60 + DELAY, r("100.100.6.1", f"hour{'abcdef'[k]}@s.example")),
        ]
    steps.append((600, r("100.100.6.1", "probe@s.example")))
    w.append(Warp("auto-whitelist-once-an-hour", steps))
    # exactly an hour after a counted pass counts again (postgrey: now >= last + 3600)
    steps = []
    for k in range(5):
        steps += [
            (k * hour, r("100.100.7.1", f"edge{'abcde'[k]}@s.example")),
            (k * hour + DELAY, r("100.100.7.1", f"edge{'abcde'[k]}@s.example")),
        ]
    steps.append((4 * hour + DELAY + 1, r("100.100.7.1", "probe@s.example")))
    w.append(Warp("auto-whitelist-hour-edge", steps))
    # one triplet that passed, then seen again every hour: postgrey counts passes of
    # greylisting (a triplet's first accepted retry), not repeats of a known triplet
    steps = [(0, r("100.100.8.1", "repeat@s.example")), (DELAY, r("100.100.8.1", "repeat@s.example"))]
    for k in range(1, 7):
        steps.append((k * (hour + 10), r("100.100.8.1", "repeat@s.example")))
    steps.append((7 * (hour + 10), r("100.100.8.1", "new@s.example")))
    w.append(Warp("auto-whitelist-counts-passes-not-repeats", steps))
    # the header: on the accepted retry only, once per message
    w.append(
        Warp(
            "header-on-first-pass-only",
            [
                (0, r("100.100.9.1", "h@s.example")),
                (DELAY, r("100.100.9.1", "h@s.example", instance="m1")),
                (DELAY, r("100.100.9.1", "h@s.example", instance="m1")),
                (DELAY + 5, r("100.100.9.1", "h@s.example")),
            ],
        )
    )
    return w


WARP_CASES = _warp_cases()


def _owlery_in_process(tmp: Path):
    """Owlery's pipeline on the same greylist settings as the daemon (state in memory)."""
    from twisted.internet import task

    from owlery.settings import load
    from policyd.checks import CheckContext, InlineExecutor
    from policyd.pipeline import Pipeline

    path = tmp / "owlery-warp.toml"
    path.write_text(owlery_config('state_backend = "memory"'))
    settings = load(str(path), missing_ok=False)
    clock = task.Clock()
    return Pipeline(settings, CheckContext(settings, clock, InlineExecutor()), checks={"RCPT": ["greylist"]})


def _owlery_decide(pipe, session, payload: bytes, now: float) -> str | None:
    from policyd.protocol import ProtocolError, RequestDecoder

    s = pipe.settings
    try:
        (request,) = RequestDecoder(
            line_length_max=s.policyd_line_length_max, attributes_max=s.policyd_attributes_max
        ).feed(payload)
    except ProtocolError:
        return None
    out = []
    pipe.decide(request, session, now).addBoth(out.append)
    pipe.ctx.clock.advance(1)  # the write-behind flush, as before any next request
    assert out, "decision did not complete with the inline executor"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return "action=" + out[0].action.render()


@pytest.fixture(scope="module")
def warped(tmp_path_factory):
    work = tmp_path_factory.mktemp("postgrey-warp")
    pg = Postgrey(work).start()
    pipe = _owlery_in_process(work)
    session = pipe.new_session()
    conn = Conn(pg.port)
    results = {}
    try:
        for case in WARP_CASES:
            obs = []
            for offset, payload in case.steps:
                now = T_WARP + offset
                warped_payload = payload[:-1] + f"policy_test_time={now}\n\n".encode()
                obs.append(
                    (classify(conn.ask(warped_payload)), classify(_owlery_decide(pipe, session, warped_payload, now)))
                )
            results[case.name] = obs
        assert pg.proc.alive(), "postgrey died during the run:\n" + pg.proc.log_tail()
        yield results
    finally:
        conn.close()
        pg.remove()


@needs_postgrey
@pytest.mark.parametrize("case", WARP_CASES, ids=[c.name for c in WARP_CASES])
def test_warped_time(warped, case):
    problems = _compare(case.name, case.name, warped[case.name], WARP_DEVIATIONS)
    assert not problems, "\n".join(problems)


# --- postgrey dies: one postgrey per case -----------------------------------------------

UNPARSEABLE = [" 192.0.2.1", "192.0.2.300", "", "unknown", "192.0.2.1%eth0"]


@needs_postgrey
@pytest.mark.parametrize("address", UNPARSEABLE)
def test_postgrey_dies_on_unparseable_client_address(tmp_path, address):
    """Not a difference to copy: postgrey calls ->within on the undef NetAddr::IP gives for an
    address it cannot parse and the whole server exits (every smtpd then gets "server
    configuration problem" until it is restarted). Postfix never sends such an address; Owlery
    answers as for any other (it keys the text, or the address it strips to) and stays up."""
    pg = Postgrey(tmp_path).start()
    try:
        payload = req(client_address=address, sender="dies@sender.example")
        assert Conn(pg.port).ask(payload) is None
        wait_until(lambda: not pg.proc.alive(), 10, "postgrey to exit")
    finally:
        pg.remove()
    pipe = _owlery_in_process(tmp_path)
    obs = classify(_owlery_decide(pipe, pipe.new_session(), payload, T_WARP))
    assert obs.cls == "defer" and obs.temporary, obs


# --- regressions pinned by this comparison (no postgrey needed) --------------------------


@pytest.mark.parametrize(
    "first,second",
    [
        # BATV in its reversed form prvs=local=tag: postgrey takes the side that is no tag
        ("prvs=ab.cd=0123abcdef@d.example", "prvs=ab.cd=9876fedcba@d.example"),
        ("prvs=ab.cd=0123abcdef@d.example", "ab.cd@d.example"),
        # a non-ASCII letter before digits is a word boundary for postgrey (bytes), not for \b in str
        ("josé12@d.example", "josé345@d.example"),
        # values are cut at 512 bytes before they are normalised (postgrey cuts what it reads)
        ("1234567890" * 55 + "@a.example", "1234567890" * 55 + "@b.example"),
    ],
)
def test_sender_keyed_as_postgrey_keys_it(first, second):
    from policyd.greylist_core import Greylister, GreylistPolicy

    g = Greylister(GreylistPolicy())
    assert g.key("192.0.2.1", first, "u@r.example") == g.key("192.0.2.1", second, "u@r.example")


@pytest.mark.parametrize(
    "first,second",
    [
        # Arabic-Indic digits are not the ASCII digits postgrey folds: different senders
        ("a-١٢٣@d.example", "a-٤٥٦@d.example"),
        # the BATV tag side is dropped, never the local part
        ("prvs=0123abcdef=ab.cd@d.example", "prvs=0123abcdef=xy.zw@d.example"),
    ],
)
def test_senders_postgrey_keeps_apart(first, second):
    from policyd.greylist_core import Greylister, GreylistPolicy

    g = Greylister(GreylistPolicy())
    assert g.key("192.0.2.1", first, "u@r.example") != g.key("192.0.2.1", second, "u@r.example")


def test_auto_whitelist_counts_passes_of_greylisting_not_repeats():
    """postgrey counts a client's passes of greylisting (a triplet's first accepted retry), at
    most once an hour; a triplet already known, seen again hourly, proves no retry."""
    from owlery.state.memory_store import MemoryStore
    from policyd.greylist_core import Greylister, GreylistPolicy

    store = MemoryStore()
    g = Greylister(GreylistPolicy(delay=300, auto_whitelist_clients=2))
    t = 1_700_000_000.0
    g.decide(store, "192.0.2.9", "a@s.example", "u@r.example", t)
    assert g.decide(store, "192.0.2.9", "a@s.example", "u@r.example", t + 300).outcome == "passed"
    for hour in range(1, 4):
        assert g.decide(store, "192.0.2.9", "a@s.example", "u@r.example", t + hour * 3700).outcome == "known"
    assert g.decide(store, "192.0.2.9", "b@s.example", "u@r.example", t + 5 * 3700).deferred


def test_raw_8bit_sender_is_greylisted_not_an_internal_error(tmp_path):
    """A sender with raw 8-bit bytes (not UTF-8; the protocol decoder keeps them as
    surrogates) is greylisted like any other, as postgrey does; its key used to make SQLite
    raise, so policyd disconnected without a reply on every attempt."""
    from owlery.state.sqlite_store import SQLiteStore
    from policyd.greylist_core import Greylister, GreylistPolicy

    store = SQLiteStore(str(tmp_path / "state.sqlite"))
    g = Greylister(GreylistPolicy(delay=300, auto_whitelist_clients=5))
    t = 1_700_000_000.0
    sender = b"ren\xe9@d.example".decode("utf-8", "surrogateescape")
    client = b"192.0.2.\xe9".decode("utf-8", "surrogateescape")  # never from Postfix; still no crash
    assert g.decide(store, client, sender, "u@r.example", t).deferred
    assert g.decide(store, client, sender, "u@r.example", t + 300).outcome == "passed"
