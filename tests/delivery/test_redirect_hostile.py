"""Redirect against hostile scripts, end to end through the executor with real Sieve scripts:
a script that deletes the loop and trace headers before redirecting cannot make a loop, a
forwarding ring cannot fan out exponentially, and a retried delivery sends no second copy even
when the message has (or the script removed) no Message-ID.

A small in-memory "network" passes every redirected copy to the target user's delivery."""

from __future__ import annotations

import pytest

from owlery.settings import parse_text
from owlery.state.memory_store import MemoryStore
from sieve.delivery import redirect
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser

MSG = (b"From: bob@remote.test\nTo: u0@example.org\nSubject: hi\nDate: Tue, 2 Jan 2024 03:04:05 +0000\n"
       b"Message-ID: <m1@remote.test>\n\nhello\n")
NO_ID = b"From: bob@remote.test\nTo: u0@example.org\nSubject: hi\nDate: Tue, 2 Jan 2024 03:04:05 +0000\n\nhello\n"
STRIP = ('require "editheader"; deleteheader "X-Sieve-Redirected-From"; deleteheader "Delivered-To"; '
         'deleteheader "Message-ID"; deleteheader "Received"; deleteheader "Auto-Submitted";\n')


class FakeSubmitter:
    def __init__(self):
        self.sent: list[tuple[str, list[str], bytes]] = []

    def send(self, env_from, rcpts, message):
        self.sent.append((env_from, list(rcpts), message))


class Network:
    """Users of one Owlery host, each with a Sieve script; redirected copies are delivered in
    order (breadth first) until none are left or `max_deliveries` is reached."""

    def __init__(self, tmp_path, scripts: dict[str, str], settings: str = ""):
        self.tmp = tmp_path
        self.submitter = FakeSubmitter()
        self.state = MemoryStore()
        self.ex = DeliveryExecutor(parse_text(settings), submitter=self.submitter, state=self.state, program="test")
        self.users = {}
        for addr, src in scripts.items():
            home = tmp_path / addr
            home.mkdir()
            (home / "active.sieve").write_text(src)
            self.users[addr] = MailUser(addr, str(home / "Maildir"), str(home / "active.sieve"))

    def deliver(self, message: bytes, sender: str, rcpt: str):
        return self.ex.deliver(message, sender, rcpt, self.users[rcpt])

    def flood(self, message: bytes, first: str, max_deliveries: int = 300) -> int:
        queue = [(message, "bob@remote.test", first)]
        done = 0
        while queue and done < max_deliveries:
            msg, sender, rcpt = queue.pop(0)
            before = len(self.submitter.sent)
            outcome = self.deliver(msg, sender, rcpt)
            assert outcome.ok, outcome
            done += 1
            for env_from, rcpts, copy in self.submitter.sent[before:]:
                queue += [(copy, env_from, r) for r in rcpts if r in self.users]
        return done

    def stored(self, addr: str) -> int:
        base = self.tmp / addr / "Maildir"
        return sum(len(list((base / sub).iterdir())) for sub in ("new", "cur") if (base / sub).exists())


def test_script_that_strips_loop_headers_cannot_make_a_redirect_loop(tmp_path):
    net = Network(tmp_path, {
        "u0@example.org": STRIP + 'redirect "u1@example.org";',
        "u1@example.org": STRIP + 'redirect "u0@example.org";',
    })
    deliveries = net.flood(MSG, "u0@example.org")
    # u0 -> u1 -> u0: the second arrival at u0 is a loop, kept in u0's INBOX
    assert deliveries == 3, deliveries                 # before: ran until the test's cap
    assert len(net.submitter.sent) == 2
    assert net.stored("u0@example.org") == 1 and net.stored("u1@example.org") == 0


def test_loop_is_detected_on_the_message_as_it_arrived(tmp_path):
    net = Network(tmp_path, {"u0@example.org": STRIP + 'redirect "u1@example.org";',
                             "u1@example.org": "keep;"})
    looped = b"X-Sieve-Redirected-From: u0@example.org\n" + MSG
    o = net.deliver(looped, "bob@remote.test", "u0@example.org")
    assert o.ok and net.submitter.sent == [] and net.stored("u0@example.org") == 1


