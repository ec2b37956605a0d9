"""Follow-ups of the code review (../shared/research/code-review.md) still open in round s20.

- A number setting refuses TOML's nan and inf: a nan score or delay compares false with
  everything, so `owlery config check` passed a value that silently turned a threshold or
  greylisting off (the review's "config check accepts what fails at run time", 2.9).
- The milter's SPF time budget has the policy daemon's bounds (0.1 to 20 s, RFC 7208 4.6.4):
  the two twin settings shared a name pattern but not a type (2.3 #2).
- The LDA fast path never takes a size or duration the settings grammar refuses, nor reads
  one differently (2.3 #10: its own `_size`/`_seconds` took "2M" minutes, 1e3, inf).
- Checks reach the state store through their context, not through another check
  (ratelimit imported greylist's `open_state`; 2.5 "plug-ins import each other").
- One reply catalogue per product: no reply is defined twice (REPLY_SPAM was a copy of
  REPLY_REJECT_SCORE; section 1 "Errors and replies").
- The policy and socketmap adapters' direct send falls back to Twisted's write when the
  private write state it reads is missing (2.7: adapters tied to Twisted internals).
- The milter replaces only a stale socket at its unix listen path: it deleted whatever was
  there, a file a mistyped milter_listen named or the live socket of another instance
  (2.3 #5, the listener binding written twice; owlery/daemon.py's copy still does).
"""

from __future__ import annotations

import collections
import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from owlery import settings as S

ROOT = Path(__file__).resolve().parents[2]


# --- non-finite numbers ------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "greylist_delay = nan",
    "greylist_delay = inf",
    "dns_timeout = nan",
    "milter_spf_fail_score = nan",
    "spam_evidence_scores = { RBL = nan }",
    "milter_symbol_scores = { SPF_FAIL = -inf }",
])
def test_a_number_setting_refuses_nan_and_inf(line):
    with pytest.raises(S.SettingsError, match="finite"):
        S.parse_text(line + "\n", "/etc/owlery/owlery.toml")


def test_finite_numbers_still_parse():
    s = S.parse_text("greylist_delay = 1.5\nmilter_spf_fail_score = -2\n")
    assert (s.greylist_delay, s.milter_spf_fail_score) == (1.5, -2.0)


# --- the two SPF time budgets --------------------------------------------------------------

@pytest.mark.parametrize("name", ["spf_query_time_limit", "milter_spf_query_time_limit"])
@pytest.mark.parametrize("value", ["0", '"1w"', "25", '"50ms"'])
def test_both_spf_time_budgets_refuse_values_outside_rfc_7208(name, value):
    with pytest.raises(S.SettingsError, match="0.1 to 20 seconds"):
        S.parse_text(f"{name} = {value}\n")


@pytest.mark.parametrize("name", ["spf_query_time_limit", "milter_spf_query_time_limit"])
def test_both_spf_time_budgets_take_values_inside(name):
    assert getattr(S.parse_text(f'{name} = "500ms"\n'), name) == 0.5
    assert getattr(S.parse_text(f"{name} = 20\n"), name) == 20


# --- the LDA fast path's grammar -------------------------------------------------------------

DURATIONS = ["10", "10s", "1m", "1.5m", "1h", " 5 m ", "2d", "250ms", "2M", "60S", "1e3", "1_0", "inf",
             "nan", "-5", "0", "\u0661\u0660", "\u00b2", "1.", ".5", 10, 2.5, 0, -1,
             float("inf"), float("nan"), True]
SIZES = ["10K", "10k", "10M", "1G", "1T", "10KB", "10kB", "10KiB", "10 M", "5B", "100", "0", "1.5M", "1e3",
         "\u0661\u0660", "\u00b2", "10Q", 100, 0, -1, 1.5, True]


def _settings_value(parse, value):
    try:
        return parse(value)
    except ValueError:
        return None


@pytest.mark.parametrize("value", DURATIONS, ids=repr)
def test_fast_path_durations_are_the_settings_grammar(value):
    from sieve.delivery import lda_lmtp
    try:
        fast = lda_lmtp._seconds(value)
    except lda_lmtp.Fallback:
        return                          # the full path reads (or refuses) it
    assert fast == _settings_value(S.parse_duration, value), "the fast path took a value the settings read otherwise"


@pytest.mark.parametrize("value", SIZES, ids=repr)
def test_fast_path_sizes_are_the_settings_grammar(value):
    from sieve.delivery import lda_lmtp
    try:
        fast = lda_lmtp._size(value)
    except lda_lmtp.Fallback:
        return
    assert fast == _settings_value(S.parse_size, value), "the fast path took a value the settings read otherwise"


