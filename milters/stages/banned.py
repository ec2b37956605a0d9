"""Stage `banned`: refuse or quarantine mail carrying banned attachments (names, types, executables, in archives).

`scan(message_bytes, rules)` is a pure function over the MIME tree (milters.mime_walk,
iterative). It looks at every file name a part declares (Content-Disposition filename and
Content-Type name, and the other way round, every occurrence, RFC 2231 and RFC 2047 forms
decoded, cut at a NUL too; names of uuencoded blocks in text), declared content types,
executable content (DOS/PE `MZ`, ELF), and every member name and the content of archives,
nested up to a depth: zip with its own walker (milters.archive_walk), tar, 7z, rar, cab, iso,
ar (.deb), cpio and gzip/bzip2/xz/zstd streams through libarchive (milters.archive_libarchive),
Outlook's TNEF (winmail.dat) through milters.archive_walk too. A name is banned by its
extension, a double extension, or a Windows class id at its end (x.pdf.{CLSID}, as
amavisd-new bans). The format
is found by content (libarchive's bidders, zip signatures), never by a file name alone;
member paths (../, control characters) are only matched, and shown with "?" for control
characters. It sorts what it finds into three
piles: banned (a name, a type, an executable), encrypted (archive members whose content
cannot be read; their names still count) and undecidable (past a limit: MIME depth or
parts, archive depth or members, bytes inflated, compression ratio, scan time; a member
that cannot be read; an archive, by its name or its directory record, that cannot be
opened, in any format: nothing unparseable is skipped silently). The per-message budget
(milters.scan_budget) is checked inside the loops of both readers, so a zip, tar or gzip
bomb stops the work by itself. The stage acts on the first pile with
`banned_action`, else on the others with `banned_encrypted_action` and
`banned_undecidable_action` (the stronger one; quarantine by default: fail closed, nothing
lost), reporting BANNED_ATTACHMENT, BANNED_ENCRYPTED and BANNED_UNDECIDABLE (an archive whose
headers are encrypted, member names hidden, counts as encrypted).
Recipients whose content policy says banned_files_lover (milters.content_policy) get a
banned attachment anyway, marked with X-Content-Alert; with several recipients the message
is refused only when none is a lover (the strictest wins), else the lovers receive it and
the others are taken off the envelope with a quarantined copy kept for them. The lovers
bypass only the banned pile: encrypted or undecidable content is handled as above for all.
Talks to: nothing (and the quarantine store, through milters.stages.quarantine).
Tests: tests/milters/test_content_banned.py, tests/milters/test_banned_hostile.py,
tests/milters/test_archives_libarchive.py
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

from owlery.reply import Reply
from owlery.settings import Bool, Duration, Float, Size, StrList, choice, int_range, setting

from milters import archive_libarchive, archive_walk, content_policy, mime_params, mime_walk
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
    "File name extensions refused anywhere in a message, in archives too (case-insensitive).")
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
    "How deep archives (zip, tar, 7z, rar, cab, iso, gzip/bzip2/xz...) are opened: 1 opens "
    "attached archives only (a .tar.gz is one), 2 the archives in them too, "
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
    "Highest compression ratio (bytes out per byte in) of a zip member read whole (an inner "
    "archive), or of a whole archive read through libarchive (tar.gz, 7z...), judged once 1 MiB "
    "came out; past it that member or archive is undecidable (a zip, tar or gzip bomb).")
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
_SNIFF = 512                    # bytes of a member read to recognise executables and archives
_SNIFF_ZEROS = 36 * 1024        # ... when those are zeros or a boot sector (an ISO image's start)
_ISO_ID_AT = 32769              # the first volume descriptor's identifier (ECMA-119 8.1, ECMA-167 2/9.1)
_ISO_IDS = (b"CD001", b"BEA01", b"NSR02", b"NSR03")
# A name ending in a class id ("report.pdf.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}", the
# closing brace optional): Windows Explorer hides it and opens the file with that class's
# handler (an HTML application, a shortcut...), whatever the extension shown before it.
# amavisd-new's $banned_filename_re bans the same ending.
_CLSID_END = re.compile(r"\{[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\}?$")
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
class BannedScanResult:
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
    if _CLSID_END.search(clean):
        return "Windows class id name"
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


def scan(message: bytes, rules: BannedRules, clock: Callable[[], float] = time.monotonic) -> BannedScanResult:
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

    def run(self, message: bytes) -> BannedScanResult:
        try:
            for part in mime_walk.walk(message, self.budget, self.rules.mime_depth_max):
                self._part(part)
        except BudgetExceeded as e:
            self.undecidable.append(Finding("message", str(e)))
        return BannedScanResult(tuple(self.banned), tuple(self.encrypted), tuple(self.undecidable))

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
        # Every other attachment is offered to both readers: the zip walker when it looks like
        # a zip (by signature, directory record or name), libarchive always (its bidders decide
        # by content; NotAnArchive costs one failed open).
        self._container(data, label, 1, _zip_by_name(names))

    def _container(self, data: bytes, label: str, level: int, zip_named: bool) -> None:
        """Open `data` as an archive: zip (milters.archive_walk) when it looks like one, and
        whatever libarchive recognises, both when both claim it (a polyglot is read twice)."""
        if level > self.rules.archive_depth:
            self.undecidable.append(Finding(label, f"archive nesting deeper than {self.rules.archive_depth}"))
            return
        if data[:4] == archive_walk.TNEF_SIG:
            self._tnef(data, label, level)
            return
        if data[:4] == archive_walk.LOCAL_SIG or zip_named or archive_walk.has_directory_record(data):
            self._zip(data, label, level)
        self._libarchive(data, label, level)

    def _zip(self, data: bytes, label: str, level: int) -> None:
        try:
            directory = archive_walk.ZipDirectory(data)
        except archive_walk.NotAZip:
            # Fail closed: an archive by its name or signature that cannot be opened is not
            # "clean". Starting like a zip (local header) it is banned, since unzip tools
            # recover such files from their local headers; otherwise it is undecidable.
            if data[:4] == archive_walk.LOCAL_SIG:
                self.banned.append(Finding(label, "undecodable zip archive"))
            elif not archive_libarchive.recognizes(data):    # (else libarchive judges it)
                self.undecidable.append(Finding(label, "unreadable zip archive"))
            return
        for member in directory.members(self.budget):
            self._zip_member(directory, member, label, level)

    def _zip_member(self, directory: archive_walk.ZipDirectory, member: archive_walk.Member, label: str,
                    level: int) -> None:
        if self._names_banned(member.names, label) or member.is_dir:
            return
        path = f"{label}/{_shown(member.name)}"
        if member.encrypted:
            if member.listed:        # (a local header found in stray bytes may be noise)
                self.encrypted.append(Finding(path, "encrypted"))
            return
        ratio = self.rules.inflate_ratio_max
        try:
            # each call decompresses from the member's start: `None` is the whole member
            self._content(path, member.names, level,
                          lambda limit: directory.read(member, self.budget, limit, ratio))
        except archive_walk.MemberUnreadable as e:
            if member.listed:
                self.undecidable.append(Finding(path, str(e)))

    def _tnef(self, data: bytes, label: str, level: int) -> None:
        """Outlook's winmail.dat: each attachment's names, then its content as an archive member's."""
        try:
            for n, attachment in enumerate(archive_walk.tnef_attachments(data, self.budget), 1):
                if self._names_banned(attachment.names, label):
                    continue
                path = f"{label}/{_shown(attachment.names[0]) if attachment.names else f'attachment {n}'}"
                self._content(path, attachment.names, level,
                              lambda limit, d=attachment.data: d if limit is None else d[:limit])
        except archive_walk.TnefUnreadable as e:
            self.undecidable.append(Finding(label, str(e)))

    def _libarchive(self, data: bytes, label: str, level: int) -> None:
        try:
            with archive_libarchive.Reader(data, self.budget, self.rules.inflate_ratio_max, label) as reader:
                for entry in reader.entries():
                    if self._names_banned(entry.names, label) or entry.is_dir:
                        continue
                    path = f"{label}/{_shown(entry.name)}"
                    if entry.encrypted:
                        self.encrypted.append(Finding(path, "encrypted"))
                        continue
                    self._content(path, entry.names, level, _FromStart(reader))
        except archive_libarchive.NotAnArchive:
            return
        except archive_libarchive.ArchiveEncrypted as e:
            self.encrypted.append(Finding(label, str(e)))
        except archive_libarchive.ArchiveUnreadable as e:
            self.undecidable.append(Finding(label, str(e)))

    def _names_banned(self, names: tuple[str, ...], label: str) -> bool:
        """Ban a member by any name it goes by (a path as stored: only matched, never used)."""
        for name in names:
            judged = _judge_name(name, self.rules)
            if judged:
                self.banned.append(Finding(f"{label}/{_shown(judged[0].split(chr(0), 1)[0])}", judged[1]))
                return True
        return False

    def _content(self, path: str, names: tuple[str, ...], level: int,
                 read: Callable[[int | None], bytes]) -> None:
        """A member's content: banned when executable, opened when libarchive or the zip walker
        recognises its head (content, not name, decides; a zip name also opens it)."""
        head = read(_SNIFF)
        why = _executable(head) if self.rules.executable_content else None
        if why:
            self.banned.append(Finding(path, why))
            return
        zip_named = _zip_by_name(names)
        if len(head) == _SNIFF and (not head.strip(b"\0") or head[510:] == b"\x55\xaa"):
            # Zeros (to libarchive an empty tar, nothing to see) or a boot sector: an ISO 9660
            # or UDF image has its volume descriptors at 32 KiB.
            opens = read(_SNIFF_ZEROS)[_ISO_ID_AT:_ISO_ID_AT + 5] in _ISO_IDS
        else:
            opens = (archive_walk.is_zip_signature(head) or head[:4] == archive_walk.TNEF_SIG
                     or archive_libarchive.recognizes(head))
        if opens or zip_named:
            if level + 1 > self.rules.archive_depth:
                self.undecidable.append(Finding(path, f"archive nesting deeper than {self.rules.archive_depth}"))
                return
            self._container(read(None), path, level + 1, zip_named)


