"""`owlery lmtpd`: the LMTP server (Twisted adapter around sieve.delivery.lmtp) delivering via Sieve.

Each connection runs the sans-I/O `LMTPServer`; recipient lookups (directory) and
deliveries (Sieve + Maildir, blocking) run in a bounded thread pool, one job per
recipient, and the replies go back in RCPT order. An alias or group that reaches us
unexpanded is delivered to each of its mailboxes (or refused at RCPT), still with one reply
for its RCPT (sieve.delivery.users explains the rules). A user already receiving
`lmtpd_user_concurrency_limit` messages gets 451 4.3.0 for this one (the MTA retries).
What each reply is, and the per-user accounting, are decided sans-I/O in
sieve/delivery/lmtpd_core.py and sieve/delivery/lmtp.py; this module only translates.
Flow control: the connection stops reading while a lookup or delivery is pending (the
machine's `waiting`) and while the replies not yet sent pile up past the transport's buffer
(the protocol is registered as the transport's push producer), so a client that pipelines
without bound costs at most a read's worth of memory; `lmtpd_pipeline_buffer_limit` caps
what the machine holds in any case. A recipient looked up without I/O is answered in a loop,
not by nesting one call per pipelined RCPT (some 200 pipelined RCPTs overflowed the stack),
and the replies that come out together go out in one write.
Against hostile clients (tests/delivery/test_lmtpd_hostile_s20.py): only a whole command
line restarts the idle timeout, and DATA must arrive at `lmtpd_data_min_rate`
(lmtpd_core.ClientDeadline), so a drip a byte at a time is cut off with 421 4.4.2;
`lmtpd_max_connections` are open at most (one more: 421 4.3.2); a connection closed on a client that reads nothing is aborted,
any close still unfinished after CLOSE_GRACE too; each recipient's copy (Received header +
message) is built in its delivery thread, when its turn comes, not all at once. A bug is one
log line and a 4xx, never a dead connection without a reply: 451 4.3.0 for each recipient of
a transaction that could not be delivered (the session goes on), 421 4.3.0 for one in reading.
Started by owlery.daemon.run (unix/tcp/systemd socket activation, privilege drop,
SIGHUP reload, SIGTERM drain).

SECURITY: trusts its LMTP client (Postfix) for the envelope, and nothing in the message
or in the users' Sieve scripts: scripts run under CPU, memory, action, redirect and
regex budgets, generated mail (vacation, notify) has its headers cleaned, loop headers
cannot be removed. Runs as `daemon_user` (the mail store's owner, e.g. vmail). Kept as
root (which takes `daemon_allow_root`, for Maildirs of several owners), it writes every
Maildir file through directory fds without following links, chowns by descriptor, and
reads a user's script only if that user could read it (sieve/delivery/userfiles.py).
Writes only Maildirs and the state store; a
message is acknowledged only after its file is fsynced and renamed into new/ or cur/.
Talks to: the MTA (LMTP), sieve.delivery.executor. Tests: tests/delivery/test_lmtpd.py,
tests/delivery/test_lmtpd_core.py, tests/delivery/test_fail_closed.py,
tests/delivery/test_lmtp_hostile.py, tests/delivery/test_group_delivery.py, tests/e2e/test_delivery_postfix.py,
tests/delivery/test_lmtpd_hostile_s20.py.
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from owlery import log as owlery_log
from owlery import metrics
from owlery.reply import Reply
from sieve.delivery import lmtp, lmtpd_core, replies
from sieve.delivery import lmtpd_settings as _declared  # noqa: F401 - lmtpd_listen & co., declared light

log = logging.getLogger("owlery.lmtpd")


def limits_from(settings: Any) -> lmtp.Limits:
    return lmtp.Limits(
        command_line=settings.lmtpd_command_line_limit,
        message_size=settings.lmtpd_message_size_limit,
        recipients=settings.lmtpd_recipient_limit,
        errors=settings.lmtpd_bad_command_limit,
        pipeline_buffer=settings.lmtpd_pipeline_buffer_limit,
    )


RELOAD_CLOSE_DELAY = 120.0  # seconds after a reload before the replaced directory is closed
# Seconds a closing connection may take to hand its last replies to the client before it is
# aborted (a client reading one byte a minute would otherwise keep it open for ever).
CLOSE_GRACE = 30.0
REFUSAL_LOG_INTERVAL = 60.0  # connections refused by lmtpd_max_connections: one log line per this many seconds


def _close_replaced(resolver: Any, executor: Any) -> None:
    """Close a directory and state store that a reload (or stop) replaced; never raises."""
    for closer in (getattr(getattr(resolver, "directory", None), "close", None), getattr(executor, "close", None)):
        if closer is None:
            continue
        try:
            closer()
        except Exception as e:  # noqa: BLE001 - closing what nobody uses any more must not stop the daemon
            log.warning("lmtpd: closing what a reload replaced failed: %s", e)


class LMTPApplication:
    """What owlery.daemon.run drives: the factory, reload and close."""

    def __init__(
        self, settings: Any, reactor: Any, *, executor: Any = None, resolver: Any = None, threadpool: Any = None
    ):
        from sieve.delivery.executor import DeliveryExecutor
        from sieve.delivery.users import UserResolver

        self.reactor = reactor
        self.settings = settings
        self.resolver = resolver if resolver is not None else UserResolver.from_settings(settings)
        # Sieve extlists asks the resolver's directory: one cache, one set of LDAP connections.
        self.executor = (
            executor
            if executor is not None
            else DeliveryExecutor(settings, program="lmtpd", directory=getattr(self.resolver, "directory", None))
        )
        self.slots = lmtpd_core.UserSlots(settings.lmtpd_user_concurrency_limit)
        self.connections = lmtpd_core.ConnectionSlots(settings.lmtpd_max_connections)
        self._refused: tuple[float | None, int] = (None, 0)  # (last logged, refused since)
        self.deliveries = 0
        if threadpool is None:
            threadpool = ThreadPool(minthreads=1, maxthreads=settings.lmtpd_delivery_threads, name="lmtpd-delivery")
            threadpool.start()
            self._own_pool = True
        else:
            self._own_pool = False
        self.threadpool = threadpool
        self.hostname = settings.lmtpd_hostname or socket.gethostname()
        self.factory = ServerFactory.forProtocol(lambda: LMTPProtocol(self))

    def status_counts(self) -> dict[str, int]:
        """For the runner's systemd STATUS line."""
        return {"deliveries": self.deliveries}

    def reload(self, settings: Any) -> None:
        from sieve.delivery.executor import DeliveryExecutor
        from sieve.delivery.users import UserResolver

        resolver = UserResolver.from_settings(settings)  # may refuse: then nothing changes
        old = (self.resolver, self.executor)
        self.settings = settings
        self.executor = DeliveryExecutor(settings, program="lmtpd", directory=resolver.directory)
        self.resolver = resolver
        self.slots.limit = settings.lmtpd_user_concurrency_limit
        self.connections.limit = settings.lmtpd_max_connections
        self.hostname = settings.lmtpd_hostname or socket.gethostname()
        # Deliveries already running keep using the old directory and state store: close them
        # once those had time to finish (a delivery takes seconds; two minutes is ample),
        # instead of leaving their connections open until exit.
        self.reactor.callLater(RELOAD_CLOSE_DELAY, _close_replaced, *old)

    def refused(self, peer: str) -> None:
        """Log a connection refused by lmtpd_max_connections: once per REFUSAL_LOG_INTERVAL, with
        the number refused since (a flood of connections must not flood the log too)."""
        now = self.reactor.seconds()
        last, count = self._refused
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            self._refused = (last, count + 1)
            return
        self._refused = (now, 0)
        log.warning(
            "lmtpd: connection refused: rip=%s: lmtpd_max_connections reached (%d open)%s",
            peer,
            self.connections.open,
            f" ({count} more refused since the last such line)" if count else "",
        )

    def close(self) -> None:
        _close_replaced(self.resolver, self.executor)
        if self._own_pool:
            self.threadpool.stop()

    def in_thread(self, f: Any, *args: Any, **kw: Any) -> Any:
        return deferToThreadPool(self.reactor, self.threadpool, f, *args, **kw)

    def lookup_is_local(self) -> bool:
        """Without a directory (delivery_use_directory = false) a recipient's answer comes from
        the templates, with no I/O to wait for: check_recipient then runs in the reactor
        thread, saving a thread pool round trip (two context switches and a reactor wake-up per
        recipient; a pipelining client's MAIL, RCPT and DATA replies then go in one write)."""
        from sieve.delivery.users import UserResolver

        return type(self.resolver) is UserResolver and self.resolver.directory is None

    # -- recipient check (runs in a thread) ------------------------------------

    def check_recipient(self, address: str, lookup: str | None = None) -> tuple[Reply, Any]:
        """`lookup`: the user to resolve when it is not the address (X-OWLERY-USER, the LDA's -d)."""
        from sieve.delivery.users import Group

        started = time.perf_counter()
        try:
            user = self.resolver.expand(lookup or address)
        except Exception as e:  # noqa: BLE001  the lookup boundary: lmtpd_core picks the 4xx, never a 5xx
            metrics.BACKEND_ERRORS.labels("directory").inc()
            reply = lmtpd_core.lookup_failed(address, e)
            # No queue id yet at RCPT (the message comes after): Postfix's lmtp line for the
            # deferral has it, and joins this one by to=<> and time.
            owlery_log.decision("lmtpd", None, "tempfail", head="RCPT", reply=reply, to=address,
                                detail=f"lookup failed: {e}", level=owlery_log.WARNING)
            return reply, None
        finally:
            metrics.BACKEND_DURATION.labels("directory").observe(time.perf_counter() - started)
        reply, target = lmtpd_core.recipient_reply(
            address,
            user,
            is_group=isinstance(user, Group),
            refuse_groups=self.settings.delivery_alias_expansion == "refuse",
        )
        if target is None:
            owlery_log.decision(
                "lmtpd", None, "reject", head="RCPT", reply=reply, to=address,
                detail="no such user" if user is None else "alias not expanded by the MTA"
            )
        return reply, target

    # -- delivery (per recipient; the counting happens in the reactor thread) --

    def deliver(self, txn: lmtp.Transaction, peer_ip: str | None = None) -> Any:
        from sieve.delivery.executor import count_outcome, tempfail
        from sieve.delivery.users import Group

        # Log lines are keyed by the Postfix queue id, like Postfix's own.
        queue_id = lmtp.postfix_queue_id(txn.message)
        now = self.reactor.seconds()
        jobs = []
        for rcpt in txn.recipients:
            ticket = self.slots.admit(rcpt.user.address, now)
            if ticket is None:
                outcome = tempfail(rcpt.address, "user concurrency limit", text=replies.T_CONCURRENCY)
                owlery_log.decision(
                    "lmtpd",
                    queue_id,
                    outcome.action,
                    reply=outcome.reply,
                    from_=txn.sender,
                    to=rcpt.address,
                    detail=outcome.detail,
                    level=logging.WARNING,
                )
                count_outcome(outcome)
                jobs.append(defer.succeed(outcome.reply))
                continue
            trace = (
                {"lhlo": txn.lhlo, "peer_ip": peer_ip, "by": self.hostname, "recipient": rcpt.address, "now": now}
                if self.settings.lmtpd_add_received
                else None
            )
            run = self.executor.deliver_group if isinstance(rcpt.user, Group) else self.executor.deliver
            d = self.in_thread(_deliver_copy, run, txn, rcpt, trace, queue_id)
            d.addBoth(self._done, ticket, rcpt.address, queue_id)
            jobs.append(d)
        return defer.gatherResults(jobs, consumeErrors=True)

    def _done(self, result: Any, ticket: lmtpd_core.Ticket, address: str, queue_id: str | None = None) -> Reply:
        self.deliveries += 1  # per recipient, whatever the outcome (systemd STATUS line)
        self.slots.release(ticket, self.reactor.seconds())
        if not isinstance(getattr(result, "reply", result), Reply):  # a failure, not a DeliveryOutcome
            log.error("lmtpd: %sdelivery to <%s> failed: %s", f"{queue_id}: " if queue_id else "", address, result)
        return lmtpd_core.delivery_reply(address, result)


