"""Model-based test of owlery/login_limits.py's LoginFailures against a plain reference model.

A Hypothesis state machine calls attempt, failed, succeeded (with and without the client),
undo and blocked with logins of a few spellings of three accounts, from a few clients, while
the clock moves on by steps around the window and KNOWN_CLIENT_TIME. The model keeps every
failure's time in plain lists per login_key and per client, and the time of each
(login_key, client) success, and answers what the module's docstring says:
- "login" when the login has `per_login` failures within the window and its client did not
  log in as it within KNOWN_CLIENT_TIME; else "client" when the client has `per_client`;
- attempt counts a failure on both only when nothing stops it; succeeded clears the login's
  count and takes back that attempt (one failure at that time) from the client's; undo takes
  one back from both.
Every answer of the module is the model's. A second machine with MAX_KEYS = 3 checks that
forgetting the oldest keys only ever lets more through, but for a forgotten known client
(whose exemption from the per-login limit goes with it), and that no table holds more than
MAX_KEYS keys.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from owlery.login_limits import LoginFailures, login_key
from tests.fuzz.fuzzlib import HUNT

LOGINS = ["alice@example.test", "ALICE@Example.Test.", "<alice@example.test>", " alice@example.test ",
          "bob@example.test", "bob@example.test..", "carol", "Carol.", ""]
CLIENTS = ["192.0.2.1", "192.0.2.2", "2001:db8::/64", "unix"]
WINDOW = 600.0
KNOWN = LoginFailures.KNOWN_CLIENT_TIME
STEPS = st.sampled_from([0.0, 0.0, 1.0, 59.0, WINDOW - 1, WINDOW, WINDOW + 1, 3600.0, KNOWN - 1, KNOWN, KNOWN + 1])


class Model:
    def __init__(self, per_login: int, per_client: int):
        self.per_login, self.per_client = per_login, per_client
        self.logins: dict[str, list[float]] = {}
        self.clients: dict[str, list[float]] = {}
        self.known: dict[tuple[str, str], float] = {}

    def _recent(self, table, key, now):
        return [t for t in table.get(key, []) if t > now - WINDOW]

    def blocked(self, login, client, now):
        key = login_key(login)
        last = self.known.get((key, client))
        exempt = last is not None and now - last < KNOWN
        if len(self._recent(self.logins, key, now)) >= self.per_login and not exempt:
            return "login"
        if len(self._recent(self.clients, client, now)) >= self.per_client:
            return "client"
        return None

    def add(self, login, client, now):
        self.logins.setdefault(login_key(login), []).append(now)
        self.clients.setdefault(client, []).append(now)

    @staticmethod
    def take_back(table, key, now):
        if now in table.get(key, []):
            table[key].remove(now)

    def succeeded(self, login, client, now):
        self.logins.pop(login_key(login), None)
        if client is not None:
            self.take_back(self.clients, client, now)
            self.known[(login_key(login), client)] = now

    def undo(self, login, client, now):
        self.take_back(self.logins, login_key(login), now)
        self.take_back(self.clients, client, now)


class LoginFailuresMachine(RuleBasedStateMachine):
    max_keys: int | None = None
    exact = True

    @initialize(per_login=st.integers(1, 4), per_client=st.integers(1, 6))
    def start(self, per_login, per_client):
        self.now = 1_000_000.0
        self.real = LoginFailures(per_login=per_login, per_client=per_client, window=WINDOW)
        if self.max_keys is not None:
            self.real.MAX_KEYS = self.max_keys
        self.model = Model(per_login, per_client)

    def _agree(self, real, model, login, client):
        if self.exact:
            assert real == model, (real, model)
        elif real is not None and model is None:
            # forgetting failures only lets more through; forgetting a known client (the oldest
            # success out first) loses its exemption: the per-login limit applies again
            assert real == "login" and (login_key(login), client) in self.model.known, \
                f"blocked ({real}) where the model lets it through"

    @rule(step=STEPS)
    def tick(self, step):
        self.now += step

    @rule(login=st.sampled_from(LOGINS), client=st.sampled_from(CLIENTS))
    def attempt(self, login, client):
        model = self.model.blocked(login, client, self.now)
        real = self.real.attempt(login, client, self.now)
        self._agree(real, model, login, client)
        if real is None:
            self.model.add(login, client, self.now)

    @rule(login=st.sampled_from(LOGINS), client=st.sampled_from(CLIENTS))
    def blocked(self, login, client):
        self._agree(self.real.blocked(login, client, self.now), self.model.blocked(login, client, self.now), login, client)

    @rule(login=st.sampled_from(LOGINS), client=st.sampled_from(CLIENTS))
    def failed(self, login, client):
        self.real.failed(login, client, self.now)
        self.model.add(login, client, self.now)

    @rule(login=st.sampled_from(LOGINS), client=st.one_of(st.none(), st.sampled_from(CLIENTS)))
    def succeeded(self, login, client):
        if client is None:
            self.real.succeeded(login)
        else:
            self.real.succeeded(login, client, self.now)
        self.model.succeeded(login, client, self.now)

    @rule(login=st.sampled_from(LOGINS), client=st.sampled_from(CLIENTS))
    def undo(self, login, client):
        self.real.undo(login, client, self.now)
        self.model.undo(login, client, self.now)

    @invariant()
    def bounded(self):
        if self.max_keys is not None:
            for table in self.real._failures.values():          # noqa: SLF001
                assert len(table) <= self.max_keys
            assert len(self.real._known) <= self.max_keys        # noqa: SLF001


class ForgetfulLoginFailuresMachine(LoginFailuresMachine):
    max_keys = 3
    exact = False


_CI = settings(max_examples=60, stateful_step_count=40)
LoginFailuresMachine.TestCase.settings = settings() if HUNT else _CI
ForgetfulLoginFailuresMachine.TestCase.settings = settings() if HUNT else settings(max_examples=30,
                                                                                  stateful_step_count=40)
TestLoginFailures = LoginFailuresMachine.TestCase
TestForgetfulLoginFailures = ForgetfulLoginFailuresMachine.TestCase
