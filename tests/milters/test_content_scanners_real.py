"""The clamd and spamd clients against the REAL daemons (harness session fixtures).

EICAR inside a MIME message is found over TCP and the unix socket; a clean message is OK;
StreamMaxLength overflow reports "unscanned"; GTUBE scores 1000 in CHECK, SYMBOLS and
REPORT; TELL learns once and then reports nothing new; PING answers.
"""

import base64

from milters.clients.clamav import ClamdClient
from milters.clients.spamd import SpamdClient
from tests.harness.clamd import EICAR, EICAR_NAME

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def mime_with(payload: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: b@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
            b"--b\r\nContent-Type: application/octet-stream; name=eicar.com\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(payload) + b"\r\n--b--\r\n")


def test_clamd_finds_eicar_over_tcp_and_unix(clamd):
    for endpoint in (f"tcp:127.0.0.1:{clamd.port}", f"unix:{clamd.socket_path}"):
        client = ClamdClient(endpoint, timeout=10)
        assert client.ping()
        result = client.scan(mime_with(EICAR))
        assert result.infected and result.virus.startswith(EICAR_NAME), result
        assert not client.scan(mime_with(b"just a harmless attachment")).infected


def test_clamd_stream_limit_overflow_is_unscanned(clamd):
    # the harness clamd has StreamMaxLength 25M; stream more than that without our own cap
    client = ClamdClient(f"unix:{clamd.socket_path}", timeout=30, max_size=64 * 1024 * 1024)
    result = client.scan(b"x" * (26 * 1024 * 1024))
    assert result.scanned is False and result.infected is False


def test_spamd_commands(spamd):
    client = SpamdClient(f"tcp:127.0.0.1:{spamd.port}", timeout=30, user="owlery")
    msg = b"From: a@sender.test\r\nTo: b@example.test\r\nSubject: buy\r\n\r\n" + GTUBE + b"\r\n"
    assert client.ping()
    check = client.check(msg)
    assert check.is_spam and check.score >= 1000 and check.threshold == 5.0
    assert "GTUBE" in client.symbols(msg).symbols()
    result = client.scan(msg)
    assert result.is_spam and "GTUBE" in [r.name for r in result.rules]
    assert abs(sum(r.score for r in result.rules) - result.score) < 0.5
    headers = client.headers(msg).body
    assert b"X-Spam-Status: Yes" in headers
    ham = b"From: a@sender.test\r\nTo: b@example.test\r\nSubject: lunch\r\n\r\nSee you at noon, unique 7f3e.\r\n"
    assert client.tell(ham, "ham").did_set() == ("local",)
    assert client.tell(ham, "ham").did_set() == ()          # already learned
    assert client.tell(ham, "ham", remove=True).did_remove() == ("local",)
