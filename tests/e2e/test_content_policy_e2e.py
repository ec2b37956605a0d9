"""Per-recipient content policy end to end: real Postfix -> `owlery milter` (banned stage) with a banned_files_lover.

One message with a banned attachment (invoice.exe inside a tar.gz, found through libarchive)
to two recipients: lover@ is a banned_files_lover in files_content_policy, plain@ is not.
Postfix accepts it once (250: a milter answers for the whole message); the sink receives one
copy addressed to lover@ only, marked X-Content-Alert; plain@ was taken off the envelope
and the quarantine holds a copy for plain@ alone. The same message to plain@ alone is
refused with 554 5.7.1 naming the file.
"""

import base64
import io
import tarfile

import pytest

from owlery.quarantine import ListFilter
from owlery.quarantine.directory import DirectoryStore
from tests.e2e.quarantine_stack import milter_postfix

SENDER = "someone@sender.test"
LOVER, PLAIN = "lover@example.test", "plain@example.test"


def banned_message() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("docs/invoice.exe")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    return (f"From: <{SENDER}>\r\nTo: <{LOVER}>, <{PLAIN}>\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
            "--b\r\nContent-Type: application/octet-stream; name=files.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(buf.getvalue()).decode() + "\r\n--b--\r\n").encode()


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs):
    workdir = harness_dirs("content-policy-owlery")
    (workdir / "policy").write_text(f"{LOVER}  banned_files_lover\n")
    with milter_postfix(postfix_factory, workdir, "content-policy-postfix", (
            'milter_inbound_stages = ["banned"]\nmilter_internal_networks = []\n'
            f'files_content_policy = "{workdir / "policy"}"\n'
            'quarantine_host_name = "mx1.test"\n')) as (pf, daemons):
        yield pf, daemons, workdir / "quarantine"


def test_lover_receives_the_banned_file_the_other_recipient_is_quarantined(stack):
    pf, daemons, qdir = stack
    pf.clear_sent()
    result = pf.send(SENDER, [LOVER, PLAIN], banned_message())
    assert result.data[0] == 250, result.data
    [sent] = pf.wait_sent(1)
    assert sent.rcpts == [LOVER]
    assert sent["X-Content-Alert"] == "BANNED, message contains files.bin/docs/invoice.exe (banned extension .exe)"
    [record] = DirectoryStore(str(qdir)).list(ListFilter(), 4_000_000_000)
    assert [r.address for r in record.recipients] == [PLAIN] and record.reason == "banned"
    assert "lovers:" in daemons.log("milter") and "policy=banned_files_lover" in daemons.log("milter")


def test_without_a_lover_the_banned_file_is_refused(stack):
    pf, _, _ = stack
    pf.clear_sent()
    result = pf.send(SENDER, [PLAIN], banned_message(), check=False)
    code, text = result.data
    assert code == 554 and text.startswith("5.7.1") and "invoice.exe" in text, result.data
    assert pf.sent_messages() == []
