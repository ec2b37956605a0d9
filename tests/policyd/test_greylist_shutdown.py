"""A real `owlery policyd` stopped with SIGTERM stores the greylist writes it answered but had
not flushed yet (greylist_flush_interval set to an hour, so only the shutdown can store them).
"""

from __future__ import annotations

from owlery.state.sqlite_store import SQLiteStore
from policyd.cli import query
from tests.harness.owlery_daemons import OwleryDaemons


def test_sigterm_stores_the_queued_first_sights(harness_dirs):
    work = harness_dirs("greylist-shutdown")
    db = work / "state.sqlite"
    config = ('policyd_checks = { RCPT = ["greylist"] }\n'
              f'state_sqlite_path = "{db}"\n'
              'greylist_flush_interval = "1h"\n'
              "greylist_whitelist_clients = []\n"
              "greylist_whitelist_recipients = []\n")
    daemons = OwleryDaemons(work / "d", which=("policyd",), extra_config=config).start()
    try:
        endpoint = f"tcp:127.0.0.1:{daemons.ports['policyd']}"
        for i in range(3):
            answer = query(endpoint, {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                                      "client_address": "192.0.2.7", "client_name": "mail.sender.example",
                                      "sender": "news@sender.example", "recipient": f"u{i}@example.test",
                                      "instance": f"a.{i}"})
            assert answer.startswith("DEFER_IF_PERMIT 4.7.1 Greylisted"), answer
        store = SQLiteStore(str(db))
        assert store.scan("gl:t:", 0) == []            # answered, not stored: the interval is an hour
        store.close()
    finally:
        daemons.stop()
    assert daemons.procs["policyd"].popen.returncode == 0
    assert "greylist: stored 3 writes at shutdown" in daemons.log("policyd")
    store = SQLiteStore(str(db))
    assert sorted(e.key.rsplit("/", 1)[1] for e in store.scan("gl:t:", 0)) == [
        "u0@example.test", "u1@example.test", "u2@example.test"]
    store.close()
