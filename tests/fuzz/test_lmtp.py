"""Fuzz: the sans-I/O LMTP server core (sieve/delivery/lmtp.py) fed arbitrary lines and bytes.

A fake adapter answers every CheckRecipient and Deliver at once. Whatever the input and
however it is cut into reads: no exception; only the documented actions (SendReply,
CheckRecipient, Deliver, CloseConnection), nothing after a pending question in one batch and nothing
at all after CloseConnection; every reply line is a valid SMTP reply (three digits, space or hyphen,
printable ASCII, CRLF-ended, no CR or LF inside), single-line replies carry an enhanced
status code of their class from the module's catalogue (or the fake adapter's); the whole
transcript is the same for every way of cutting the input; delivered transactions keep the
limits; and a dot-stuffed body arrives exactly as sent. The trace helpers
(`postfix_queue_id`, `received_header`) take any input too.

Found here and fixed: `MAIL FROM:<a@b> SIZE=²` raised ValueError (str.isdigit() takes "²",
int() does not); test_regression_size_with_superscript_digit keeps it fixed.
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from owlery.reply import Reply
from sieve.delivery import lmtp
from tests.fuzz.fuzzlib import CUTS, budget, corpus, mutants, split

SEEDS = corpus("lmtp")
TOKENS = [b"\r\n", b"\n", b"\r", b"LHLO x\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.net>\r\n",
          b"DATA\r\n", b"\r\n.\r\n", b"\n.\n", b"..", b"RSET\r\n", b"QUIT\r\n", b" SIZE=", b" BODY=8BITMIME",
          b" X-OWLERY-USER=", b"+2B", b"<>", b"<@a,@b:c@d>", b"\x00", b"\xff", "\u2028".encode(), b"A" * 2100]

LIMITS = lmtp.Limits(command_line=256, message_size=2000, recipients=3, errors=6)
OK_RCPT = Reply(250, "2.1.5", "Ok")
UNKNOWN = Reply(550, "5.1.1", "User unknown")
LOOKUP_DOWN = Reply(451, "4.3.0", "Directory unavailable")
SAVED = Reply(250, "2.0.0", "Saved")
FULL = Reply(452, "4.2.2", "Mailbox full")
ADAPTER_REPLIES = (OK_RCPT, UNKNOWN, LOOKUP_DOWN, SAVED, FULL)
CATALOGUE = {(r.code, r.dsn) for name, r in vars(lmtp).items() if name.startswith("R_") and isinstance(r, Reply)} \
    | {(r.code, r.dsn) for r in ADAPTER_REPLIES}
REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -])([\x20-\x7e]*)")
DSN = re.compile(rb"([245])\.[0-9]{1,3}\.[0-9]{1,3}(?: |$)")


def lookup(address: str) -> tuple[Reply, str | None]:
    if address.lower().startswith("bad"):
        return UNKNOWN, None
    if address.lower().startswith("t"):
        return LOOKUP_DOWN, None
    return OK_RCPT, address


def check_send(data: bytes, first: bool) -> None:
    assert data.endswith(b"\r\n"), data
    lines = data[:-2].split(b"\r\n")
    replies: list[list[bytes]] = [[]]
    for line in lines:
        m = REPLY_LINE.fullmatch(line)
        assert m, f"not an SMTP reply line: {line!r}"
        replies[-1].append(line)
        if m.group(2) == b" ":
            replies.append([])
    assert replies[-1] == [], f"reply ends on a continuation line: {data!r}"
    for reply in replies[:-1]:
        codes = {line[:3] for line in reply}
        assert len(codes) == 1, f"multi-line reply with several codes: {reply!r}"
        code = int(reply[0][:3])
        if len(reply) > 1 or code == 354 or (first and code == 220):
            continue
        m = DSN.match(reply[0], 4)
        assert m and int(m.group(1)) == code // 100, f"no enhanced status code of its class: {reply[0]!r}"
        assert (code, m.group(0).strip().decode()) in CATALOGUE, f"reply not in the catalogue: {reply[0]!r}"


def drive(chunks: list[bytes], limits: lmtp.Limits = LIMITS) -> list:
    """Run a session over these reads; return the transcript (actions, adapter answers included)."""
    m = lmtp.LMTPServer("mx.test", limits)
    transcript: list = []
    closed = False

    def handle(actions: list, first: bool = False) -> None:
        nonlocal closed
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            assert not closed, f"{action!r} after CloseConnection"
            transcript.append(action)
            if isinstance(action, lmtp.SendReply):
                check_send(action.data, first)
            elif isinstance(action, lmtp.CloseConnection):
                closed = True
            elif isinstance(action, lmtp.CheckRecipient):
                assert not queue, "actions after a pending recipient check"
                assert m.waiting
                assert action.address and action.address.isprintable()
                reply, user = lookup(action.user or action.address)
                queue += m.recipient_checked(reply, user)
            elif isinstance(action, lmtp.Deliver):
                assert not queue, "actions after a pending delivery"
                txn = action.transaction
                assert 1 <= len(txn.recipients) <= limits.recipients
                assert len(txn.message) <= limits.message_size
                assert txn.sender.isprintable()
                replies = [FULL if r.address.startswith("f") else SAVED for r in txn.recipients]
                queue += m.delivered(replies)
            else:
                raise AssertionError(f"undocumented action {action!r}")

    handle(m.start(), first=True)
    for chunk in chunks:
        out = m.feed(chunk)
        if closed:
            assert out == []
        handle(out)
    return transcript


def check(data: bytes, cuts) -> None:
    whole = drive([data])
    assert drive(split(data, cuts)) == whole
    assert drive([data[i:i + 1] for i in range(min(len(data), 3000))]) == drive([data[:3000]])


session_line = st.one_of(
    st.sampled_from([b"LHLO client.example", b"LHLO", b"EHLO x", b"NOOP", b"RSET", b"VRFY x", b"DATA", b"DATA x",
                     b"QUIT", b"MAIL FROM:<a@example.org>", b"MAIL FROM:<>", b"MAIL FROM:a@b SIZE=10 BODY=7BIT",
                     b"MAIL FROM:<a@b> SIZE=999999", b"RCPT TO:<b@example.net>", b"RCPT TO:<bad@example.net>",
                     b"RCPT TO:<t@example.net>", b"RCPT TO:<f@example.net>", b"RCPT TO:<@r1,@r2:c@example.net>",
                     b"RCPT TO:<c@example.net> X-OWLERY-USER=c+40example.net", b".", b"..", b"", b"x" * 300]),
    st.builds(lambda verb, arg: verb + arg,
              st.sampled_from([b"MAIL FROM:", b"RCPT TO:", b"LHLO ", b"mail from:", b"rcpt to:"]),
              st.binary(max_size=40)),
    st.builds(lambda verb, arg: verb + arg.encode("utf-8", "surrogatepass"),
              st.sampled_from([b"MAIL FROM:<a@b> ", b"RCPT TO:<b@c> ", b"RCPT TO:<"]),
              st.text(max_size=20)),
)
sessions = st.builds(lambda lines, eol: b"".join(line + eol for line in lines),
                     st.lists(session_line, max_size=25), st.sampled_from([b"\r\n", b"\n"]))


@budget(300)
@given(data=st.one_of(sessions, mutants(SEEDS, TOKENS), st.binary(max_size=300)), cuts=CUTS)
@example(data=b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + b"y" * 70000 + b"\r\n.\r\nQUIT\r\n",
         cuts=[66000, 66001])
@example(data=b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n..\r\n.\r\n", cuts=[44, 45, 46])
@example(data=b"NOOP\r\n" * 10 + b"A" * 5000 + b"\r\nQUIT\r\n", cuts=[100, 4000])
def test_any_input_any_split(data, cuts):
    check(data, cuts)


body_line = st.one_of(st.sampled_from([b"", b".", b"..", b"...", b". x", b"From x", b"\x00\xff"]),
                      st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")))


@budget(150)
@given(lines=st.lists(body_line, max_size=30), cuts=CUTS, eol=st.sampled_from([b"\r\n", b"\n"]))
def test_dot_stuffed_body_arrives_unchanged(lines, cuts, eol):
    body = b"".join(line + b"\n" for line in lines)
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + eol for line in lines)
    data = b"LHLO x" + eol + b"MAIL FROM:<a@b>" + eol + b"RCPT TO:<c@d>" + eol + b"DATA" + eol + stuffed + b"." + eol
    delivered = [a for a in drive(split(data, cuts), lmtp.Limits()) if isinstance(a, lmtp.Deliver)]
    assert [d.transaction.message for d in delivered] == [body]


@budget(200)
@given(message=st.one_of(mutants(corpus("milter", ".eml")), st.binary(max_size=300)))
def test_postfix_queue_id_takes_any_message(message):
    qid = lmtp.postfix_queue_id(message)
    assert qid is None or re.fullmatch(r"[0-9A-Za-z]{5,32}", qid)


@budget(100)
@given(lhlo=st.text(max_size=40), peer=st.one_of(st.none(), st.sampled_from(["192.0.2.1", "2001:db8::1", ""])),
       recipient=st.text(max_size=40), now=st.floats(0, 4e9))
def test_received_header_is_one_well_formed_field(lhlo, peer, recipient, now):
    field = lmtp.received_header(lhlo=lhlo, peer_ip=peer, by="mx.test", recipient=recipient, now=now)
    assert field.startswith(b"Received: from ") and field.endswith(b"\n") and b"\r" not in field
    lines = field[:-1].split(b"\n")
    assert all(line.startswith(b"\t") for line in lines[1:])


def test_regression_size_with_superscript_digit():
    transcript = drive(["LHLO x\r\nMAIL FROM:<a@b> SIZE=\u00b2\r\n".encode()])
    assert transcript[-1].data.startswith(b"501 ")         # RFC 1870: SIZE takes ASCII digits only


def fuzz_one(data: bytes) -> None:
    """atheris entry: the first byte is the read size, the rest the client's bytes."""
    if not data:
        return
    size = data[0] + 1
    stream = data[1:]
    check(stream, list(range(size, len(stream), size)))