@pytest.mark.parametrize("message, prefix", [(NO_ID, ""), (MSG, STRIP)],
                         ids=["no-message-id", "script-strips-headers"])
def test_forwarding_ring_fans_out_linearly_not_exponentially(tmp_path, message, prefix):
    users = [f"u{i}@example.org" for i in range(5)]
    scripts = {u: prefix + "".join(f'redirect "{t}";' for t in users if t != u) for u in users}
    net = Network(tmp_path, scripts)
    net.flood(message, users[0])
    copies = len(net.submitter.sent)
    # first hop: 4 copies; each later hop forwards one copy; at most redirect_max_hops hops.
    # before: 4 + 4*3 + 4*3*2 + 4*3*2*1 = 64 copies without a Message-ID to deduplicate on
    # (the loop header only stopped revisits), and no end at all once it could be deleted
    assert 4 <= copies <= 4 * 5, copies
    # nothing lost: every refused redirect was kept somewhere
    assert sum(net.stored(u) for u in users) >= 1


def test_hop_limit_keeps_a_message_redirected_too_often(tmp_path):
    net = Network(tmp_path, {"u0@example.org": 'redirect "far@other.test";'},
                  settings="redirect_max_hops = 3")
    hops = b"".join(b"X-Sieve-Redirected-From: h%d@example.net\n" % i for i in range(3))
    assert net.deliver(hops + MSG, "bob@remote.test", "u0@example.org").ok
    assert net.submitter.sent == [] and net.stored("u0@example.org") == 1
    assert net.deliver(hops[: hops.index(b"\n") + 1] + MSG, "bob@remote.test", "u0@example.org").ok
    assert len(net.submitter.sent) == 1


def test_redirect_fan_out_of_an_already_redirected_message_is_limited_and_the_rest_kept(tmp_path):
    net = Network(tmp_path, {"u0@example.org": 'redirect "a@other.test"; redirect "b@other.test";'})
    once = b"X-Sieve-Redirected-From: first@example.net\n" + MSG
    assert net.deliver(once, "bob@remote.test", "u0@example.org").ok
    assert [r for _, r, _ in net.submitter.sent] == [["a@other.test"]]
    assert net.stored("u0@example.org") == 1        # the refused copy is kept, not lost


@pytest.mark.parametrize("message, script", [
    (NO_ID, 'redirect "far@other.test";'),                      # no Message-ID at all
    (MSG, STRIP + 'redirect "far@other.test";'),                # the script deletes it
])
def test_retried_delivery_sends_no_second_copy(tmp_path, message, script):
    net = Network(tmp_path, {"u0@example.org": script})
    for attempt in range(2):
        # the MTA retries; lmtpd's Received line differs on each attempt
        trace = b"Received: from mx by lmtp; attempt %d\n" % attempt
        assert net.deliver(trace + message, "bob@remote.test", "u0@example.org").ok
    assert len(net.submitter.sent) == 1                        # before: 2


def test_different_messages_without_message_id_are_not_duplicates(tmp_path):
    net = Network(tmp_path, {"u0@example.org": 'redirect "far@other.test";'})
    other = NO_ID.replace(b"03:04:05", b"03:09:05")
    assert net.deliver(NO_ID, "bob@remote.test", "u0@example.org").ok
    assert net.deliver(other, "bob@remote.test", "u0@example.org").ok
    assert net.deliver(NO_ID, "carol@remote.test", "u0@example.org").ok
    assert len(net.submitter.sent) == 3


def test_duplicate_key_ignores_per_attempt_fields_only():
    base = redirect.duplicate_key(NO_ID, "s@x", "u@y", "t@z")
    assert redirect.duplicate_key(b"Received: a\n\tb\nReturn-Path: <s@x>\nDelivered-To: u@y\n" + NO_ID,
                                  "s@x", "u@y", "t@z") == base
    assert redirect.duplicate_key(NO_ID.replace(b"\n", b"\r\n"), "s@x", "u@y", "t@z") == base
    assert redirect.duplicate_key(NO_ID + b"more", "s@x", "u@y", "t@z") != base
    assert redirect.duplicate_key(NO_ID, "s@x", "u@y", "other@z") != base
    assert redirect.duplicate_key(NO_ID, "s2@x", "u@y", "t@z") != base
