"""Stage `banned`: refuse or quarantine mail carrying banned attachments (names, types, executables, in zips).

`find_banned(message_bytes, rules)` is a pure function over the MIME tree: declared file
names (banned extensions, double extensions such as `invoice.pdf.exe`), declared content
types, executable content (DOS/PE `MZ`, ELF) and the member names and contents of zip
archives, nested up to a depth. Broken MIME never raises: what cannot be parsed is skipped
(and reported as undecodable when it was meant to be an archive).
Talks to: nothing (and the quarantine store, through milters.stages.quarantine).
Tests: tests/milters/test_content_banned.py
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import io
import re
import zipfile
from typing import Any

from owlery.reply import Reply
from owlery.settings import Bool, Int, Size, StrList, choice, setting

from milters.stages import Stage

BANNED_ACTION = setting("banned_action", choice("reject", "quarantine"), "reject",
                        "What a banned attachment gets: reject (554 5.7.1 naming the file) or quarantine "
                        "(stored, then handled as quarantine_action says).")
BANNED_EXTENSIONS = setting(
    "banned_extensions", StrList,
    ["exe", "com", "scr", "pif", "bat", "cmd", "cpl", "dll", "msi", "msp", "vbs", "vbe", "js", "jse",
     "wsf", "wsh", "wsc", "hta", "jar", "lnk", "reg", "ps1", "psm1", "sct", "shb", "iso", "img", "vhd"],
    "File name extensions refused anywhere in a message, in zip archives too (case-insensitive).")
BANNED_DOUBLE_EXTENSION_EXTENSIONS = setting(
    "banned_double_extension_extensions", StrList,
    ["exe", "com", "scr", "pif", "bat", "cmd", "cpl", "vbs", "js", "hta", "lnk"],
    "Final extensions that, after another extension (report.pdf.exe), mark a disguised file.")
BANNED_CONTENT_TYPES = setting(
    "banned_content_types", StrList,
    ["application/x-msdownload", "application/x-msdos-program", "application/x-dosexec",
     "application/x-ms-dos-executable", "application/x-executable", "application/hta",
     "application/x-ms-shortcut", "application/vnd.microsoft.portable-executable"],
    "Declared MIME content types refused (parameters ignored).")
BANNED_EXECUTABLE_CONTENT = setting(
    "banned_executable_content", Bool, True,
    "Refuse parts whose decoded content is a Windows (MZ) or ELF executable whatever their name.")
BANNED_ARCHIVE_DEPTH = setting("banned_archive_depth", Int, 2,
                               "How deep zip archives inside zip archives are opened. 0: not at all.")
BANNED_ARCHIVE_MEMBERS_MAX = setting("banned_archive_members_max", Int, 1000,
                                     "Most members read from one archive; the rest are not looked at.")
BANNED_ARCHIVE_READ_SIZE = setting(
    "banned_archive_read_size", Size, "10M",
    "Most bytes decompressed from one archive member to look for executables and inner archives "
    "(a bound against zip bombs).", unit="bytes")

REPLY_BANNED = Reply(554, "5.7.1", "Message refused: banned attachment")

_ZIP_EXTENSIONS = ("zip", "jar", "docm", "xlsm")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclasses.dataclass(frozen=True)
class BannedRules:
    """The rules `find_banned` applies (built from settings, or directly in tests)."""

    extensions: frozenset[str]
    double_extensions: frozenset[str]
    content_types: frozenset[str]
    executable_content: bool = True
    archive_depth: int = 2
    archive_members_max: int = 1000
    archive_read_size: int = 10 * 1024 * 1024

    @classmethod
    def from_settings(cls, s: Any) -> "BannedRules":
        return cls(frozenset(e.lower().lstrip(".") for e in s.banned_extensions),
                   frozenset(e.lower().lstrip(".") for e in s.banned_double_extension_extensions),
                   frozenset(t.lower() for t in s.banned_content_types),
                   s.banned_executable_content, s.banned_archive_depth,
                   s.banned_archive_members_max, s.banned_archive_read_size)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One banned thing: the file (path inside archives joined by "/"), and why."""

    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


def _clean_name(name: str) -> str:
    # Trailing dots and spaces are dropped by Windows: "x.exe. " runs as "x.exe".
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[\s.]+$", "", name.replace("\x00", ""))