def _deliver_copy(run: Any, txn: lmtp.Transaction, rcpt: lmtp.AcceptedRecipient, trace: Any, queue_id: Any) -> Any:
    """One recipient's delivery, in a delivery thread. Its copy (its Received header, then the
    message) is built here, when its turn comes: built in the reactor for every recipient at
    once, 1,000 recipients of a 50 MB message held 50 GB until their turns."""
    message = txn.message if trace is None else lmtp.received_header(**trace) + txn.message
    return run(message, txn.sender, rcpt.address, rcpt.user, queue_id=queue_id)


class LMTPProtocol(Protocol):
    """Translates bytes and answers between Twisted and the sans-I/O machine."""

    def __init__(self, app: LMTPApplication):
        self.app = app
        self.machine: lmtp.LMTPServer | None = None
        self._holds: set[str] = set()  # why reading is paused: "pending", "output"
        self._closing = False
        self._admitted = False  # counted in app.connections
        self._deadline: lmtpd_core.ClientDeadline | None = None
        self._seen = (0, 0)  # the machine's (commands, data_octets) the deadline has counted
        self._timer: Any = None  # the deadline's DelayedCall; None while a delivery runs
        self._delivering = False
        self._abort: Any = None
        self.peer_ip: str | None = None

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer_ip = getattr(peer, "host", None)  # None for a unix socket
        if not self.app.connections.admit():
            self.app.refused(self.peer_ip or "unix")
            self.transport.write(_line(replies.R_TOO_MANY_CONNECTIONS))
            self._closing = True
            self.transport.loseConnection()
            return
        self._admitted = True
        settings = self.app.settings
        self.machine = lmtp.LMTPServer(self.app.hostname, limits_from(settings))
        # Replies piling up unread past the transport's buffer pause reading (the
        # transport calls pauseProducing/resumeProducing below).
        self.transport.registerProducer(self, True)
        self._deadline = lmtpd_core.ClientDeadline(
            settings.lmtpd_idle_timeout, settings.lmtpd_data_min_rate, self.app.reactor.seconds()
        )
        self._arm()
        # Replies are small and the client waits for each: do not let Nagle hold them.
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        self._act(self.machine.start())

    def dataReceived(self, data: bytes) -> None:
        if self.machine is None:
            return
        overflowed = self.machine.overflowed
        try:
            self._act(self.machine.feed(data))
        except Exception:  # noqa: BLE001 - a bug reading input: one log line and 421, not a dropped connection
            self._internal_error(Failure())
            return
        if self.machine is not None and self.machine.overflowed and not overflowed:
            log.warning(
                "lmtpd: client [%s] pipelined more than lmtpd_pipeline_buffer_limit "
                "while busy; closing after the pending replies",
                self.peer_ip or "unix",
            )

    # -- the deadline (lmtpd_core.ClientDeadline decides; the reactor's clock runs it) --------

    def _arm(self) -> None:
        if self._deadline is None or self._closing:
            return
        remaining = self._deadline.remaining(self.app.reactor.seconds())
        if self._timer is not None and self._timer.active():
            self._timer.reset(remaining)
        else:
            self._timer = self.app.reactor.callLater(remaining, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _progress(self) -> None:
        """Move the deadline by the whole lines and DATA octets the machine consumed."""
        m = self.machine
        if m is None or self._deadline is None:
            return
        commands, octets = self._seen
        self._seen = (m.commands, m.data_octets)
        moved = self._deadline.progress(
            self.app.reactor.seconds(), commands=m.commands - commands, data_octets=m.data_octets - octets
        )
        if moved and not self._delivering:  # a slow delivery is not a slow client
            self._arm()

    def _timed_out(self) -> None:
        self._timer = None
        if self.machine is None:
            self._close()
        else:
            self._do(self.machine.idle_timeout())  # 421 unless an answer is pending; CloseConnection

    def _close(self) -> None:
        """Close after the last replies are out; at once when the client reads nothing (they
        would never be), and in any case after CLOSE_GRACE."""
        if self._closing:
            return
        self._closing = True
        output_full = "output" in self._holds
        self._holds.clear()
        self._disarm()
        # A registered producer keeps the transport open after loseConnection: drop it first.
        if getattr(self.transport, "producer", None) is self:
            self.transport.unregisterProducer()
        if output_full:
            log.info("lmtpd: closing at once: client [%s] reads nothing", self.peer_ip or "unix")
            self.transport.abortConnection()
            return
        self.transport.loseConnection()
        self._abort = self.app.reactor.callLater(CLOSE_GRACE, self._too_slow_to_close)

    def _too_slow_to_close(self) -> None:
        self._abort = None
        log.info(
            "lmtpd: closing at once: client [%s] took more than %g s to take its last replies",
            self.peer_ip or "unix",
            CLOSE_GRACE,
        )
        self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self._disarm()
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._abort = None
        self.machine = None
        self._holds.clear()
        if self._admitted:
            self._admitted = False
            self.app.connections.release()

    # -- flow control (IPushProducer for the transport's write side) --------

    def pauseProducing(self) -> None:
        self._hold("output")

    def resumeProducing(self) -> None:
        if getattr(self.transport, "disconnecting", False):
            # Closed from outside (daemon drain) while the output was full: a registered
            # producer would keep the connection open, so let go and let the close finish.
            self._holds.discard("output")
            self._close()
            return
        self._release("output")

    def stopProducing(self) -> None:
        self._holds.clear()

    def _hold(self, why: str) -> None:
        if self.machine is None or self._closing or why in self._holds:
            return
        if not self._holds:
            self.transport.pauseProducing()
        self._holds.add(why)

    def _release(self, why: str) -> None:
        if why not in self._holds:
            return
        self._holds.discard(why)
        if not self._holds and self.machine is not None and not self._closing:
            self.transport.resumeProducing()

    def _flow(self) -> None:
        """Read only while the machine can answer at once."""
        if self.machine is not None and self.machine.waiting:
            self._hold("pending")
        else:
            self._release("pending")

    def _act(self, actions: list) -> None:
        self._do(actions)
        self._progress()
        self._flow()

    def _do(self, actions: list) -> None:
        """Carry the actions out in order. Replies that come out together go out in one write;
        a recipient looked up without I/O is answered here, in this loop (its answer's actions
        join the queue), never by a call nested per pipelined RCPT."""
        queue = collections.deque(actions)
        out: list[bytes] = []

        def flush() -> None:
            if out:
                self.transport.write(b"".join(out))
                out.clear()

        try:
            while queue:
                action = queue.popleft()
                if isinstance(action, lmtp.SendReply):
                    out.append(action.data)
                    continue
                if isinstance(action, lmtp.CheckRecipient) and self.app.lookup_is_local():
                    if self.machine is not None:
                        queue.extend(self.machine.recipient_checked(*self._check_here(action)))
                    continue
                flush()  # what follows may answer at once: the replies so far go first
                if isinstance(action, lmtp.CheckRecipient):
                    d = self.app.in_thread(self.app.check_recipient, action.address, action.user)
                    # a failed lookup is a 451; a bug in handling its answer is an internal error
                    d.addCallbacks(self._checked, self._checked_failed, errbackArgs=(action.address,))
                    d.addErrback(self._internal_error)
                elif isinstance(action, lmtp.Deliver):
                    self._delivering = True
                    self._disarm()  # a slow delivery is not an idle client
                    d = defer.maybeDeferred(self.app.deliver, action.transaction, self.peer_ip)
                    d.addCallbacks(self._delivered, self._delivery_failed)
                    d.addErrback(self._internal_error)
                elif isinstance(action, lmtp.CloseConnection):
                    self._close()
        finally:
            flush()

    def _check_here(self, action: lmtp.CheckRecipient) -> tuple[Reply, Any]:
        try:
            return self.app.check_recipient(action.address, action.user)
        except Exception as e:  # noqa: BLE001 - the lookup boundary: 451 for this recipient
            log.error("lmtpd: recipient check for <%s> failed: %s", action.address, e)
            return replies.check_failed(action.address), None

    def _checked(self, answer: tuple[Reply, Any]) -> None:
        if self.machine is None:
            return
        reply, user = answer
        self._act(self.machine.recipient_checked(reply, user))

    def _checked_failed(self, failure: Any, address: str) -> None:
        log.error("lmtpd: recipient check for <%s> failed: %s", address, failure.getErrorMessage())
        if self.machine is not None:
            self._act(self.machine.recipient_checked(replies.check_failed(address), None))

    def _delivered(self, answers: list[Reply]) -> None:
        self._delivering = False
        if self.machine is None:
            return  # the client left; the replies have no one to go to
        try:
            actions = self.machine.delivered(answers)
        except Exception:  # noqa: BLE001 - replies that do not fit the transaction: 451 each
            self._delivery_failed(Failure())
            return
        self._restart()
        self._act(actions)

    def _delivery_failed(self, failure: Any) -> None:
        """The transaction could not be delivered (a bug, not a delivery's own failure, which
        is its recipient's reply): one log line, 451 4.3.0 for each recipient, the session goes on."""
        self._delivering = False
        self._log_failure("delivery failed, 451 for each recipient", failure)
        if self.machine is None or self._closing or not self.machine.waiting:
            return
        self._restart()
        self._act(self.machine.delivery_failed())

    def _restart(self) -> None:
        """An answer the client waited for goes out: its deadline starts again."""
        if self._deadline is not None:
            self._deadline.restart(self.app.reactor.seconds())
            self._arm()

    def _log_failure(self, what: str, failure: Any) -> None:
        """One log record for a bug: what it broke, the error, its traceback (indented under it)."""
        try:
            trace = failure.getTraceback()
        except Exception:  # noqa: BLE001 - (a RecursionError's stack may not format): the line alone
            trace = ""
        log.error(
            "lmtpd: internal error: client [%s]: %s: %s%s",
            self.peer_ip or "unix",
            what,
            failure.getErrorMessage(),
            "".join(f"\n  {line}" for line in trace.rstrip("\n").splitlines()),
        )

    def _internal_error(self, failure: Any) -> None:
        self._log_failure("closing with 421", failure)
        if self.machine is not None and not self._closing:
            self._do(self.machine.internal_error())  # 421 and CloseConnection


def _line(reply: Reply) -> bytes:
    return (str(reply) + "\r\n").encode("ascii")


def build(settings: Any, reactor: Any) -> LMTPApplication:
    return LMTPApplication(settings, reactor)


def main(config_path: str | None, listen: list[str]) -> int:
    from owlery.daemon import run

    return run("lmtpd", config_path, listen, "lmtpd_listen", build)
