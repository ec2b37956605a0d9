"""owlery.ordered_replies: pipelined requests answered in order, one slow answer at a time."""

from __future__ import annotations

import pytest
from twisted.internet import defer

from owlery.ordered_replies import Final, OrderedReplies


class Conn:
    """Records what the queue does to its connection."""

    def __init__(self, answers: dict, limit: int = 16):
        self.answers = answers          # request -> bytes, Final, Deferred or an exception to raise
        self.sent: list[bytes] = []
        self.dropped: list[str | None] = []
        self.failures: list[tuple[object, object]] = []
        self.drained = 0
        self.replies = OrderedReplies(limit, self.answer, self.sent.append, self.dropped.append,
                                      lambda f, r: self.failures.append((f, r)), drained=self.drain)

    def answer(self, request):
        result = self.answers[request]
        if isinstance(result, Exception):
            raise result
        return result

    def drain(self):
        self.drained += 1

    def feed(self, *requests):
        if self.replies.add(requests):
            self.replies.pump()


def test_ready_replies_go_out_together_and_a_slow_one_holds_the_rest_back():
    slow = defer.Deferred()
    c = Conn({"a": b"A", "b": b"B", "slow": slow, "c": b"C", "d": b"D"})
    c.feed("a", "b", "slow", "c")
    assert c.sent == [b"AB"]                     # one send, before the slow request started
    assert c.replies.busy is slow and c.drained == 0
    c.feed("d")
    assert c.sent == [b"AB"]                     # still waiting: order is kept
    slow.callback(b"S")
    assert c.sent == [b"AB", b"S", b"CD"]
    assert c.replies.busy is None and c.drained == 1


def test_answers_that_fire_at_once_do_not_recurse():
    n = 5000                                     # well past Python's recursion limit
    c = Conn({i: defer.succeed(b"x") for i in range(n)}, limit=n)
    c.feed(*range(n))
    assert b"".join(c.sent) == b"x" * n and c.drained == 1


def test_an_exception_sends_what_was_ready_then_reports_and_stops():
    boom = ValueError("bug")
    c = Conn({"a": b"A", "bad": boom, "c": b"C"})
    c.feed("a", "bad", "c")
    assert c.sent == [b"A"]
    assert c.failures == [(boom, "bad")]
    assert c.replies.closed and not c.replies.queue
    c.feed("c")                                  # a closed queue takes nothing more
    assert c.sent == [b"A"]


def test_a_failed_answer_is_reported_with_its_request_and_nothing_after_it_is_answered():
    slow = defer.Deferred()
    c = Conn({"slow": slow, "c": b"C"})
    c.feed("slow", "c")
    slow.errback(defer.TimeoutError())
    [(failure, request)] = c.failures
    assert request == "slow" and failure.check(defer.TimeoutError)
    assert c.sent == [] and c.replies.closed and c.replies.busy is None


def test_final_reply_is_sent_then_the_connection_dropped():
    c = Conn({"a": b"A", "broken": Final(b"PERM"), "c": b"C"})
    c.feed("a", "broken", "c")
    assert c.sent == [b"APERM"] and c.dropped == [None] and c.replies.closed


@pytest.mark.parametrize("limit", [1, 3])
def test_more_requests_than_the_limit_drop_the_connection_unanswered(limit):
    c = Conn({i: b"x" for i in range(limit + 1)}, limit=limit)
    c.feed(*range(limit))
    assert c.dropped == []
    slow = defer.Deferred()
    c = Conn({"slow": slow, **{i: b"x" for i in range(limit + 1)}}, limit=limit)
    c.feed("slow")
    c.feed(*range(limit + 1))                    # the slow one is running: these all wait
    assert c.dropped == [f"more than {limit} requests queued"]
    slow.callback(b"late")
    assert c.sent == []                          # a dropped connection gets no more replies


def test_cancel_stops_the_running_answer_and_sends_nothing_more():
    cancelled = []
    slow = defer.Deferred(lambda d: cancelled.append(True))
    c = Conn({"slow": slow, "c": b"C"})
    c.feed("slow", "c")
    c.replies.cancel()
    assert cancelled == [True] and c.replies.busy is None
    assert c.sent == [] and c.failures == []     # the CancelledError is nobody's news
