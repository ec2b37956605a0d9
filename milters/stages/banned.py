"""Stage `banned`: refuse or quarantine mail carrying banned attachments (names, types, executables, in zips).

`scan(message_bytes, rules)` is a pure function over the MIME tree (milters.mime_walk,
iterative). It looks at every file name a part declares (Content-Disposition filename and
Content-Type name, and the other way round, every occurrence, RFC 2231 and RFC 2047 forms
decoded, cut at a NUL too; names of uuencoded blocks in text), declared content types,
executable content (DOS/PE `MZ`, ELF), and every member name and the content of zip
archives (milters.archive_walk), nested up to a depth. It sorts what it finds into three
piles: banned (a name, a type, an executable), encrypted (archive members whose content
cannot be read; their names still count) and undecidable (past a limit: MIME depth or
parts, archive depth or members, bytes inflated, compression ratio, scan time; or a member
that cannot be read). The per-message budget (milters.scan_budget) is checked inside the
loops, so a zip bomb stops the work by itself. The stage acts on the first pile with
`banned_action`, else on the others with `banned_encrypted_action` and
`banned_undecidable_action` (the stronger one; quarantine by default: fail closed, nothing
lost), reporting BANNED_ATTACHMENT, BANNED_ENCRYPTED and BANNED_UNDECIDABLE.
Talks to: nothing (and the quarantine store, through milters.stages.quarantine).
Tests: tests/milters/test_content_banned.py, tests/milters/test_banned_hostile.py
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

from owlery.reply import Reply
from owlery.settings import Bool, Duration, Float, Size, StrList, choice, int_range, setting

from milters import archive_walk, mime_params, mime_walk
from milters.scan_budget import BudgetExceeded, ScanBudget
from milters.stages import Stage

_VERDICTS = ("quarantine", "reject", "tempfail", "accept")

BANNED_ACTION = setting("banned_action", choice("reject", "quarantine"), "reject",
                        "What a banned attachment gets: reject (554 5.7.1 naming the file) or quarantine "
                        "(stored, then handled as quarantine_action says).")
BANNED_UNDECIDABLE_ACTION = setting(
    "banned_undecidable_action", choice(*_VERDICTS), "quarantine",
    "What a message gets when the banned stage cannot judge all of it (a banned_*_max limit reached, "
    "an archive member that cannot be read, a compression method not supported): quarantine (stored, "
    "then handled as quarantine_action says), reject (554 5.7.1), tempfail (451 4.7.1, the client "
    "retries) or accept (passes with the symbol BANNED_UNDECIDABLE).")
BANNED_ENCRYPTED_ACTION = setting(
    "banned_encrypted_action", choice(*_VERDICTS), "quarantine",
    "What a message gets when an archive in it has encrypted members (their names are still "
    "checked, their content cannot be): quarantine, reject, tempfail or accept, as "
    "banned_undecidable_action. Symbol BANNED_ENCRYPTED.")
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
BANNED_ARCHIVE_DEPTH_MAX = setting(
    "banned_archive_depth_max", int_range(1, 64), 5,
    "How deep zip archives are opened: 1 opens attached archives only, 2 the archives in them too, "
    "and so on. An archive nested deeper makes the message undecidable (banned_undecidable_action).")
BANNED_ARCHIVE_MEMBERS_MAX = setting(
    "banned_archive_members_max", int_range(0), 10000,
    "Most archive members looked at in one message, all archives together; every name up to "
    "there is checked. More make the message undecidable (banned_undecidable_action).")
BANNED_INFLATE_BYTES_MAX = setting(
    "banned_inflate_bytes_max", Size, "128M",
    "Most bytes taken out of archives for one message, all members and nesting levels together "
    "(members are read only as far as needed: a few bytes, or the whole of an inner archive). "
    "Past it the message is undecidable (banned_undecidable_action).", unit="bytes")
BANNED_INFLATE_RATIO_MAX = setting(
    "banned_inflate_ratio_max", Float, 100.0,
    "Highest compression ratio (bytes out per byte in) of an archive member read whole (an inner "
    "archive), judged once 1 MiB came out; past it that member is undecidable (a zip bomb).")
BANNED_MIME_DEPTH_MAX = setting(
    "banned_mime_depth_max", int_range(1, 1000), 50,
    "Deepest MIME nesting looked into (multiparts and attached messages); parts below make the "
    "message undecidable (banned_undecidable_action).")
BANNED_MIME_PARTS_MAX = setting(
    "banned_mime_parts_max", int_range(1), 1000,
    "Most MIME parts (containers included) looked at in one message; more make it undecidable.")
BANNED_SCAN_TIME_MAX = setting(
    "banned_scan_time_max", Duration, "10s",
    "Longest the banned stage works on one message, checked as it goes (between parts, members "
    "and decompressed chunks); past it the message is undecidable (banned_undecidable_action).",
    unit="s")

REPLY_BANNED = Reply(554, "5.7.1", "Message refused: banned attachment")
REPLY_UNCHECKABLE = Reply(554, "5.7.1", "Message refused: attachment cannot be checked")
REPLY_UNCHECKABLE_LATER = Reply(451, "4.7.1", "Attachment cannot be checked now, please try again later")

_ZIP_EXTENSIONS = ("zip", "jar", "docm", "xlsm")
_HEAD = 8                       # bytes of a member read to recognise executables and archives
_RANK = {"accept": 0, "quarantine": 1, "reject": 2, "tempfail": 3}


@dataclasses.dataclass(frozen=True)
class BannedRules:
    """The rules and limits `scan` applies (built from settings, or directly in tests)."""

    extensions: frozenset[str]
    double_extensions: frozenset[str]
    content_types: frozenset[str]
    executable_content: bool = True
    archive_depth: int = BANNED_ARCHIVE_DEPTH_MAX.default
    archive_members_max: int = BANNED_ARCHIVE_MEMBERS_MAX.default
    inflate_bytes_max: int = BANNED_INFLATE_BYTES_MAX.default
    inflate_ratio_max: float = BANNED_INFLATE_RATIO_MAX.default
    mime_depth_max: int = BANNED_MIME_DEPTH_MAX.default
    mime_parts_max: int = BANNED_MIME_PARTS_MAX.default
    scan_time_max: float = BANNED_SCAN_TIME_MAX.default

    @classmethod
    def from_settings(cls, s: Any) -> "BannedRules":
        return cls(frozenset(e.lower().lstrip(".") for e in s.banned_extensions),
                   frozenset(e.lower().lstrip(".") for e in s.banned_double_extension_extensions),
                   frozenset(t.lower() for t in s.banned_content_types),
                   s.banned_executable_content, s.banned_archive_depth_max, s.banned_archive_members_max,
                   s.banned_inflate_bytes_max, s.banned_inflate_ratio_max, s.banned_mime_depth_max,
                   s.banned_mime_parts_max, s.banned_scan_time_max)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing found: the file (path inside archives joined by "/"), and why."""

    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """What `scan` found: banned files, encrypted archive members, and what it could not judge."""

    banned: tuple[Finding, ...] = ()
    encrypted: tuple[Finding, ...] = ()
    undecidable: tuple[Finding, ...] = ()


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


