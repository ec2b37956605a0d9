"""owlery/login_limits.py: a stranger's wrong guesses for a user must not lock the user out of the
clients they log in from (the per-login limit is a lock anyone can turn otherwise)."""

from owlery.login_limits import LoginFailures

DAY = 86400


def limiter():
    return LoginFailures(per_login=3, per_client=20, window=900)


def test_a_stranger_locks_out_new_clients_but_not_the_users_own():
    lim = limiter()
    assert lim.attempt("alice@x.test", "laptop", 0) is None
    lim.succeeded("alice@x.test", "laptop", 0)
    for t in (10, 11, 12):                                  # a stranger guesses from elsewhere
        assert lim.attempt("alice@x.test", "203.0.113.9", t) is None
    assert lim.blocked("alice@x.test", "198.51.100.1", 13) == "login"    # a new client is held
    assert lim.blocked("ALICE@x.test.", "laptop", 13) is None            # her own laptop is not
    assert lim.attempt("alice@x.test", "laptop", 14) is None


def test_a_known_client_is_still_held_by_its_own_limit():
    lim = LoginFailures(per_login=3, per_client=5, window=900)
    lim.succeeded("alice@x.test", "laptop", 0)
    for t in range(5):
        assert lim.attempt("alice@x.test", "laptop", 10 + t) is None
    assert lim.blocked("alice@x.test", "laptop", 20) == "client"


def test_the_exemption_is_per_login_and_ages_out():
    lim = limiter()
    lim.succeeded("alice@x.test", "laptop", 0)
    for t in (10, 11, 12):
        lim.attempt("bob@x.test", "203.0.113.9", t)
    assert lim.blocked("bob@x.test", "laptop", 13) == "login"           # alice's client, not bob's
    later = LoginFailures.KNOWN_CLIENT_TIME + 100
    for t in (1, 2, 3):
        lim.attempt("alice@x.test", "203.0.113.9", later + t)
    assert lim.blocked("alice@x.test", "laptop", later + 4) == "login"  # a month without a login


def test_a_failed_login_does_not_make_a_client_known():
    lim = limiter()
    for t in (1, 2, 3):
        lim.attempt("alice@x.test", "203.0.113.9", t)
    lim.succeeded("alice@x.test")                            # no client: nothing is learned
    for t in (4, 5, 6):
        lim.attempt("alice@x.test", "203.0.113.9", t)
    assert lim.blocked("alice@x.test", "203.0.113.9", 7) == "login"


def test_known_clients_are_bounded(monkeypatch):
    monkeypatch.setattr(LoginFailures, "MAX_KEYS", 10)
    lim = limiter()
    for i in range(50):
        lim.succeeded(f"u{i}@x.test", "c", i)
    assert len(lim._known) == 10
