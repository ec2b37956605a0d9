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
what the machine holds in any case.
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
tests/delivery/test_lmtp_hostile.py, tests/delivery/test_group_delivery.py, tests/e2e/test_delivery_postfix.py.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.threads import deferToThreadPool
from twisted.protocols.policies import TimeoutMixin
from twisted.python.threadpool import ThreadPool

from owlery import log as owlery_log
from owlery import metrics
from owlery.errors import DirectoryUnavailable
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
        self.hostname = settings.lmtpd_hostname or socket.gethostname()
        # Deliveries already running keep using the old directory and state store: close them
        # once those had time to finish (a delivery takes seconds; two minutes is ample),
        # instead of leaving their connections open until exit.
        self.reactor.callLater(RELOAD_CLOSE_DELAY, _close_replaced, *old)

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
            if not isinstance(e, DirectoryUnavailable):
                log.warning("lmtpd: lookup of <%s> failed: %s", address, e)
            return lmtpd_core.lookup_failed(address, e), None
        finally:
            metrics.BACKEND_DURATION.labels("directory").observe(time.perf_counter() - started)
        reply, target = lmtpd_core.recipient_reply(
            address,
            user,
            is_group=isinstance(user, Group),
            refuse_groups=self.settings.delivery_alias_expansion == "refuse",
        )
        if user is not None and target is None:
            owlery_log.decision(
                "lmtpd", None, "reject", reply=reply, to=address, detail="alias not expanded by the MTA"
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
            message = txn.message
            if self.settings.lmtpd_add_received:
                message = (
                    lmtp.received_header(
                        lhlo=txn.lhlo, peer_ip=peer_ip, by=self.hostname, recipient=rcpt.address, now=now
                    )
                    + message
                )
            if isinstance(rcpt.user, Group):
                d = self.in_thread(
                    self.executor.deliver_group, message, txn.sender, rcpt.address, rcpt.user, queue_id=queue_id
                )
            else:
                d = self.in_thread(
                    self.executor.deliver, message, txn.sender, rcpt.address, rcpt.user, queue_id=queue_id
                )
            d.addBoth(self._done, ticket, rcpt.address, queue_id)
            jobs.append(d)
        return defer.gatherResults(jobs)

    def _done(self, result: Any, ticket: lmtpd_core.Ticket, address: str, queue_id: str | None = None) -> Reply:
        self.deliveries += 1  # per recipient, whatever the outcome (systemd STATUS line)
        self.slots.release(ticket, self.reactor.seconds())
        if not isinstance(getattr(result, "reply", result), Reply):  # a failure, not a DeliveryOutcome
            log.error("lmtpd: %sdelivery to <%s> failed: %s", f"{queue_id}: " if queue_id else "", address, result)
        return lmtpd_core.delivery_reply(address, result)


class LMTPProtocol(Protocol, TimeoutMixin):
    """Translates bytes and answers between Twisted and the sans-I/O machine."""

    def __init__(self, app: LMTPApplication):
        self.app = app
        self.machine: lmtp.LMTPServer | None = None
        self._holds: set[str] = set()  # why reading is paused: "pending", "output"
        self._closing = False

    def connectionMade(self) -> None:
        self.machine = lmtp.LMTPServer(self.app.hostname, limits_from(self.app.settings))
        # Replies piling up unread past the transport's buffer pause reading (the
        # transport calls pauseProducing/resumeProducing below).
        self.transport.registerProducer(self, True)
        peer = self.transport.getPeer()
        self.peer_ip = getattr(peer, "host", None)  # None for a unix socket
        self.setTimeout(self.app.settings.lmtpd_idle_timeout)
        # Replies are small and the client waits for each: do not let Nagle hold them.
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        self._act(self.machine.start())

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        if self.machine is not None:
            overflowed = self.machine.overflowed
            self._act(self.machine.feed(data))
            if self.machine is not None and self.machine.overflowed and not overflowed:
                log.warning(
                    "lmtpd: client [%s] pipelined more than lmtpd_pipeline_buffer_limit "
                    "while busy; closing after the pending replies",
                    self.peer_ip or "unix",
                )

    def timeoutConnection(self) -> None:
        if self.machine is None:
            self._close()
        else:
            self._do(self.machine.idle_timeout())  # 421 unless an answer is pending; CloseConnection

    def _close(self) -> None:
        self._closing = True
        self._holds.clear()
        # A registered producer keeps the transport open after loseConnection: drop it first.
        if getattr(self.transport, "producer", None) is self:
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self.machine = None
        self._holds.clear()

    # -- flow control (IPushProducer for the transport's write side) --------

    def pauseProducing(self) -> None:
        self._hold("output")

    def resumeProducing(self) -> None:
        if getattr(self.transport, "disconnecting", False):
            # Closed from outside (daemon drain) while the output was full: a registered
            # producer would keep the connection open, so let go and let the close finish.
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
        self._flow()

    def _do(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, lmtp.SendReply):
                self.transport.write(action.data)
            elif isinstance(action, lmtp.CheckRecipient):
                if self.app.lookup_is_local():
                    d = defer.maybeDeferred(self.app.check_recipient, action.address, action.user)
                else:
                    d = self.app.in_thread(self.app.check_recipient, action.address, action.user)
                # a failed lookup is a 451; a bug in handling its answer is an internal error
                d.addCallbacks(self._checked, self._checked_failed, errbackArgs=(action.address,))
                d.addErrback(self._internal_error)
            elif isinstance(action, lmtp.Deliver):
                self.setTimeout(None)  # a slow delivery is not an idle client
                d = self.app.deliver(action.transaction, self.peer_ip)
                d.addCallback(self._delivered)
                d.addErrback(self._internal_error)
            elif isinstance(action, lmtp.CloseConnection):
                self._close()

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
        if self.machine is None:
            return  # the client left; the replies have no one to go to
        self.setTimeout(self.app.settings.lmtpd_idle_timeout)
        self._act(self.machine.delivered(answers))

    def _internal_error(self, failure: Any) -> None:
        log.error("lmtpd: internal error: %s", failure.getTraceback())
        if self.machine is not None and not self._closing:
            self._do(self.machine.internal_error())  # 421 and CloseConnection


def build(settings: Any, reactor: Any) -> LMTPApplication:
    return LMTPApplication(settings, reactor)


def main(config_path: str | None, listen: list[str]) -> int:
    from owlery.daemon import run

    return run("lmtpd", config_path, listen, "lmtpd_listen", build)
