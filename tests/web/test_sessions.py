"""Sessions end on time and within their bound; anonymous visitors cannot push out logins; login limits forget."""

from owlery.login_limits import LoginFailures
from web.sessions import SessionStore


def test_idle_and_absolute_lifetime():
    s = SessionStore(lifetime=100, idle=30, max_sessions=10)
    a = s.login(None, "a@x.test", False, 0)
    assert s.get(a.sid, 29) is a and s.get(a.sid, 58) is a        # each use restarts the idle clock
    assert s.get(a.sid, 89) is None                                  # idle 31 s
    b = s.login(None, "b@x.test", False, 0)
    for now in range(20, 100, 20):
        assert s.get(b.sid, now) is b
    assert s.get(b.sid, 100) is None                                 # absolute lifetime


def test_anonymous_flood_keeps_logins():
    s = SessionStore(lifetime=1000, idle=1000, max_sessions=10)
    users = [s.login(None, f"u{i}@x.test", False, 0) for i in range(10)]
    for _ in range(1000):
        s.new(1)
    assert all(s.get(u.sid, 2) is u for u in users)
    assert len(s) == 20
    s.login(None, "late@x.test", False, 3)
    assert s.get(users[0].sid, 4) is None                            # least recently used login out


def test_csrf_tokens_differ_and_compare():
    s = SessionStore(lifetime=10, idle=10, max_sessions=10)
    a, b = s.new(0), s.new(0)
    assert a.csrf != b.csrf and a.sid != b.sid and len(a.sid) >= 43
    assert a.csrf_ok(a.csrf) and not a.csrf_ok(b.csrf) and not a.csrf_ok("")


def test_limiter_window_slides():
    lim = LoginFailures(per_login=2, per_client=100, window=60)
    lim.failed("A@x.test", "c1", 0)
    lim.failed("a@x.test", "c2", 30)
    assert lim.blocked("a@X.test", "c3", 31) == "login"
    assert lim.blocked("a@x.test", "c3", 61) is None                 # the first failure aged out
    lim.succeeded("a@x.test")
    assert lim.blocked("a@x.test", "c3", 31) is None
