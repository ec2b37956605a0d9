"""SIGTERM stops `owlery policyd`, `owlery socketmap`, `owlery managesieve` and `owlery web` at
once while clients hold idle connections, and still answers a request it had begun to read.

Postfix keeps a policy connection open between requests for up to
smtpd_policy_service_max_idle (300 s) and a socketmap one for its max idle time; it sends a
request again on a new connection when it finds the old one closed (attr_clnt and
dict_sockmap retry once, "to make server restarts transparent"). The drain waited for every
open connection to close, so every stop or restart beside a running Postfix took the whole
daemon_drain_timeout (30 s; it was 15 s of tests/policyd/test_spf_deadline_s20.py). Now an
idle connection is closed at once, and a busy one right after its reply (owlery.daemon drain,
`close_if_idle` of policyd.service, socketmap.service, sieve.managesieve.service and
owlery.bounded_http, the web UI's HTTP and HTTPS connections kept alive between requests). A
ManageSieve client (a mail client keeps its connection for minutes) is told
BYE "Server shutting down." first, as Dovecot tells it (RFC 5804 1.3). Real daemons on loopback.
"""

from __future__ import annotations

import signal
import socket
import time

from policyd.protocol import encode_request
from socketmap.protocol import encode_request as encode_lookup
from tests.harness import raw_client
from tests.harness.raw_client import read_until
from tests.harness.owlery_daemons import OwleryDaemons
from tests.managesieve.helpers import ManageSieveDaemon, plain
from tests.web.server import WebServer, self_signed, token_key_file
from tests.harness.procs import wait_until
from tests.socketmap.daemon import Client, SocketmapDaemon

DRAIN_S = 20            # daemon_drain_timeout here: what an idle client held the stop for before
PROMPT_S = 5            # SIGTERM to exit with only idle clients, under a loaded CI machine


def _policy_request(n: int) -> bytes:
    return encode_request({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                           "protocol_name": "ESMTP", "client_address": "192.0.2.7",
                           "client_name": "mx.sender.example", "helo_name": "mx.sender.example",
                           "sender": "a@sender.example", "recipient": f"u{n}@example.test",
                           "instance": f"drain.{n}"})


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _server_read_all(sock: socket.socket) -> bool:
    """The server side of this loopback connection has nothing left unread in the kernel
    (/proc/net/tcp's rx_queue): the daemon has taken the bytes sent so far."""
    client_port = sock.getsockname()[1]
    server_port = sock.getpeername()[1]
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                return int(queues.split(":")[1], 16) == 0
    return False


def _stopped_within(proc, seconds: float) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.popen.wait(DRAIN_S + 10)
    return time.monotonic() - started


def _policyd(tmp_path) -> OwleryDaemons:
    return OwleryDaemons(tmp_path / "policyd", which=("policyd",),
                         extra_config=f'daemon_drain_timeout = "{DRAIN_S}s"\n').start()


def test_policyd_stops_at_once_with_idle_postfix_connections(tmp_path):
    daemons = _policyd(tmp_path)
    try:
        clients = []
        for n in range(3):
            sock = socket.create_connection(("127.0.0.1", daemons.ports["policyd"]), timeout=10)
            sock.sendall(_policy_request(n))
            assert _read_reply(sock).startswith(b"action="), n
            clients.append(sock)
        took = _stopped_within(daemons.procs["policyd"], PROMPT_S)
        assert took < PROMPT_S, f"stop took {took:.1f} s with idle connections"
        assert daemons.procs["policyd"].returncode == 0
        for sock in clients:            # closed by the server: what Postfix meets and retries
            assert sock.recv(10) == b""
            sock.close()
    finally:
        daemons.stop()


