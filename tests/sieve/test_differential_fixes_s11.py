"""Engine fixes from the eleventh differential session against Pigeonhole's sieve-test (fresh
seeds of scripts/sieve-differential --shapes all, and the open questions probed by hand): each
test is a case the RFC decides, with the section named, which Owlery got wrong before the fix."""

from __future__ import annotations

import datetime as dt
import email.header

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, compile_script, run

NOW = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _run(src: str, message: bytes):
    settings = Settings()
    result = run(
        compile_script(src, settings=settings),
        message,
        Envelope("alice@example.com", "bob@example.org"),
        host=MemoryHost(("INBOX", "Foo")),
        settings=settings,
        environment={},
        now=NOW,
    )
    assert result.status == "ok", result.errors
    return result


def _added(result, name: str) -> list[str]:
    """The values of the fields `name` the script added, RFC 2047 words decoded."""
    out = []
    for line in result.message.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower().encode():
            out.append(str(email.header.make_header(email.header.decode_header(v.strip().decode("utf-8")))))
    return out


def _mixed(ctype: str, cte: str, body: str) -> bytes:
    return (
        "From: a@example.com\r\nTo: bob@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        f"--BB\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n"
        "--BB\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n"
        "--BB--\r\n"
    ).encode("utf-8")


EXTRACT_ALL = (
    'require ["mime", "foreverypart", "variables", "editheader", "extracttext"];\n'
    'foreverypart { extracttext "t"; if header :mime :contenttype :matches "Content-Type" "*" '
    '{ addheader :last "X-T" "${0}=[${t}]"; } }'
)


def test_extracttext_stores_the_content_of_a_non_text_part():
    """RFC 5703 section 7: extracttext stores "the whole content of the current MIME body part",
    transfer encoding and charset undone; unlike the body test's :text (RFC 5173 5.2) it names
    no media types. Owlery stored "" for every part not text/*; sieve-test stores the decoded
    content of an application/octet-stream or image part (checked by hand). A multipart or
    message/rfc822 part has no content of its own: "" on both sides."""
    r = _run(EXTRACT_ALL, _mixed("application/octet-stream", "base64", "aGVsbG8gd29ybGQ="))
    assert _added(r, "X-T") == [
        "multipart/mixed=[]",
        "text/plain=[hello]",
        "application/octet-stream=[hello world]",
        "message/rfc822=[]",
    ]
    # quoted-printable undone (soft line break joined), the part's charset parameter honoured
    r = _run(EXTRACT_ALL, _mixed("application/json; charset=iso-8859-1", "quoted-printable", "caf=E9 so=\r\nft"))
    assert "application/json=[caf\u00e9 soft]" in _added(r, "X-T")
    # octets that are no text read as U+FFFD, as in a text part without a charset
    r = _run(EXTRACT_ALL, _mixed("image/png", "base64", "/+7dzA=="))
    assert "image/png=[\ufffd]" in _added(r, "X-T")


def _date_out(field: str, part: str = "std11", zone: str = ":originalzone") -> list[str]:
    msg = f"From: a@example.com\r\nTo: bob@example.org\r\nSubject: t\r\nX-D: {field}\r\n\r\nbody\r\n".encode()
    src = (
        'require ["date", "variables", "editheader"];\n'
        f'if date {zone} :matches "X-D" "{part}" "*" {{ addheader "X-O" "${{0}}"; }}'
        ' else { addheader "X-O" "invalid"; }'
    )
    return _added(_run(src, msg), "X-O")


