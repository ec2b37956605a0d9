"""A tiny line-echo application run by owlery.daemon.run, for tests/core/test_daemon.py."""

import os
import sys
import time

from twisted.internet import protocol
from twisted.protocols.basic import LineOnlyReceiver

from owlery import daemon
from owlery.settings import Endpoints, int_range, setting

COREAPP_LISTEN = setting("coreapp_listen", Endpoints, ["tcp:127.0.0.1:0"], "Where the test app listens.")
COREAPP_WORKERS = setting("coreapp_workers", int_range(1, 8), 1, "Worker processes of the test app.")


class Echo(LineOnlyReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        if line == b"pid":
            self.sendLine(str(os.getpid()).encode())
        elif line == b"level":
            self.sendLine(self.factory.app.settings.log_level.encode())
        else:
            self.sendLine(line)


def _pause_while_building():
    """With COREAPP_BUILD_GATE=DIR: say "building" (DIR/building) and wait for DIR/go, so a
    test can signal the daemon while its ports accept and the application is not built yet."""
    gate = os.environ.get("COREAPP_BUILD_GATE")
    if not gate:
        return
    open(os.path.join(gate, "building"), "w").close()
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(gate, "go")) and time.monotonic() < deadline:
        time.sleep(0.01)     # the test's own gate, not a readiness wait


class App:
    def __init__(self, settings, reactor):
        _pause_while_building()
        if os.environ.get("COREAPP_BUILD_FAILS"):
            # what a missing map file or a bad value does to a real daemon's build
            raise ValueError("coreapp: cannot build (COREAPP_BUILD_FAILS)")
        self.settings = settings
        self.factory = protocol.ServerFactory.forProtocol(Echo)
        self.factory.app = self

    def reload(self, settings):
        self.settings = settings

    def close(self):
        sys.stderr.write("app closed\n")


if __name__ == "__main__":
    sys.exit(daemon.run("coreapp", sys.argv[1], sys.argv[2:], "coreapp_listen", App,
                            workers_setting="coreapp_workers"))