def test_policyd_answers_a_request_half_read_at_sigterm_before_it_stops(tmp_path):
    daemons = _policyd(tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", daemons.ports["policyd"]), timeout=10)
        request = _policy_request(1)
        sock.sendall(request[:40])
        proc = daemons.procs["policyd"]
        wait_until(lambda: _server_read_all(sock), 10, "policyd reads the first part")
        proc.send_signal(signal.SIGTERM)
        daemons.wait_log("policyd", "stopping: no new connections, 1 open")
        assert proc.alive(), "the half-read request was cut off"
        sock.sendall(request[40:])
        assert _read_reply(sock).startswith(b"action="), "no answer to the request begun before SIGTERM"
        assert sock.recv(10) == b""                 # then closed, and the daemon exits
        wait_until(lambda: not proc.alive(), PROMPT_S, "policyd exits after its last answer")
        assert proc.returncode == 0
        sock.close()
    finally:
        daemons.stop()


def test_socketmap_stops_at_once_with_idle_postfix_connections(tmp_path):
    (tmp_path / "mailboxes").write_text("alice@example.org\n")
    (tmp_path / "aliases").write_text("")
    daemon = SocketmapDaemon(tmp_path / "socketmap", f'files_mailboxes = "{tmp_path}/mailboxes"\n'
                             f'files_aliases = "{tmp_path}/aliases"\n'
                             f'daemon_drain_timeout = "{DRAIN_S}s"\n').start()
    try:
        clients = []
        for _ in range(3):
            client = Client(daemon.port)
            client.send(encode_lookup("virtual_mailbox_maps", "alice@example.org"))
            answers = client.read(1)
            assert answers and answers[0].status == "OK", answers
            clients.append(client)
        # a lookup begun but not whole when SIGTERM comes is still answered
        late = Client(daemon.port)
        lookup = encode_lookup("virtual_mailbox_maps", "alice@example.org")
        late.send(lookup[:5])
        wait_until(lambda: _server_read_all(late.sock), 10, "socketmap reads the first part")
        daemon.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping: no new connections" in daemon.log(), 15, "socketmap drain line")
        for client in clients:
            assert client.sock.recv(10) == b""      # idle ones closed at once
        late.send(lookup[5:])
        answers = late.read(1)
        assert answers and answers[0].status == "OK", answers
        wait_until(lambda: not daemon.proc.alive(), PROMPT_S, "socketmap exits after its last answer")
        assert daemon.proc.returncode == 0
    finally:
        daemon.stop()


def test_managesieve_says_bye_to_idle_clients_and_finishes_an_upload_begun(tmp_path):
    user = "alice@example.org"
    (tmp_path / "passwd").write_text(f"{user}:{{PLAIN}}pw::::\n")
    (tmp_path / "mailboxes").write_text(f"{user} example.org/alice/Maildir\n")
    daemon = ManageSieveDaemon(tmp_path, f"""
daemon_allow_root = true
daemon_drain_timeout = "{DRAIN_S}s"
files_passwords = "{tmp_path}/passwd"
files_passwords_plain = true
files_mailboxes = "{tmp_path}/mailboxes"
files_maildir_base = "{tmp_path}/mail"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
""").start()
    try:
        idle, before_login, busy = (raw_client.connect(daemon.port) for _ in range(3))
        for sock in (idle, before_login, busy):
            read_until(sock, b'ManageSieve ready."\r\n')
        for sock in (idle, busy):
            sock.sendall(f'AUTHENTICATE "PLAIN" "{plain(user, "pw")}"\r\n'.encode())
            assert read_until(sock, b"\r\n").startswith(b"OK")
        script = b'keep;\r\n'
        busy.sendall(b'PUTSCRIPT "mine" {%d+}\r\n' % len(script) + script[:3])
        wait_until(lambda: _server_read_all(busy), 10, "managesieve reads the upload's first part")
        daemon.proc.send_signal(signal.SIGTERM)
        for sock in (idle, before_login):
            assert read_until(sock, b'BYE "Server shutting down."\r\n')
            assert sock.recv(10) == b""
        busy.sendall(script[3:] + b"\r\n")
        answer = read_until(busy, b'BYE "Server shutting down."\r\n')
        assert answer.startswith(b"OK"), answer            # the upload is stored, then BYE
        assert (tmp_path / "mail" / "example.org" / "alice" / "sieve" / "mine.sieve").read_bytes() == script
        wait_until(lambda: not daemon.proc.alive(), PROMPT_S, "managesieve exits")
        assert daemon.proc.returncode == 0
    finally:
        daemon.stop()


def test_web_closes_kept_alive_connections_and_answers_a_request_begun(tmp_path):
    import ssl

    cert, key = self_signed(tmp_path)
    server = WebServer(tmp_path / "web", f'quarantine_directory = "{tmp_path / "q"}"\n'
                       f'quarantine_token_key_file = "{token_key_file(tmp_path)}"\n'
                       f'web_tls_cert_file = "{cert}"\nweb_tls_key_file = "{key}"\n'
                       f'daemon_drain_timeout = "{DRAIN_S}s"\n', tls=True)
    (tmp_path / "web").mkdir()
    server.start()
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        request = b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n"

        def connect() -> ssl.SSLSocket:
            return context.wrap_socket(raw_client.connect(server.port), server_hostname="localhost")
        kept = connect()
        kept.sendall(request)
        assert read_until(kept, b"</html>").startswith(b"HTTP/1.1 200 ")      # kept alive after it
        begun = connect()
        begun.sendall(request[:20])
        wait_until(lambda: _server_read_all(begun), 10, "the web server reads the request's first part")
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping: no new connections" in server.log(), 15, "web drain line")
        kept.settimeout(PROMPT_S)
        assert kept.recv(10) == b""                       # closed at once
        begun.sendall(request[20:])
        assert read_until(begun, b"</html>").startswith(b"HTTP/1.1 200 ")
        wait_until(lambda: not server.proc.alive(), PROMPT_S, "web exits")
        assert server.proc.returncode == 0
    finally:
        server.stop()
