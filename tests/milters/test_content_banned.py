"""Banned attachments: `find_banned` over MIME trees (names, types, executables, zips, broken MIME) and the stage."""

import base64
import io
import zipfile

import pytest

from milters import effects as fx
from owlery.quarantine import ListFilter
from owlery.quarantine.directory import DirectoryStore
from milters.stages.banned import BannedRules, BannedStage, check_name, find_banned
from owlery.settings import Settings

RULES = BannedRules.from_settings(Settings())
MZ = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 100


def zip_of(**members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name.replace("__", "/"), data)
    return buf.getvalue()


def mime(*parts, boundary="b1"):
    """A multipart/mixed message; each part is (content-type, filename or None, bytes)."""
    out = [b"From: a@sender.test\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n",
           b'Content-Type: multipart/mixed; boundary="' + boundary.encode() + b'"\r\n\r\npreamble\r\n']
    for ctype, name, data in parts:
        out.append(b"--" + boundary.encode() + b"\r\n")
        disp = b'Content-Disposition: attachment; filename="' + name.encode() + b'"\r\n' if name else b""
        out.append(b"Content-Type: " + ctype.encode() + b"\r\n" + disp +
                   b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out)


@pytest.mark.parametrize("name, why", [
    ("setup.exe", "banned extension .exe"),
    ("SETUP.EXE", "banned extension .exe"),
    ("invoice.pdf.exe", "double extension .pdf.exe"),
    ("invoice.pdf      .scr", "double extension .pdf.scr"),
    ("run.exe. . ", "banned extension .exe"),
    ("C:\\temp\\evil.vbs", "banned extension .vbs"),
    ("report.pdf", None),
    ("archive.tar.gz", None),
    ("noextension", None),
    ("v1.2.exe", "banned extension .exe"),       # "2" is no disguise; still an .exe
])
def test_check_name(name, why):
    assert check_name(name, RULES) == why


@pytest.mark.parametrize("message, expected", [
    (mime(("text/plain", None, b"see the .exe file"), ("application/pdf", "report.pdf", b"%PDF-1.4 ...")), []),
    (mime(("application/octet-stream", "tool.exe", b"whatever")), ["tool.exe (banned extension .exe)"]),
    (mime(("application/pdf", "invoice.pdf.exe", b"x")), ["invoice.pdf.exe (double extension .pdf.exe)"]),
    (mime(("application/x-msdownload", "update.bin", b"x")),
     ["update.bin (banned content type application/x-msdownload)"]),
    (mime(("application/octet-stream", "photo.jpg", MZ)), ["photo.jpg (Windows executable)"]),
    (mime(("application/octet-stream", None, b"\x7fELF\x02\x01")), ["part 2 (ELF executable)"]),
    (mime(("application/zip", "docs.zip", zip_of(**{"a.txt": b"hi", "dir__payload.js": b"x"}))),
     ["docs.zip/dir/payload.js (banned extension .js)"]),
    (mime(("application/zip", "docs.zip", zip_of(**{"readme.txt": MZ}))),
     ["docs.zip/readme.txt (Windows executable)"]),
    (mime(("application/zip", "outer.zip", zip_of(**{"inner.zip": zip_of(**{"x.scr": b"x"})}))),
     ["outer.zip/inner.zip/x.scr (banned extension .scr)"]),
    (mime(("application/zip", "docs.zip", zip_of(**{"a.txt": b"hi"}))), []),
    (mime(("application/zip", "broken.zip", b"PK\x03\x04garbage")), ["broken.zip (undecodable zip archive)"]),
])
def test_find_banned(message, expected):
    assert [str(f) for f in find_banned(message, RULES)] == expected


def test_archive_depth_limits_nesting():
    inner = zip_of(**{"inner.zip": zip_of(**{"x.scr": b"x"})})
    msg = mime(("application/zip", "outer.zip", inner))
    rules = BannedRules(RULES.extensions, RULES.double_extensions, RULES.content_types, archive_depth=1)
    assert find_banned(msg, rules) == []


def test_encrypted_zip_member_names_still_count():
    data = bytearray(zip_of(**{"evil.exe": b"x"}))
    # set the "encrypted" flag bit in the local and central headers: contents unreadable, names not
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        i = data.find(sig)
        off = i + (6 if sig == b"PK\x03\x04" else 8)
        data[off] |= 1
    assert [f.why for f in find_banned(mime(("application/zip", "x.zip", bytes(data))), RULES)] == \
        ["banned extension .exe"]


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff" * 1000, b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary at all",
    b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: application/zip\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n--x",
    b"Content-Type: text/plain; name*=''%ZZ.exe\r\n\r\nbody",
])
def test_broken_mime_never_raises(raw):
    find_banned(raw, RULES)


def test_rfc2231_and_content_type_name():
    raw = (b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n'
           b"Content-Type: application/octet-stream; name*=utf-8''r%C3%A9sum%C3%A9.pdf.exe\r\n\r\nxx\r\n--x--\r\n")
    assert [f.name for f in find_banned(raw, RULES)] == ["résumé.pdf.exe"]


def run_stage(settings, raw):
    from milters.stages import Services
    from tests.milters.session_driver import run_alone
    return run_alone(settings, BannedStage(settings, Services(resolver=None, now=lambda: 1.0)), raw)


def test_stage_rejects_naming_the_file(tmp_path):
    out = run_stage(Settings(), mime(("application/octet-stream", "tool.exe", b"x")))
    assert out.action == fx.REJECT and (out.reply.code, out.reply.dsn) == (554, "5.7.1")
    assert "tool.exe" in out.reply.text


def test_stage_quarantines_by_setting(tmp_path):
    s = Settings().replace(banned_action="quarantine", quarantine_directory=str(tmp_path / "q"))
    out = run_stage(s, mime(("application/octet-stream", "tool.exe", b"x")))
    assert out.action == fx.DISCARD
    [rec] = DirectoryStore(str(tmp_path / "q")).list(ListFilter(), 2.0)
    assert rec.reason == "banned" and "tool.exe" in rec.detail


def test_stage_passes_clean_mail():
    out = run_stage(Settings(), mime(("application/pdf", "report.pdf", b"%PDF")))
    assert out.action == fx.ACCEPT