def _judge_name(name: str, rules: BannedRules) -> tuple[str, str] | None:
    """(the name as shown, why) when a name is banned; a NUL ends the name for C programs."""
    for variant in dict.fromkeys((name, name.split("\x00", 1)[0])):
        why = check_name(variant, rules)
        if why:
            return variant, why
    return None


def _executable(data: bytes) -> str | None:
    if data[:2] == b"MZ":
        return "Windows executable"
    if data[:4] == b"\x7fELF":
        return "ELF executable"
    return None


def _zip_by_name(names: list[str] | tuple[str, ...]) -> bool:
    return any(_clean_name(n).lower().rsplit(".", 1)[-1] in _ZIP_EXTENSIONS for n in names if "." in n)


def scan(message: bytes, rules: BannedRules, clock: Callable[[], float] = time.monotonic) -> ScanResult:
    """Everything banned, encrypted or undecidable in a message; never raises on broken MIME or zips."""
    return _Scan(rules, clock).run(message)


def find_banned(message: bytes, rules: BannedRules) -> list[Finding]:
    """Every banned attachment of a message (empty when none); never raises on broken MIME."""
    return list(scan(message, rules).banned)


class _Scan:
    """One message's scan: the rules, its budget, and the three piles."""

    def __init__(self, rules: BannedRules, clock: Callable[[], float]):
        self.rules = rules
        self.budget = ScanBudget(inflate_bytes_max=rules.inflate_bytes_max, members_max=rules.archive_members_max,
                                 parts_max=rules.mime_parts_max, time_max=rules.scan_time_max, clock=clock)
        self.banned: list[Finding] = []
        self.encrypted: list[Finding] = []
        self.undecidable: list[Finding] = []

    def run(self, message: bytes) -> ScanResult:
        try:
            for part in mime_walk.walk(message, self.budget, self.rules.mime_depth_max):
                self._part(part)
        except BudgetExceeded as e:
            self.undecidable.append(Finding("message", str(e)))
        return ScanResult(tuple(self.banned), tuple(self.encrypted), tuple(self.undecidable))

    def _part(self, part: mime_walk.Part) -> None:
        disposition, ctype_params = part.params("content-disposition"), part.params("content-type")
        # the usual places first; then the swapped ones, which some mail programs read too
        names = list(dict.fromkeys(
            mime_params.values(disposition, "filename") + mime_params.values(ctype_params, "name") +
            mime_params.values(disposition, "name") + mime_params.values(ctype_params, "filename")))
        label = (_clean_name(names[0]) if names else "") or f"part {part.index}"
        if part.unexamined:
            self.undecidable.append(Finding(label, part.unexamined))
        for name in names:
            judged = _judge_name(name, self.rules)
            if judged:
                self.banned.append(Finding(_clean_name(judged[0]), judged[1]))
                return
        for ctype in part.content_types():
            if ctype in self.rules.content_types:
                self.banned.append(Finding(label, f"banned content type {ctype}"))
                return
        if part.container:
            return
        data = part.decoded()
        if part.content_type.startswith("text/") and not names:
            # message text: neither an executable nor an archive, but it may carry uuencoded files
            for name in mime_walk.uu_names(data):
                self.budget.check_time()
                judged = _judge_name(name, self.rules)
                if judged:
                    self.banned.append(Finding(_clean_name(judged[0]), judged[1]))
                    return
            return
        if self.rules.executable_content:
            why = _executable(data)
            if why:
                self.banned.append(Finding(label, why))
                return
        if data[:4] == archive_walk.LOCAL_SIG or _zip_by_name(names) or archive_walk.has_directory_record(data):
            self._archive(data, label, 1)

    def _archive(self, data: bytes, label: str, level: int) -> None:
        if level > self.rules.archive_depth:
            self.undecidable.append(Finding(label, f"archive nesting deeper than {self.rules.archive_depth}"))
            return
        try:
            directory = archive_walk.ZipDirectory(data)
        except archive_walk.NotAZip:
            if data[:4] == archive_walk.LOCAL_SIG:
                self.banned.append(Finding(label, "undecodable zip archive"))
            return
        for member in directory.members(self.budget):
            self._member(directory, member, label, level)

    def _member(self, directory: archive_walk.ZipDirectory, member: archive_walk.Member, label: str,
                level: int) -> None:
        for name in member.names:
            judged = _judge_name(name, self.rules)
            if judged:
                self.banned.append(Finding(f"{label}/{judged[0].split(chr(0), 1)[0]}", judged[1]))
                return
        if member.is_dir:
            return
        path = f"{label}/{member.name.split(chr(0), 1)[0]}"
        if member.encrypted:
            if member.listed:        # (a local header found in stray bytes may be noise)
                self.encrypted.append(Finding(path, "encrypted"))
            return
        ratio = self.rules.inflate_ratio_max
        try:
            head = directory.read(member, self.budget, _HEAD, ratio)
            why = _executable(head) if self.rules.executable_content else None
            if why:
                self.banned.append(Finding(path, why))
                return
            if archive_walk.is_zip_signature(head) or _zip_by_name(member.names):
                if level + 1 > self.rules.archive_depth:
                    self.undecidable.append(Finding(path, f"archive nesting deeper than {self.rules.archive_depth}"))
                    return
                inner = directory.read(member, self.budget, None, ratio)
                self._archive(inner, path, level + 1)
        except archive_walk.MemberUnreadable as e:
            if member.listed:
                self.undecidable.append(Finding(path, str(e)))


