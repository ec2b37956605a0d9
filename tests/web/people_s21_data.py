"""Realistic held mail for the web's people round (s21): encoded subjects, RTL text, HTML-only, odd attachments.

`held(n, now)` yields (QuarantineRecord, message bytes) pairs a quarantine store takes: subjects
and From names in RFC 2047 encoded words of several charsets (UTF-8, ISO-8859-1/-8, KOI8-R,
ISO-2022-JP, windows-1256), right-to-left text, subjects of hundreds of characters without a
space, HTML-only messages with script and remote images, attachments with odd names (RFC 2231,
a right-to-left override, a long run of spaces before ".exe"), messages held for several
recipients. Deterministic (no randomness): message i is the same in every run.
Used by tests/web/test_people_s21.py and tests/e2e/test_web_people_s21.py.
"""

from __future__ import annotations

from email.header import Header

from owlery.quarantine import QuarantineRecord, RecipientState
from owlery.quarantine.base import ID_ALPHABET, ID_LENGTH

USERS = ("alice@example.test", "bob@example.test", "carol@example.test")
LONG_WORD = "Congratulations" * 30             # 450 characters, no space a browser may break at


def encoded(text: str, charset: str) -> str:
    return Header(text, charset).encode()


SUBJECTS = (
    lambda i: f"Weekly offer {i}",
    lambda i: encoded(f"Ihre Rechnung Nr. {i} - fällig", "iso-8859-1"),
    lambda i: encoded(f"Счёт номер {i}", "koi8-r"),
    lambda i: encoded(f"ご請求書 {i} のお知らせ", "iso-2022-jp"),
    lambda i: encoded(f"עדכון חשבון {i} דחוף", "iso-8859-8"),          # Hebrew: right to left
    lambda i: encoded(f"تحديث الحساب {i} عاجل", "windows-1256"),       # Arabic: right to left
    lambda i: f"{LONG_WORD}{i}",
    lambda i: encoded(f"🎉 Gewinn {i} 🎉", "utf-8"),
)
FROM_NAMES = ("Billing", encoded("Müller GmbH", "iso-8859-1"), encoded("בנק הפועלים", "iso-8859-8"),
              encoded("Служба поддержки", "koi8-r"), "x" * 200)


def mail_id(i: int) -> str:
    """A valid, deterministic id for message i (base 32 in the store's alphabet)."""
    digits = []
    for _ in range(ID_LENGTH):
        i, d = divmod(i, len(ID_ALPHABET))
        digits.append(ID_ALPHABET[d])
    return "".join(reversed(digits))


def _message(i: int, subject: str, from_name: str, to: str) -> bytes:
    head = (f"From: {from_name} <sender{i}@spam.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{i}@spam.test>\r\nMIME-Version: 1.0\r\n")
    kind = i % 4
    if kind == 0:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                f"Plain body {i}: grüße\r\n").encode()
    if kind == 1:                                   # HTML only, hostile
        return (head + "Content-Type: text/html; charset=utf-8\r\n\r\n"
                f"<html><body><script>alert({i})</script><p>HTML only {i}</p>"
                f"<img src=\"https://tracker.example/{i}.gif\" alt=\"tracker\"></body></html>\r\n").encode()
    b = f"b{i}"
    name = ("invoice.pdf" + "\u00a0" * 60 + ".exe", "r\u202efdp.exe", "x" * 250 + ".zip",
            "Prüfbericht.docm")[(i // 4) % 4]
    disposition = "attachment; filename*=utf-8''" + "".join(
        c if c.isascii() and c.isalnum() or c in "._-" else "".join(f"%{o:02X}" for o in c.encode()) for c in name)
    return (head + f"Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attachment {i}\r\n"
            f"--{b}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n--{b}--\r\n").encode()


def held(n: int, now: float, *, users: tuple[str, ...] = USERS, every_nth_shared: int = 7):
    """(record, message) for n held messages, one a minute back from `now`, spread over `users`;
    every `every_nth_shared`th one held for all of them."""
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)](i)
        from_name = FROM_NAMES[i % len(FROM_NAMES)]
        rcpts = users if i % every_nth_shared == 0 else (users[i % len(users)],)
        record = QuarantineRecord(
            mail_id=mail_id(i), secret_id=mail_id(10**9 + i), created=now - 60 * (i + 1),
            reason=("spam", "virus", "banned")[i % 3], detail=f"score {5 + i % 20}", sender=f"sender{i}@spam.test",
            recipients=tuple(RecipientState(r) for r in rcpts), size=1000 + i, queue_id=f"Q{i:08X}",
            client_addr="192.0.2.7", client_name="mx.spam.test", helo="mx.spam.test", host="mx1",
            subject=subject, header_from=f"{from_name} <sender{i}@spam.test>", message_id=f"<{i}@spam.test>",
            score=float(5 + i % 20), symbols=(("BAYES_99", 3.5, "spamd"),))
        yield record, _message(i, subject, from_name, ", ".join(rcpts))