def check_name(name: str, rules: BannedRules) -> str | None:
    """Why a file name is banned, or None."""
    clean = _clean_name(name).lower()
    parts = [p.strip() for p in clean.split(".")]
    if len(parts) < 2:
        return None
    last = parts[-1]
    if len(parts) >= 3 and last in rules.double_extensions and parts[-2] and re.search(r"[a-z]", parts[-2]):
        return f"double extension .{parts[-2]}.{last}"
    if last in rules.extensions:
        return f"banned extension .{last}"
    return None


def _executable(data: bytes) -> str | None:
    if data[:2] == b"MZ":
        return "Windows executable"
    if data[:4] == b"\x7fELF":
        return "ELF executable"
    return None


def _is_zip(name: str, data: bytes) -> bool:
    return data[:4] == _ZIP_MAGIC or _clean_name(name).lower().rsplit(".", 1)[-1] in _ZIP_EXTENSIONS


def _check_zip(data: bytes, label: str, rules: BannedRules, depth: int, out: list[Finding]) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        if data[:4] == _ZIP_MAGIC:
            out.append(Finding(label, "undecodable zip archive"))
        return
    for info in infos[:rules.archive_members_max]:
        member = f"{label}/{info.filename}"
        if info.is_dir():
            continue
        why = check_name(info.filename, rules)
        if why:
            out.append(Finding(member, why))
            continue
        if info.flag_bits & 0x1:
            continue            # encrypted: only its name can be judged
        try:
            with archive.open(info) as f:
                head = f.read(min(rules.archive_read_size, info.file_size))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
            continue
        if rules.executable_content:
            why = _executable(head)
            if why:
                out.append(Finding(member, why))
                continue
        # only a fully read inner archive can be opened; a truncated one would look corrupt
        if depth > 1 and _is_zip(info.filename, head) and len(head) == info.file_size:
            _check_zip(head, member, rules, depth - 1, out)


def find_banned(message: bytes, rules: BannedRules) -> list[Finding]:
    """Every banned attachment of a message (empty when none); never raises on broken MIME."""
    out: list[Finding] = []
    try:
        msg = email.message_from_bytes(message, policy=email.policy.compat32)
        parts = list(msg.walk())
    except Exception:                       # noqa: BLE001 - the parser's failures are unbounded
        return out
    for index, part in enumerate(parts, 1):
        try:
            if part.is_multipart():
                continue
            name = part.get_filename() or part.get_param("name", header="content-type") or ""
            if isinstance(name, tuple):      # RFC 2231 tuple from compat32
                name = email.utils.collapse_rfc2231_value(name)
            name = str(name)
            label = _clean_name(name) or f"part {index}"
            why = check_name(name, rules) if name else None
            if why:
                out.append(Finding(label, why))
                continue
            ctype = (part.get_content_type() or "").lower()
            if ctype in rules.content_types:
                out.append(Finding(label, f"banned content type {ctype}"))
                continue
            if ctype.startswith("text/") and not name:
                continue            # message text: neither an executable nor an archive
            data = part.get_payload(decode=True) or b""
            if rules.executable_content:
                why = _executable(data)
                if why:
                    out.append(Finding(label, why))
                    continue
            if rules.archive_depth > 0 and _is_zip(name, data):
                _check_zip(data, label, rules, rules.archive_depth, out)
        except Exception:                   # noqa: BLE001 - one broken part must not hide the others
            continue
    return out


class BannedStage(Stage):
    """Reject (or quarantine) a message with a banned attachment."""

    name = "banned"

    def __init__(self, settings: Any, services: Any):
        super().__init__(settings, services)
        self.rules = BannedRules.from_settings(settings)
        self._quarantine = None
        if settings.banned_action == "quarantine":
            from milters.stages.quarantine import Quarantiner
            self._quarantine = Quarantiner(settings, services)

    def check(self, message: Any, report: Any) -> None:
        findings = find_banned(message.as_bytes(), self.rules)
        if not findings:
            return
        first = findings[0]
        detail = "; ".join(str(f) for f in findings[:5])
        report.symbol("BANNED_ATTACHMENT", 0.0, detail)
        report.data["banned"] = findings
        if self._quarantine is not None:
            self._quarantine.quarantine(message, report, "banned", detail)
            return
        text = Reply.safe_text(f"Message refused: banned attachment {first}", 200)
        report.reject(REPLY_BANNED.with_text(text), f"banned {first}")
