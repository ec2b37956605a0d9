"""Listen endpoint strings (owlery.endpoints)."""

import pytest

from owlery.endpoints import parse_endpoint


@pytest.mark.parametrize("text,kind,rendered", [
    ("tcp:127.0.0.1:10040", "tcp", "tcp:127.0.0.1:10040"),
    ("tcp:[::1]:24", "tcp", "tcp:[::1]:24"),
    ("unix:/run/owlery/policyd.sock", "unix", "unix:/run/owlery/policyd.sock"),
    ("unix:/run/o.sock:mode=600", "unix", "unix:/run/o.sock"),
])
def test_good(text, kind, rendered):
    ep = parse_endpoint(text)
    assert ep.kind == kind and str(ep) == rendered


def test_unix_mode():
    assert parse_endpoint("unix:/x.sock:mode=600").mode == 0o600
    assert parse_endpoint("unix:/x.sock").mode == 0o660


def test_systemd():
    ep = parse_endpoint("systemd:owlery-policyd")
    assert ep.name == "owlery-policyd"


@pytest.mark.parametrize("text", [
    "", "tcp", "tcp:", "tcp:localhost:25", "tcp:127.0.0.1:99999", "tcp:127.0.0.1:x",
    "unix:relative.sock", "unix:/x:owner=1", "unix:/x:mode=999", "udp:127.0.0.1:53", "systemd:a b",
])
def test_bad(text):
    with pytest.raises(ValueError):
        parse_endpoint(text)