def test_iso8601_writes_a_zero_offset_as_z():
    """RFC 5260 4.2 names RFC 3339's date-time for "iso8601", whose zero offset is "Z" or
    "+00:00"; Owlery wrote "+00:00" where sieve-test writes "Z" (found by the edges shape:
    `date :originalzone :matches "X-Edge-Date" "iso8601" "*"`), so `:matches "*Z"` differed."""
    assert _date_out("Thu, 7 Mar 2024 23:30:00 +0000", "iso8601") == ["2024-03-07T23:30:00Z"]
    assert _date_out("Thu, 7 Mar 2024 23:30:00 -0000", "iso8601") == ["2024-03-07T23:30:00Z"]
    assert _date_out("Thu, 7 Mar 2024 23:30:00 +0530", "iso8601") == ["2024-03-07T23:30:00+05:30"]
    assert _date_out("Thu, 7 Mar 2024 23:30:00 +0530", "iso8601", ':zone "+0000"') == ["2024-03-07T18:00:00Z"]


def test_dates_rfc_5322_does_not_allow_are_no_dates():
    """RFC 5322 3.3 (RFC 5260 4: a field that is no date makes the test false): a minute and
    a second are two digits, a day name is three letters with a comma after it, a year is
    1900 or later. email.utils.parsedate_tz read all of these; sieve-test refuses them."""
    for bad in ("Thu, 07 Mar 2024 7:5:9 +0100", "Thu, 07 Mar 2024 07:05:9 +0100", "Thu, 07 Mar 2024 07:5 +0100",
                "Thu 7 Mar 2024 23:30:00 +0000", "Thursday, 7 Mar 2024 23:30:00 +0000",
                "Thu, 7 Mar 1899 23:30:00 +0000"):
        assert _date_out(bad) == ["invalid"], bad
    # what stays a date: a one-digit hour and day, no day name, no seconds, a 2-digit year
    assert _date_out("Thu, 7 Mar 2024 7:05 +0000") == ["Thu, 07 Mar 2024 07:05:00 +0000"]
    assert _date_out("7 Mar 99 23:30:00 +0100") == ["Sun, 07 Mar 1999 23:30:00 +0100"]
    # RFC 5322 4.3 obs-day-of-week: white space before the comma (sieve-test reads these too)
    for spaced in ("Thu , 7 Mar 2024 23:30:00 +0000", "Thu ,7 Mar 2024 23:30:00 +0000", "  thu\t, 7 Mar 2024 23:30:00 +0000"):
        assert _date_out(spaced) == ["Thu, 07 Mar 2024 23:30:00 +0000"], spaced


def test_a_numeric_zone_that_is_not_four_digits_reads_as_zero():
    """RFC 5322 3.3: zone = ("+" / "-") 4DIGIT; a zone it does not know is "-0000" (4.3), as
    sieve-test reads "+01". parsedate_tz took "+01" for one minute east of UTC."""
    assert _date_out("Thu, 7 Mar 2024 23:30:00 +01") == ["Thu, 07 Mar 2024 23:30:00 +0000"]
    assert _date_out("Thu, 7 Mar 2024 23:30 -012 (x)", "zone") == ["+0000"]


def test_index_zero_is_a_compile_error():
    """RFC 5260 6 and RFC 5293 5 count fields from 1, so :index 0 names none; sieve-test refuses
    it on the header test ("cannot be zero"). Owlery compiled it into a test that was always
    false, and a deleteheader that deleted nothing (found by the edges shape)."""
    from sieve.api import SieveCompileError

    for src in ('require "index"; if header :index 0 "Subject" "t" { stop; }',
                'require "index"; if address :index 0 :last "From" "a@example.com" { stop; }',
                'require ["index", "date"]; if date :index 0 "Date" "year" "2024" { stop; }',
                'require "editheader"; deleteheader :index 0 "X-N";'):
        try:
            compile_script(src, settings=Settings())
        except SieveCompileError as e:
            assert "cannot be zero" in str(e), src
        else:
            raise AssertionError(f"compiled: {src}")
    # :index 1 still compiles and picks the first field
    r = _run('require ["editheader", "index"]; deleteheader :index 1 "X-N";',
             b"From: a@example.com\r\nX-N: one\r\nX-N: two\r\n\r\nb\r\n")
    assert _added(r, "X-N") == ["two"]
