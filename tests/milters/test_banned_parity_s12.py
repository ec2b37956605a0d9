"""Banned-stage gaps found by comparing `scan` with Debian's amavisd-new: class-id names and TNEF (winmail.dat).

tests/milters/test_banned_amavis_differential.py found amavis banning what Owlery passed:
names ending in a Windows class id (amavis's $banned_filename_re) and attachments inside
Outlook's TNEF (amavis decodes winmail.dat with Convert::TNEF). These cases pin the fixes.
"""

import base64
import io
import struct
import tarfile
import zipfile

import pytest

from milters import archive_walk
from milters.scan_budget import BudgetExceeded, ScanBudget
from milters.stages.banned import BannedRules, check_name, scan
from owlery.settings import Settings

RULES = BannedRules.from_settings(Settings())
MZ = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(100)
CLSID = "{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}"


def mime(name, data, ctype="application/octet-stream"):
    return (
        b"From: a@sender.test\r\nTo: b@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
        b"--b1\r\nContent-Type: "
        + ctype.encode()
        + b'\r\nContent-Disposition: attachment; filename="'
        + name.encode()
        + b'"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"--b1--\r\n"
    )


def zip_of(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def _attr(level, ident, data):
    return struct.pack("<BII", level, ident, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def _mapi_string(pid, text, unicode=True):
    raw = text.encode("utf-16-le" if unicode else "cp1252") + (b"\0\0" if unicode else b"\0")
    return struct.pack("<HHII", 0x001F if unicode else 0x001E, pid, 1, len(raw)) + raw + bytes(-len(raw) % 4)


def tnef(*attachments, truncate=0):
    """A TNEF stream; each attachment a dict: title, data, long (PR_ATTACH_LONG_FILENAME),
    obj (PR_ATTACH_DATA_OBJ as an embedded object), extra (MAPI properties placed first)."""
    out = struct.pack("<IH", 0x223E9F78, 1) + _attr(1, 0x00089006, struct.pack("<I", 0x00010000))
    for a in attachments:
        out += _attr(2, 0x00069002, bytes(14))
        if "title" in a:
            out += _attr(2, 0x00018010, a["title"].encode("cp1252") + b"\0")
        if "data" in a:
            out += _attr(2, 0x0006800F, a["data"])
        props = list(a.get("extra", ()))
        if "long" in a:
            props.append(_mapi_string(0x3707, a["long"]))
        if "obj" in a:
            obj = bytes(16) + a["obj"]
            props.append(struct.pack("<HHII", 0x000D, 0x3701, 1, len(obj)) + obj + bytes(-len(obj) % 4))
        if props:
            out += _attr(2, 0x00069005, struct.pack("<I", len(props)) + b"".join(props))
    return out[: len(out) - truncate] if truncate else out


@pytest.mark.parametrize(
    "name",
    [
        f"report.pdf.{CLSID}",
        f"report.pdf{CLSID}",
        f"report.pdf {CLSID.lower()}",
        f"report.pdf.{CLSID[:-1]}",  # the closing brace is optional (as amavis reads it)
        f"report.pdf.{CLSID}. ",  # Windows drops trailing dots and spaces
        CLSID,
    ],
)
def test_a_name_ending_in_a_class_id_is_banned(name):
    assert check_name(name, RULES) == "Windows class id name"
    assert [f.why for f in scan(mime(name, b"%PDF-1.4\n"), RULES).banned] == ["Windows class id name"]


@pytest.mark.parametrize("name", [f"{CLSID}.txt", "notes {draft}.txt", "x.{3050F4D8-98B5-11CF-BB82}"])
def test_a_class_id_not_at_the_end_is_no_ban(name):
    assert check_name(name, RULES) is None


def test_a_class_id_name_in_a_zip_is_banned():
    found = scan(mime("files.zip", zip_of([(f"a.txt.{CLSID}", b"hello")])), RULES).banned
    assert [(f.name, f.why) for f in found] == [(f"files.zip/a.txt.{CLSID}", "Windows class id name")]


@pytest.mark.parametrize(
    "attachment, name, why",
    [
        ({"title": "invoice.pdf.exe", "data": b"hello"}, "winmail.dat/invoice.pdf.exe", "double extension .pdf.exe"),
        (
            {"title": "INVOICE~1.PDF", "long": "invoice.pdf.scr", "data": b"hello"},
            "winmail.dat/invoice.pdf.scr",
            "double extension .pdf.scr",
        ),
        ({"title": "notes.txt", "data": MZ}, "winmail.dat/notes.txt", "Windows executable"),
        (
            {"title": "bundle.zip", "data": zip_of([("run.bat", b"echo")])},
            "winmail.dat/bundle.zip/run.bat",
            "banned extension .bat",
        ),
        (
            {"obj": tnef({"title": "inner.cmd", "data": b"x"})},
            "winmail.dat/attachment 2/inner.cmd",
            "banned extension .cmd",
        ),
        (
            {
                "title": "notes.txt",
                "extra": [struct.pack("<HHI", 0x0003, 0x0E20, 5), _mapi_string(0x3001, "x.exe", False)],
                "data": b"hi",
            },
            "winmail.dat/x.exe",
            "banned extension .exe",
        ),
    ],
)
def test_tnef_attachments_are_judged_like_archive_members(attachment, name, why):
    found = scan(
        mime("winmail.dat", tnef({"title": "ok.txt", "data": b"fine"}, attachment), "application/ms-tnef"), RULES
    )
    assert [(f.name, f.why) for f in found.banned] == [(name, why)]


def test_tnef_is_found_by_content_also_inside_a_zip():
    found = scan(mime("mail.zip", zip_of([("winmail.dat", tnef({"title": "a.vbs", "data": b"x"}))])), RULES)
    assert [f.name for f in found.banned] == ["mail.zip/winmail.dat/a.vbs"]


def test_a_clean_tnef_passes_and_a_truncated_one_is_undecidable():
    clean = tnef({"title": "notes.txt", "data": b"hello"}, {"title": "photo.jpg", "long": "photo.jpg", "data": b"x"})
    assert scan(mime("winmail.dat", clean, "application/ms-tnef"), RULES) == scan(mime("a.txt", b"hello"), RULES)
    broken = scan(
        mime("winmail.dat", tnef({"title": "notes.txt", "data": b"hello" * 10}, truncate=20), "application/ms-tnef"),
        RULES,
    )
    assert not broken.banned
    assert [(f.name, f.why) for f in broken.undecidable] == [("winmail.dat", "malformed TNEF record")]


def test_tnef_attachments_cost_members_of_the_budget():
    budget = ScanBudget(inflate_bytes_max=10**6, members_max=2, parts_max=10, time_max=10.0)
    data = tnef(*({"title": f"{i}.txt", "data": b"x"} for i in range(5)))
    with pytest.raises(BudgetExceeded, match="more than 2 archive members"):
        list(archive_walk.tnef_attachments(data, budget))


def test_unknown_mapi_property_types_make_the_tnef_unreadable():
    bad = tnef({"title": "a.txt", "extra": [struct.pack("<HHI", 0x0999, 0x1234, 0)], "data": b"x"})
    found = scan(mime("winmail.dat", bad, "application/ms-tnef"), RULES)
    assert [f.why for f in found.undecidable] == ["unknown MAPI property type 0x0999"]


def ar_of(members):
    out = b"!<arch>\n"
    for name, data in members:
        out += b"%-16s%-12d%-6d%-6d%-8o%-10d`\n" % ((name + "/").encode(), 0, 0, 0, 0o100644, len(data))
        out += data + (b"\n" if len(data) % 2 else b"")
    return out


def cpio_of(members, magic=b"070701"):
    out = b""
    for ino, (name, data) in enumerate([*members, ("TRAILER!!!", b"")], 1):
        raw = name.encode() + b"\0"
        fields = (ino, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        head = magic + b"".join(b"%08X" % f for f in fields) + raw
        out += head + bytes(-len(head) % 4) + data + bytes(-len(data) % 4)
    return out


def test_a_deb_package_is_opened_like_amavis_does():
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as t:
        info = tarfile.TarInfo("usr/share/doc/readme.scr")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    deb = ar_of([("debian-binary", b"2.0\n"), ("data.tar.gz", data.getvalue())])
    found = scan(mime("tool.deb", deb), RULES).banned
    assert [(f.name, f.why) for f in found] == [
        ("tool.deb/data.tar.gz/usr/share/doc/readme.scr", "banned extension .scr")
    ]


@pytest.mark.parametrize(
    "members, name, why",
    [
        ([("a.txt", b"x"), ("run.cmd", b"x")], "files.cpio/run.cmd", "banned extension .cmd"),
        ([("notes.txt", MZ)], "files.cpio/notes.txt", "Windows executable"),
    ],
)
def test_a_cpio_archive_is_opened_like_amavis_does(members, name, why):
    found = scan(mime("files.cpio", cpio_of(members)), RULES).banned
    assert [(f.name, f.why) for f in found] == [(name, why)]


@pytest.mark.parametrize("head", [b"\x71\xc7", b"\xc7\x71"])
def test_data_that_starts_like_a_binary_cpio_is_no_archive(head):
    # two bytes in 32768 of any data: offering libarchive's binary cpio reader would make such
    # parts undecidable (quarantined) for nothing
    assert scan(mime("photo.raw", head + bytes(range(256)) * 4), RULES) == scan(mime("a.txt", b"hello"), RULES)