def _summary(findings: tuple[Finding, ...]) -> str:
    return "; ".join(str(f) for f in findings[:5]) + (f"; and {len(findings) - 5} more" if len(findings) > 5 else "")


class BannedStage(Stage):
    """Reject (or quarantine) a message with a banned attachment; decide what cannot be checked."""

    name = "banned"

    def __init__(self, settings: Any, services: Any, clock: Callable[[], float] = time.monotonic):
        super().__init__(settings, services)
        self.rules = BannedRules.from_settings(settings)
        self.clock = clock
        self._quarantine = None
        if "quarantine" in (settings.banned_action, settings.banned_undecidable_action,
                            settings.banned_encrypted_action):
            from milters.stages.quarantine import Quarantiner
            self._quarantine = Quarantiner(settings, services)     # its store: the services' own

    def check(self, message: Any, report: Any) -> None:
        report.progress()
        result = scan(message.as_bytes(), self.rules, self.clock)
        report.data["banned"] = list(result.banned)
        for symbol, found in (("BANNED_ATTACHMENT", result.banned), ("BANNED_ENCRYPTED", result.encrypted),
                              ("BANNED_UNDECIDABLE", result.undecidable)):
            if found:
                report.symbol(symbol, 0.0, _summary(found))
        if result.banned:
            first = result.banned[0]
            detail = _summary(result.banned)
            if self.settings.banned_action == "quarantine":
                self._quarantine.quarantine(message, report, "banned", detail)
                return
            text = Reply.safe_text(f"Message refused: banned attachment {first}", 200)
            report.reject(REPLY_BANNED.with_text(text), f"banned {first}")
            return
        choices = []
        if result.encrypted:
            choices.append((self.settings.banned_encrypted_action, result.encrypted))
        if result.undecidable:
            choices.append((self.settings.banned_undecidable_action, result.undecidable))
        if not choices:
            return
        action, found = max(choices, key=lambda c: _RANK[c[0]])
        first = found[0]
        if action == "quarantine":
            self._quarantine.quarantine(message, report, "banned", "cannot be checked: " + _summary(found))
        elif action == "reject":
            text = Reply.safe_text(f"Message refused: attachment cannot be checked: {first}", 200)
            report.reject(REPLY_UNCHECKABLE.with_text(text), f"banned unchecked {first}")
        elif action == "tempfail":
            report.tempfail(REPLY_UNCHECKABLE_LATER, f"banned unchecked {first}")
