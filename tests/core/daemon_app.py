"""A tiny line-echo application run by owlery.daemon.run, for tests/core/test_daemon.py."""

import os
import sys

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


class App:
    def __init__(self, settings, reactor):
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