class _FromStart:
    """A libarchive member read as the zip walker reads one: each call from the start
    (`limit` bytes, or None for all of it), the bytes already taken out kept."""

    def __init__(self, reader: archive_libarchive.Reader):
        self.reader = reader
        self.got = b""

    def __call__(self, limit: int | None) -> bytes:
        if limit is None:
            self.got += self.reader.read(None)
            return self.got
        if len(self.got) < limit:
            self.got += self.reader.read(limit - len(self.got))
        return self.got[:limit]


def _shown(name: str) -> str:
    """A member name as logged and replied: control characters (ESC, CR, LF...) as "?"."""
    return "".join(c if c.isprintable() else "?" for c in name)


def _summary(findings: tuple[Finding, ...]) -> str:
    return "; ".join(str(f) for f in findings[:5]) + (f"; and {len(findings) - 5} more" if len(findings) > 5 else "")


class BannedStage(Stage):
    """Reject (or quarantine) a message with a banned attachment; decide what cannot be checked."""

    name = "banned"

    def __init__(self, settings: Any, services: Any, clock: Callable[[], float] = time.monotonic):
        super().__init__(settings, services)
        self.rules = BannedRules.from_settings(settings)
        self.clock = clock
        archive_libarchive.lib()        # no libarchive: fail at start, never pass archives unread
        self._quarantine = None
        if "quarantine" in (settings.banned_action, settings.banned_undecidable_action,
                            settings.banned_encrypted_action):
            self._quarantiner()

    def _quarantiner(self) -> Any:
        # Opened at start when an action quarantines; else on the first copy kept for the
        # recipients who are no banned_files_lover (milters.content_policy).
        if self._quarantine is None:
            from milters.stages.quarantine import Quarantiner
            self._quarantine = Quarantiner(self.settings, self.services)     # its store: the services' own
        return self._quarantine

    def check(self, message: Any, report: Any) -> None:
        content_policy.strip_forged(message, report, (content_policy.ALERT_HEADER,))
        report.progress()
        result = scan(message.as_bytes(), self.rules, self.clock)
        if message.truncated:
            # Only the first milter_message_size_limit bytes were kept: a file after them is
            # unseen, so the message cannot be called clean (as the antivirus stage says).
            kept = Finding("message", f"over milter_message_size_limit "
                                      f"({self.settings.milter_message_size_limit} bytes kept)")
            result = dataclasses.replace(result, undecidable=(*result.undecidable, kept))
        report.data["banned"] = list(result.banned)
        for symbol, found in (("BANNED_ATTACHMENT", result.banned), ("BANNED_ENCRYPTED", result.encrypted),
                              ("BANNED_UNDECIDABLE", result.undecidable)):
            if found:
                report.symbol(symbol, 0.0, _summary(found))
        if result.banned:
            first = result.banned[0]
            detail = _summary(result.banned)
            # banned_files_lover recipients take it (marked); with others the copy is kept for those
            settled = content_policy.apply_lovers(self, message, report, "banned_files_lover", "banned", detail,
                                                  f"BANNED, message contains {detail}", self._quarantiner)
            if settled and report.action != "accept":
                return
            if not settled:
                if self.settings.banned_action == "quarantine":
                    self._quarantiner().quarantine(message, report, "banned", detail)
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
            self._quarantiner().quarantine(message, report, "banned", "cannot be checked: " + _summary(found))
        elif action == "reject":
            text = Reply.safe_text(f"Message refused: attachment cannot be checked: {first}", 200)
            report.reject(REPLY_UNCHECKABLE.with_text(text), f"banned unchecked {first}")
        elif action == "tempfail":
            report.tempfail(REPLY_UNCHECKABLE_LATER, f"banned unchecked {first}")
