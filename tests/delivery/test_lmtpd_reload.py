"""lmtpd's SIGHUP reload closes the directory and state store it replaced, once the deliveries
still using them had time to finish (issue 14: fail closed / reload closes what it replaces)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from owlery.settings import parse_text
from sieve.delivery.lmtpd import RELOAD_CLOSE_DELAY, LMTPApplication
from tests.delivery.stand_ins import Closable as State
from tests.delivery.stand_ins import ResolverStandIn as Resolver


def test_reload_closes_the_replaced_directory_and_state_after_the_grace(tmp_path):
    (tmp_path / "mailboxes").write_text("alice@example.org\n")
    settings = parse_text(f'files_mailboxes = "{tmp_path}/mailboxes"\nstate_backend = "memory"\n')
    clock = MemoryReactorClock()
    old_resolver = Resolver()
    app = LMTPApplication(settings, clock, resolver=old_resolver, threadpool=object())
    state = State()
    app.executor._state, app.executor._owns_state = state, True      # as if a delivery had opened it
    app.reload(settings)
    assert app.resolver is not old_resolver
    clock.advance(RELOAD_CLOSE_DELAY - 1)
    assert (old_resolver.directory.closed, state.closed) == (0, 0)    # deliveries may still use them
    clock.advance(1)
    assert (old_resolver.directory.closed, state.closed) == (1, 1)


def test_an_injected_state_store_is_left_to_its_owner(tmp_path):
    from sieve.delivery.executor import DeliveryExecutor
    state = State()
    executor = DeliveryExecutor(parse_text(""), state=state)
    executor.close()
    assert state.closed == 0


def test_close_closes_the_current_directory(tmp_path):
    resolver = Resolver()
    app = LMTPApplication(parse_text('state_backend = "memory"\n'), MemoryReactorClock(), resolver=resolver,
                          threadpool=object())
    app.close()
    assert resolver.directory.closed == 1