def test_fast_path_refuses_toml_inf_from_the_file(tmp_path):
    from sieve.delivery import lda_lmtp
    path = tmp_path / "owlery.toml"
    path.write_text("lda_lmtp_timeout = inf\n")
    config = lda_lmtp.read_config(str(path))
    assert config == tomllib.loads(path.read_text())
    with pytest.raises(lda_lmtp.Fallback):
        lda_lmtp._seconds(config["lda_lmtp_timeout"])


# --- checks share the state store through the context ----------------------------------------

def test_ratelimit_does_not_load_the_greylist_check():
    code = "import sys, policyd.checks.ratelimit; print('policyd.checks.greylist' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_greylist_and_ratelimit_share_the_context_s_state_store():
    from twisted.internet import task

    from policyd.checks import CheckContext, InlineExecutor
    from policyd.checks.greylist import GreylistCheck
    from policyd.checks.ratelimit import RateLimitCheck
    ctx = CheckContext(S.Settings().replace(state_backend="memory"), task.Clock(), InlineExecutor())
    try:
        store = ctx.state
        assert GreylistCheck(ctx).store is store
        assert RateLimitCheck(ctx).store is store
        assert ctx.state is store
    finally:
        ctx.close()


# --- one reply catalogue per product -----------------------------------------------------------

@pytest.mark.parametrize("package", ["milters", "policyd", "sieve.delivery"])
def test_no_reply_is_defined_twice_in_a_product(package):
    from owlery.reply import Reply
    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    defined: dict[tuple, dict[int, str]] = collections.defaultdict(dict)
    for name in names:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.isupper() and isinstance(value, Reply):
                defined[(value.code, value.dsn, value.text)].setdefault(id(value), f"{name}.{attr}")
    twice = {key: sorted(where.values()) for key, where in defined.items() if len(where) > 1}
    assert twice == {}, "one reply, several definitions (import the first instead)"


# --- the direct send and Twisted's private write state ------------------------------------------

class _Transport:
    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(data)


def test_direct_send_falls_back_when_twisted_lacks_the_private_write_state():
    from twisted.internet.abstract import FileDescriptor

    from owlery.ordered_replies import direct_transport, send_now

    class Stripped(FileDescriptor):
        """A socket transport of a Twisted whose write buffer has other names."""

        def __init__(self):      # FileDescriptor's own sets _tempDataBuffer: a later Twisted may not
            self.socket = object()
            self.connected = 1

    raw = Stripped()
    assert direct_transport(raw) is None
    out = _Transport()
    send_now(direct_transport(raw), out, b"action=DUNNO\n\n")
    assert out.written == [b"action=DUNNO\n\n"]


# --- a unix listen path: only a stale socket is replaced -----------------------------------------

def _listen_at(path):
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    return sock


def test_the_milter_does_not_delete_a_file_its_listen_path_names(tmp_path):
    from milters.adapter import open_listener
    from owlery.endpoints import ListenPathTaken, parse_endpoint
    victim = tmp_path / "owlery.toml"
    victim.write_text("log_level = \"info\"\n")
    with pytest.raises(ListenPathTaken, match="not a socket"):
        open_listener(parse_endpoint(f"unix:{victim}"), 5)
    assert victim.read_text() == "log_level = \"info\"\n"


def test_the_milter_does_not_take_a_socket_another_process_listens_on(tmp_path):
    import socket

    from milters.adapter import open_listener
    from owlery.endpoints import ListenPathTaken, parse_endpoint
    path = tmp_path / "milter.sock"
    first = _listen_at(path)
    try:
        with pytest.raises(ListenPathTaken, match="listens on it already"):
            open_listener(parse_endpoint(f"unix:{path}"), 5)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))          # still the first listener's socket
        conn, _ = first.accept()
        conn.close()
        client.close()
    finally:
        first.close()


def test_the_milter_replaces_a_stale_socket(tmp_path):
    from milters.adapter import open_listener
    from owlery.endpoints import parse_endpoint
    path = tmp_path / "milter.sock"
    _listen_at(path).close()               # a crashed run's socket: the path stays, nobody accepts
    assert path.exists()
    sock = open_listener(parse_endpoint(f"unix:{path}:mode=600"), 5)
    try:
        assert (path.stat().st_mode & 0o777) == 0o600
    finally:
        sock.close()
