"""The policy pipeline: runs the checks configured for a request's protocol_state, picks one action.

`Pipeline.decide(request, session, now)` returns a Deferred `Decision`. Checks run in
order; the first decisive action wins; if all pass the answer is `DUNNO`, or the first
PREPEND/WARN/INFO annotation, the others queued per `instance` in the connection's
`PolicySession` (see policyd/checks/__init__.py for the full contract): each header name goes
out once per instance; a PREPEND still queued at END-OF-MESSAGE (where Postfix ignores it)
is dropped with a warning naming the missing smtpd_data_restrictions. Temporary backend
failures become `DEFER_IF_PERMIT 4.3.0`; any other exception propagates so the adapter
can log it and disconnect without replying. One decision log line per request, and one
count in owlery_policyd_decisions_total (owlery.metrics; a no-op while metrics are off).
Talks to: the checks. Tests: tests/policyd/test_pipeline.py, tests/policyd/test_pending_headers.py
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import defer

from owlery import log as owlery_log
from owlery import metrics
from owlery.errors import PermanentFailure, TemporaryFailure
from policyd import actions
from policyd import settings as _declared  # noqa: F401 - policyd_checks & co., declared light
from policyd.actions import DUNNO, LazyPrepend, PolicyAction
from policyd.checks import Check, CheckContext, Verdict, default_checks, load_check
from policyd.protocol import PolicyRequest

log = logging.getLogger("owlery.policyd")


_ANNOTATION_FORBIDDEN_AT = {"PREPEND": frozenset({"END-OF-MESSAGE"})}


@dataclasses.dataclass(frozen=True)
class Decision:
    """The answer to one request and who gave it."""

    action: PolicyAction
    check: str | None = None
    log: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    noteworthy: bool = False        # a DUNNO logged at info (checks.Verdict)


class PolicySession:
    """Per-connection memory: queued annotations and PREPENDed header names, per instance."""

    def __init__(self, instances_max: int):
        self.instances_max = instances_max
        self._pending: collections.OrderedDict[str, list[tuple[PolicyAction, str]]] = collections.OrderedDict()
        self._headers: collections.OrderedDict[str, set[str]] = collections.OrderedDict()

    def _touch(self, table: collections.OrderedDict, instance: str, empty: Any) -> Any:
        if instance in table:
            table.move_to_end(instance)
        else:
            table[instance] = empty
            while len(table) > self.instances_max:
                table.popitem(last=False)
        return table[instance]

    def pending(self, instance: str) -> list[tuple[PolicyAction, str]]:
        return self._touch(self._pending, instance, [])

    def headers_sent(self, instance: str) -> set[str]:
        return self._touch(self._headers, instance, set())


def _header_name(action: PolicyAction) -> str:
    return action.text.split(":", 1)[0].strip().lower()


class Pipeline:
    """Checks per protocol_state, built from settings; `decide()` answers one request."""

    def __init__(self, settings: Any, ctx: CheckContext, checks: Mapping[str, Sequence[str]] | None = None):
        self.settings = settings
        self.ctx = ctx
        table = checks if checks is not None else settings.policyd_checks
        if table is None:
            table = default_checks()
        instances: dict[str, Check] = {}
        self.by_state: dict[str, list[Check]] = {}
        for state, names in table.items():
            for entry in names:
                # A name from the registry, or (tests, embedders) a Check class itself.
                cls = load_check(entry) if isinstance(entry, str) else entry
                if cls.name not in instances:
                    instances[cls.name] = cls(ctx)
                check = instances[cls.name]
                if state not in check.states:
                    raise ValueError(f"check {cls.name} cannot run at {state} "
                                     f"(only {', '.join(sorted(check.states))})")
                self.by_state.setdefault(state, []).append(check)
        self.checks = list(instances.values())
        self.in_flight = 0
        for state, checks in self.by_state.items():
            names = [c.name for c in checks]
            late = [n for n in ("dnsbl", "spf") if "greylist" in names and n in names
                    and names.index(n) > names.index("greylist")]
            if late:
                # greylist reads their results anyway; placed after it they cannot refuse a
                # client before it is greylisted (the registry order puts them first).
                log.warning("policyd: policyd_checks at %s runs %s after greylist: a client they "
                            "refuse is deferred by greylisting first", state, " and ".join(late))

    def new_session(self) -> PolicySession:
        return PolicySession(self.settings.policyd_instances_remembered)

    def decide(self, request: PolicyRequest, session: PolicySession, now: float) -> Any:  # -> Deferred[Decision]
        """The decision as a Deferred (see `decide_now` for the no-Deferred fast path)."""
        try:
            result = self.decide_now(request, session, now)
        except Exception:  # noqa: BLE001 - handed to the caller's errback, as before
            return defer.fail()
        return result if isinstance(result, defer.Deferred) else defer.succeed(result)

    def decide_now(self, request: PolicyRequest, session: PolicySession, now: float) -> Any:
        """A `Decision` at once when no check has to wait (warm caches), else a Deferred of it.

        The checks run as one coroutine, stepped here by hand: when it finishes without
        awaiting anything, no Deferred, callback chain or timer is made at all. When a
        check awaits a Deferred (a thread-pool lookup), the coroutine is handed to
        Twisted from that point. Errors of the fast path are raised to the caller.
        """
        coro = self._decide(request, session, now)
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            return stop.value
        self.in_flight += 1

        def done(result: Any) -> Any:
            self.in_flight -= 1
            return result
        return defer.Deferred.fromCoroutine(_resume(coro, waiting)).addBoth(done)

    async def _decide(self, request: PolicyRequest, session: PolicySession, now: float) -> Decision:
        state = request.protocol_state
        annotations: list[tuple[PolicyAction, str, Mapping[str, Any]]] = []
        noted: Decision | None = None           # the first noteworthy DUNNO
        for check in self.by_state.get(state, ()):
            fields: Mapping[str, Any] = {}
            try:
                result = check.evaluate(request, now)
                if not isinstance(result, (PolicyAction, Verdict)):
                    result = await result
            except TemporaryFailure as e:
                # Said once, in the decision line (a warning there, with the error's text).
                result = Verdict(actions.defer_if_permit(e.reply), {"error": f"{type(e).__name__}: {e}"})
                _count_error(check.name, "temporary")
            except defer.TimeoutError:
                result = Verdict(actions.defer_if_permit(actions.BACKEND_TIMEOUT), {"error": "timeout"})
                _count_error(check.name, "timeout")
            except PermanentFailure as e:
                result = Verdict(actions.reject(e.reply))
            if isinstance(result, Verdict):
                action, fields = result.action, result.log
                if "greylist" in fields:
                    metrics.GREYLIST_TRIPLETS.labels(fields["greylist"]).inc()
                if result.noteworthy and noted is None and action.verb == "DUNNO":
                    noted = Decision(action, check.name, fields, noteworthy=True)
            else:
                action = result
            if action.__class__ is LazyPrepend:
                annotations.append((action, check.name, fields))   # built only if it is answered
                continue
            if not isinstance(action, PolicyAction):
                raise TypeError(f"check {check.name} returned {action!r}, not a PolicyAction")
            if action.decisive:
                return self._log(request, Decision(action, check.name, fields))
            if action.verb != "DUNNO":
                annotations.append((action, check.name, fields))
        decision = self._annotate(request, session, annotations)
        return self._log(request, noted if noted is not None and decision.action.verb == "DUNNO" else decision)

    def _annotate(self, request: PolicyRequest, session: PolicySession,
                  fresh: list[tuple[PolicyAction, str, Mapping[str, Any]]]) -> Decision:
        state = request.protocol_state
        instance = request.instance
        queue = session.pending(instance) if instance else []
        queue.extend((a, name) for a, name, _ in fresh)
        sent = session.headers_sent(instance) if instance else set()
        fields = {name: f for _, name, f in fresh}
        while queue:
            action, name = queue.pop(0)
            if action.__class__ is LazyPrepend:
                action = action.resolved()
                if action.verb == "DUNNO":
                    continue
            header = _header_name(action) if action.verb == "PREPEND" else None
            if header is not None and header in sent:
                continue    # once per instance: this header already went out for the message
            if state in _ANNOTATION_FORBIDDEN_AT.get(action.verb, ()):
                # END-OF-MESSAGE is an instance's last request: nothing can carry it any more.
                # Say so (once per header), and let the annotations behind it through.
                if header is not None:
                    sent.add(header)
                log.warning("policyd: %s%s: %s %s dropped: Postfix ignores %s at %s; let "
                            "smtpd_data_restrictions call the policy service (`owlery postfix` "
                            "prints the line); check=%s instance=%s",
                            f"{request.queue_id}: " if request.queue_id else "", request.log_head(),
                            action.verb, header or action.text, action.verb, state, name, instance)
                continue
            if header is not None:
                sent.add(header)
            return Decision(action, name, fields.get(name, {}))
        return Decision(DUNNO)

    def _log(self, request: PolicyRequest, decision: Decision) -> Decision:
        action = decision.action
        metrics.POLICYD_DECISIONS.labels(request.protocol_state, decision.check or "none", action.log_word()).inc()
        level = logging.WARNING if "error" in decision.log else \
            logging.DEBUG if action.verb == "DUNNO" and not decision.noteworthy else logging.INFO
        if not log.isEnabledFor(level):
            return decision
        detail = action.render() if action.verb != "REPLY" else str(action.reply)
        if action.verb == "REPLY" and request.recipient:
            detail = f"{action.reply.code} {action.reply.dsn} <{request.recipient}>: {action.reply.text}"
        owlery_log.decision(
            "policyd", request.queue_id or None, action.log_word(), head=request.log_head(),
            reply=detail if action.verb != "DUNNO" else None, level=level,
            **{"from": request.sender, "to": request.recipient or None,
               # Postfix's own reject lines end so: with the client they identify the session
               "helo": f"<{request.attr('helo_name')}>" if request.attr("helo_name") else None,
               "sasl_username": request.sasl_username or None,
               "check": decision.check, "instance": request.instance or None, **decision.log})
        return decision

    def close(self) -> None:
        for check in self.checks:
            check.close()


def _count_error(check: str, error: str) -> None:
    metrics.POLICYD_CHECK_ERRORS.labels(check, error).inc()
    metrics.BACKEND_ERRORS.labels(metrics.CHECK_BACKENDS.get(check, check)).inc()


async def _resume(coro: Any, waiting: Any) -> Any:
    """Drive a coroutine, already stepped once and now waiting on `waiting`, to its end.

    Results and errors (cancellation and timeouts included) of what it waits on are passed
    back into it, as Twisted's own coroutine driver does.
    """
    while True:
        try:
            value = await waiting
        except Exception as e:  # noqa: BLE001 - thrown back into the checks, which decide
            try:
                waiting = coro.throw(e)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting = coro.send(value)
            except StopIteration as stop:
                return stop.value
