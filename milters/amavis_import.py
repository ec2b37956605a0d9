"""amavisd-new's configuration read into Owlery's milter settings: `owlery milter import-amavis`.

Three steps. `read_config` reads the files amavisd would (Debian: /usr/share/amavis/conf.d
then /etc/amavis/conf.d, each directory's files as run-parts lists them, in name order; or
one amavisd.conf) with milters/amavis_conf.py, which never runs Perl, over amavis' built-in
defaults (Amavis/Conf.pm) for the variables the mapping reads. `plan` decides, variable by
variable, what amavisd does with them and which Owlery settings do the same (milters/stages/*,
milters/settings.py, owlery/quarantine): stages from the bypass maps and @av_scanners,
spam levels and destinies into the milter_score_* thresholds, banned-file patterns into
the banned_* lists (tests/milters/test_banned_amavis_differential.py relates the two),
networks, quarantine, DKIM keys (copy commands listed, nothing written). `render` makes the
TOML lines (stdout, a comment above each naming its source, file:line) and the lines
about what could not be carried over, what was not understood and notes (stderr).
Read-only: writes nothing. Exit 0: all carried over; 1: something not (each said, with the
reason); 2: nothing could be read.
Talks to: the file system (reads amavis' files). Tests: tests/milters/test_amavis_import.py
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import stat
from typing import Any, TextIO

from milters import amavis_conf as ac
from milters.amavis_conf import Array, Assigned, Config, Const, Hash, PerlCall, PerlRegex, Ref, Unknown, Where
from owlery.cliutil import FileRefused, read_regular_file

DEBIAN_DIRS = ("/usr/share/amavis/conf.d", "/etc/amavis/conf.d")
SINGLE_FILES = ("/etc/amavisd.conf", "/etc/amavis/amavisd.conf")
EXIT_OK, EXIT_NOT_CARRIED, EXIT_UNREADABLE = 0, 1, 2
MAX_FILE_BYTES = 1 << 20          # amavisd.conf-sample is about 100 KiB
MAX_FILES = 100
NEVER = 1e6                       # a level no score reaches (settings refuse inf; GTUBE scores 1000)
MAX_WORKERS = 8                   # an Owlery worker uses about a core; amavis children mostly wait
RUN_PARTS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")    # run-parts(8)'s default name rule (Debian)

_DEFAULT = Where("amavis' built-in default (Amavis/Conf.pm)", 0)
# Amavis/Conf.pm's values for the variables read below, where a file leaves them out.
AMAVIS_SCALARS: dict[str, Any] = {
    "MYHOME": "/var/amavis", "myproduct_name": "amavis",
    "final_virus_destiny": Const("D_DISCARD"), "final_banned_destiny": Const("D_DISCARD"),
    "final_spam_destiny": Const("D_PASS"), "final_bad_header_destiny": Const("D_PASS"),
    "max_servers": 2, "X_HEADER_TAG": "X-Virus-Scanned", "QUARANTINEDIR": None,
    "virus_quarantine_to": "virus-quarantine", "banned_quarantine_to": "banned-quarantine",
    "spam_quarantine_to": "spam-quarantine",
}
AMAVIS_ARRAYS: dict[str, list[Any]] = {
    "mynetworks": ["127.0.0.0/8", "[::1]", "169.254.0.0/16", "[fe80::]/10", "10.0.0.0/8", "172.16.0.0/12",
                   "192.168.0.0/16", "[fc00::]/7"],
    "mynetworks_maps": [Ref("@", "mynetworks")],
    "local_domains_maps": [Ref("%", "local_domains"), Ref("@", "local_domains_acl"), Ref("$", "local_domains_re")],
    **{f"bypass_{what}_checks_maps": [Ref("%", f"bypass_{what}_checks"), Ref("@", f"bypass_{what}_checks_acl"),
                                      Ref("$", f"bypass_{what}_checks_re")] for what in ("spam", "virus", "banned")},
}

# Variables that need no counterpart, by why (said once, as a note, with where each is set).
IGNORED: dict[str, tuple[str, ...]] = {
    "decoder programs: Owlery opens archives itself (libarchive, zip, tar)": (
        "file", "gzip", "bzip2", "lzop", "rpm2cpio", "cabextract", "uncompress", "unfreeze", "arc", "unarj",
        "unrar", "zoo", "lha", "pax", "cpio", "ar", "ripole", "dspam", "altermime", "lz4", "lrzip", "rar",
        "7z", "p7zip", "tnef", "zstd"),
    "amavisd's own process, socket and files: Owlery's are its own settings (daemon_user, milter_listen)": (
        "daemon_user", "daemon_group", "MYHOME", "TEMPBASE", "db_home", "pid_file", "lock_file", "helpers_home",
        "unix_socketname", "inet_socket_port", "inet_socket_bind", "path", "enable_db", "enable_global_cache",
        "quarantine_subdir_levels", "nanny_details_level", "max_requests", "child_timeout", "daemon_chroot_dir",
        "mydomain", "myproduct_name", "inet_acl", "unix_socket_mode", "forward_method", "notify_method"),
    "logging: Owlery logs one line per decision (log_level, log_target)": (
        "log_level", "DO_SYSLOG", "syslog_ident", "syslog_facility", "syslog_priority", "log_recip_templ",
        "LOGFILE", "log_templ", "sa_debug"),
    "notification texts and their encodings: Owlery's notices have their own": (
        "hdr_encoding", "bdy_encoding", "notify_sender_templ", "notify_virus_sender_templ",
        "notify_virus_admin_templ", "notify_virus_recips_templ", "notify_spam_sender_templ",
        "notify_spam_admin_templ"),
}
_IGNORED = {name: why for why, names in IGNORED.items() for name in names}
_IGNORED_ELEMENTS = {"ENV": "amavisd's environment (PATH, TMPDIR)"}
# Variables that would change what amavis decides, but have no Owlery counterpart.
NO_COUNTERPART: dict[str, str] = {
    "score_sender_maps": "sender soft-white/blacklists: Owlery has no per-sender score tables (score senders "
                         "in SpamAssassin's local.cf with whitelist_from / blacklist_from, spamd reads it)",
    "whitelist_sender_maps": "sender whitelists: whitelist_from in SpamAssassin's local.cf (spamd reads it)",
    "blacklist_sender_maps": "sender blacklists: blacklist_from in SpamAssassin's local.cf (spamd reads it)",
    "viruses_that_fake_sender_maps": "virus notices to senders: Owlery never notifies senders of viruses",
    "keep_decoded_original_maps": "which originals clamd also sees: Owlery always streams the whole message to clamd",
    "spam_lovers_maps": "per-recipient spam lovers: list them with spam_lover in files_content_policy",
    "virus_lovers_maps": "per-recipient virus lovers: list them with virus_lover in files_content_policy",
    "banned_files_lovers_maps": "per-recipient banned-file lovers: banned_files_lover in files_content_policy",
    "spam_tag_level_maps": "per-recipient spam levels: files_spam_levels with spam_directory_levels",
    "spam_tag2_level_maps": "per-recipient spam levels: files_spam_levels with spam_directory_levels",
    "spam_kill_level_maps": "per-recipient spam levels: files_spam_levels with spam_directory_levels",
    "banned_namepath_re": "banned rules on the whole decoding path: Owlery bans by name, type and content",
    "banned_filename_maps": "banned rules by recipient: Owlery's banned rules are the same for everyone "
                            "(banned_files_lover in files_content_policy exempts recipients)",
    "av_scanners_backup": "backup virus scanners: Owlery talks to clamd only",
    "dkim_signature_options_bysender_maps": "per-sender DKIM signature options: Owlery signs relaxed/relaxed "
                                            "with its dkim_sign_headers for every domain",
    "policy_bank": "policy banks: content_policy_banks (chosen per recipient) come closest",
    "interface_policy": "policy banks by listening socket: Owlery chooses stages by {daemon_name} "
                        "(milter_daemon_stages)",
    "client_ipaddr_policy": "policy banks by client address: milter_internal_networks and milter_daemon_stages",
    "sa_local_tests_only": "SpamAssassin without network tests: start spamd with --local (-L) instead",
    "sa_spam_report_header": "the X-Spam-Report header: Owlery writes X-Spam-Status and X-Owlery-Score",
    "bad_header_admin": "notices of bad headers: Owlery sends none (it scores header faults)",
}


DESTINY_NUMBERS = {-4: "D_TEMPFAIL", -3: "D_REJECT", -2: "D_BOUNCE", 0: "D_DISCARD", 1: "D_PASS"}
ACTIONS = {"D_DISCARD": "quarantine", "D_REJECT": "reject", "D_BOUNCE": "reject"}


class AmavisUnreadable(Exception):
    """No configuration could be read at all (exit status 2)."""


@dataclasses.dataclass
class AmavisImport:
    settings: list[tuple[str, Any, str]]          # (Owlery setting, value, where it came from)
    not_carried: list[str]
    notes: list[str]
    not_understood: list[str]
    copies: list[str]                             # shell commands that copy the DKIM keys

    @property
    def exit_status(self) -> int:
        return EXIT_NOT_CARRIED if self.not_carried or self.not_understood else EXIT_OK


# --- reading ----------------------------------------------------------------------------

def default_paths() -> list[str]:
    """What amavisd reads with no -c: Debian's two conf.d directories, else one amavisd.conf."""
    if os.path.isdir(DEBIAN_DIRS[1]):
        return [d for d in DEBIAN_DIRS if os.path.isdir(d)]
    for path in SINGLE_FILES:
        if os.path.exists(path):
            return [path]
    raise AmavisUnreadable(f"none of {DEBIAN_DIRS[1]}, {', '.join(SINGLE_FILES)} exists: name the "
                           "configuration with --amavis-conf")


def list_files(paths: list[str]) -> list[str]:
    """The files read, in order: a directory's as run-parts --list gives them (names of letters,
    digits, - and _ only, sorted: 50-user.dpkg-old is skipped, as amavisd skips it)."""
    out: list[str] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as e:
            raise AmavisUnreadable(f"{path}: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            out += [os.path.join(path, n) for n in sorted(os.listdir(path))
                    if RUN_PARTS_NAME.match(n) and os.path.isfile(os.path.join(path, n))]
        else:
            out.append(path)
        if len(out) > MAX_FILES:
            raise AmavisUnreadable(f"more than {MAX_FILES} files under {', '.join(paths)}")
    return out


def seeded(defines: dict[str, str]) -> Config:
    """A Config holding amavis' built-in defaults and the values given with --define."""
    config = Config()
    for name, value in AMAVIS_SCALARS.items():
        config.scalars[name] = Assigned(value, _DEFAULT, "")
    for name, items in AMAVIS_ARRAYS.items():
        config.arrays[name] = Assigned(list(items), _DEFAULT, "")
    for name, value in defines.items():
        config.scalars[name] = Assigned(value, Where(f"--define {name}", 0), f"${name} = {value!r}")
        config.defined[name] = value
    return config


def read_config(paths: list[str], defines: dict[str, str] | None = None) -> Config:
    """Every file of `paths` read in order into one Config (AmavisUnreadable if none can be)."""
    config = seeded(defines or {})
    files = list_files(paths)
    if not files:
        raise AmavisUnreadable(f"no configuration file in {', '.join(paths)}")
    unread = []
    for path in files:
        try:
            data = read_regular_file(path, MAX_FILE_BYTES)
        except FileRefused as e:
            unread.append(str(e))
            continue
        ac.read_text(data.decode("utf-8", "replace"), path, config)
    if len(unread) == len(files):
        raise AmavisUnreadable("; ".join(unread))
    for why in unread:
        config.not_understood.append(ac.NotUnderstood(Where(why.split(":", 1)[0], 0), "", why.split(": ", 1)[-1]))
    return config


# --- the plan ---------------------------------------------------------------------------

class _Plan:
    def __init__(self, config: Config, key_directory: str, key_owner: str):
        self.c = config
        self.key_directory, self.key_owner = key_directory, key_owner
        self.out = AmavisImport([], [], [f"not read: {n}" for n in config.stood_in_for],
                                [str(n) for n in config.not_understood], [])
        self.read: set[str] = set()               # "$name", "@name", "%name" the mapping looked at
        from owlery.settings import import_all_sections
        import_all_sections()                     # every setting's declaration, to check each value

    # what the files say
    def get(self, var: str) -> Assigned | None:
        self.read.add(var)
        return self.c.get(var[0], var[1:])

    def value(self, var: str) -> Any:
        a = self.get(var)
        return None if a is None else a.value

    def src(self, *vars_: str) -> str:
        parts = []
        for var in vars_:
            a = self.get(var)
            if a is None:
                parts.append(f"{var} unset")
            elif a.where.line == 0:
                parts.append(f"{var} = {_show(a.value)} ({a.where})")
            elif len(a.text) > 60:
                parts.append(f"{var} ({a.where})")
            else:
                parts.append(f"{a.text} ({a.where})")
        return "; ".join(parts)

    def put(self, name: str, value: Any, source: str) -> None:
        from owlery.settings import declared
        declared()[name].type.parse(value)       # a value Owlery's loader accepts
        self.out.settings.append((name, value, source))

    def no(self, text: str) -> None:
        self.out.not_carried.append(text)

    def note(self, text: str) -> None:
        self.out.notes.append(text)

    # --- the parts ---
    def bypassed(self, var: str) -> bool:
        """Whether amavis skips these checks for everyone (a constant true in the maps list)."""
        a = self.get(var)
        items = a.value if a is not None and isinstance(a.value, list) else ([] if a is None else [a.value])
        for item in items:
            if isinstance(item, Unknown):
                self.no(f"{self.src(var)}: {item.reason}; the check is taken as on")
                return False
            truth = ac.perl_true(item)
            if truth is not None and not isinstance(item, (Array, Hash)):
                if truth:
                    return True
                continue
            table = self._table_of(item)
            if table:
                self.no(f"{self.src(var)}: skips the check for some recipients only ({_show(item)}); Owlery "
                        "runs a stage for every recipient (a *_lover in files_content_policy comes closest): "
                        "the stage is on for all")
        return False

    def _table_of(self, item: Any) -> Any:
        """The entries of one lookup table in a *_maps list; None or empty when there are none."""
        if isinstance(item, Ref):
            a = self.get(item.sigil + item.name) if item.sigil in "$@%" else None
            if a is None or a.value is None:
                return None
            value = a.value
            if isinstance(value, Hash):
                return value.pairs
            return value
        if isinstance(item, Array):
            return item.items
        if isinstance(item, Hash):
            return item.pairs
        return [item]

    def destiny(self, var: str) -> str | None:
        v = self.value(var)
        if isinstance(v, Const):
            return v.name
        if isinstance(v, int) and not isinstance(v, bool) and v in DESTINY_NUMBERS:
            return DESTINY_NUMBERS[v]                # Amavis/Conf.pm's `use constant` values
        self.no(f"{self.src(var)}: not one of {', '.join(ac.DESTINIES)}; nothing is carried over for it")
        return None

    def clamd(self) -> tuple[str, str] | None:
        """(clamd_endpoint, where) from @av_scanners' ClamAV-clamd entry."""
        a = self.get("@av_scanners")
        entries = a.value if a is not None and isinstance(a.value, list) else []
        if a is None:
            self.note("@av_scanners is not set (amavis then scans with nothing): the antivirus stage needs clamd")
            return None
        if isinstance(a.value, Unknown):
            self.no(f"@av_scanners: {a.value.reason}")
            return None
        found, others = None, []
        for e in entries:
            name = e.items[0] if isinstance(e, Array) and e.items and isinstance(e.items[0], str) else None
            if name is not None and name.lower().startswith("clamav-clamd") and found is None:
                found = e
            elif name is not None:
                others.append(name)
        if others:
            self.note(f"@av_scanners ({a.where}) also lists {len(others)} other scanner(s) ({', '.join(others[:5])}"
                      f"{', ...' if len(others) > 5 else ''}): Owlery talks to clamd only (amavis used those of "
                      "them that are installed)")
        if found is None:
            self.no(f"@av_scanners ({a.where}) has no ClamAV-clamd entry: Owlery scans with clamd only")
            return None
        args = found.items[2] if len(found.items) > 2 else None
        socket = args.items[1] if isinstance(args, Array) and len(args.items) > 1 else None
        if isinstance(socket, Array):
            if len(socket.items) > 1:
                self.no(f"@av_scanners ({a.where}): ClamAV-clamd lists several sockets ({_show(socket)}); Owlery "
                        "talks to one: the first is printed")
            socket = socket.items[0] if socket.items else None
        if not isinstance(socket, str):
            self.no(f"@av_scanners ({a.where}): the ClamAV-clamd entry's socket is not a plain string "
                    f"({_show(socket)}); clamd_endpoint is left at Owlery's default")
            return None
        m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):(\d+)", socket)
        if socket.startswith("/"):
            return "unix:" + socket, str(a.where)
        if m:
            return f"tcp:{m.group(1)}:{m.group(2)}", str(a.where)
        self.no(f"@av_scanners ({a.where}): ClamAV-clamd socket {socket!r} is neither a path nor host:port")
        return None


def plan(config: Config, key_directory: str = "/etc/owlery/dkim", key_owner: str = "") -> AmavisImport:
    """Owlery's settings for what amavisd does with `config`; what cannot be carried over, and why."""
    p = _Plan(config, key_directory, key_owner)
    out = p.out

    # 1. Which checks run.
    spam_on = not p.bypassed("@bypass_spam_checks_maps")
    virus_on = not p.bypassed("@bypass_virus_checks_maps")
    banned_on = not p.bypassed("@bypass_banned_checks_maps")
    clamd = p.clamd() if virus_on else None
    virus_d = p.destiny("$final_virus_destiny")
    banned_d = p.destiny("$final_banned_destiny")
    spam_d = p.destiny("$final_spam_destiny")
    if virus_on and virus_d == "D_PASS":
        p.no(f"{p.src('$final_virus_destiny')}: amavis delivers infected mail; Owlery refuses or quarantines "
             "it (virus_lover in files_content_policy delivers it to some): the antivirus stage is left out")
        virus_on = False
    if virus_on and clamd is None:
        virus_on = False
    banned_re = p.get("$banned_filename_re")
    if banned_on and (banned_re is None or banned_re.value is None):
        p.note("$banned_filename_re is not set: amavis bans no file names; the banned stage is left out")
        banned_on = False
    if banned_on and banned_d == "D_PASS":
        p.note(f"{p.src('$final_banned_destiny')}: banned files are delivered: the banned stage is left out")
        banned_on = False
    verify = ac.perl_true(p.value("$enable_dkim_verification")) is True
    keys = _dkim_keys(p)
    sign = ac.perl_true(p.value("$enable_dkim_signing")) is True and bool(keys)
    if keys and not sign:
        p.note(f"dkim_key() names {len(keys)} key(s) but {p.src('$enable_dkim_signing')}: amavis does not sign; "
               "neither does the import")
    content = [n for n, on in (("antivirus", virus_on), ("banned", banned_on), ("spam", spam_on)) if on]
    if content:
        content.append("quarantine")
    inbound = (["dkim_verify"] if verify else []) + (["authres"] if verify else []) + content
    outbound = content + (["dkim_sign"] if sign else []) + ["authres"]
    why = "; ".join(x for x in (
        f"spam checks {'on' if spam_on else 'off'} ({p.src('@bypass_spam_checks_maps')})",
        f"virus checks {'on' if virus_on else 'off'} ({p.src('@bypass_virus_checks_maps')})",
        f"banned checks {'on' if banned_on else 'off'} ({p.src('$final_banned_destiny')})",
        f"DKIM verification {'on' if verify else 'off'} ({p.src('$enable_dkim_verification')})") if x)
    p.put("milter_inbound_stages", inbound, why)
    p.put("milter_outbound_stages", outbound, "amavis checks originating mail (@mynetworks) the same way"
          + (f"; signs it ({p.src('$enable_dkim_signing')})" if sign else ""))
    p.note("amavis does not check SPF, ARC or DMARC; Owlery's default inbound stages do (spf, dkim_verify, "
           "arc_verify, dmarc, authres): add them to milter_inbound_stages to keep them")

    # 2. Networks, names, processes.
    _networks(p)
    _local_domains(p)
    host = p.value("$myhostname")
    if isinstance(host, str) and host:
        p.put("milter_authserv_id", host, p.src("$myhostname"))
    elif isinstance(host, Unknown):
        p.note(f"$myhostname: {host.reason}; milter_authserv_id is left unset (Owlery then uses Postfix's "
               "myhostname, or this host's name; give --define myhostname=NAME to print it)")
    servers = p.value("$max_servers")
    if isinstance(servers, (int, float)) and servers >= 1:
        workers = min(int(servers), MAX_WORKERS)
        p.put("milter_workers", workers, p.src("$max_servers")
              + (f", capped at {MAX_WORKERS}: one Owlery worker keeps about a core busy, where amavis children "
                 "mostly wait for scanners (set it to the number of cores)" if servers > MAX_WORKERS else ""))

    # 3. Spam.
    if spam_on:
        _spam(p, spam_d)
    else:
        _unused(p, "spam checks are off", SPAM_VARS)
    # 4. Viruses.
    if not virus_on:
        _unused(p, "virus checks are off", VIRUS_VARS)
    if virus_on:
        action = ACTIONS.get(virus_d or "")
        if action:
            p.put("antivirus_infected_action", action, p.src("$final_virus_destiny"))
        elif virus_d == "D_TEMPFAIL":
            p.no(f"{p.src('$final_virus_destiny')}: Owlery refuses or quarantines infected mail, never defers it")
        if virus_d == "D_BOUNCE":
            p.note("D_BOUNCE for viruses: amavis sends a bounce; Owlery rejects in the SMTP dialogue (the client "
                   "bounces, no backscatter from here)")
        assert clamd is not None
        p.put("clamd_endpoint", clamd[0], f"the ClamAV-clamd entry of @av_scanners ({clamd[1]})")
        _scanned_header(p)
    # 5. Banned files.
    if banned_on:
        _banned(p, banned_d)
    _archive_limits(p, banned_on)
    # 6. Quarantine, notices.
    _quarantine(p, {"virus": virus_on and virus_d == "D_DISCARD", "banned": banned_on and banned_d == "D_DISCARD",
                    "spam": spam_on and spam_d == "D_DISCARD"})
    bad = p.destiny("$final_bad_header_destiny")
    if bad not in (None, "D_PASS"):
        p.no(f"{p.src('$final_bad_header_destiny')}: Owlery does not block mail for bad headers; it scores them "
             "(HDR_* in spam_evidence_scores) into the spam total")
    # 7. DKIM.
    if sign:
        _dkim_sign(p, keys)
    _leftovers(p)
    return out


SPAM_VARS = ("$sa_tag_level_deflt", "$sa_tag2_level_deflt", "$sa_kill_level_deflt", "$sa_dsn_cutoff_level",
             "$sa_spam_subject_tag", "$sa_mail_body_size_limit", "$sa_local_tests_only", "$final_spam_destiny",
             "@score_sender_maps", "@whitelist_sender_maps", "@blacklist_sender_maps")
VIRUS_VARS = ("@av_scanners", "$X_HEADER_TAG", "$X_HEADER_LINE", "@av_scanners_backup",
              "@viruses_that_fake_sender_maps", "@keep_decoded_original_maps")


def _unused(p: _Plan, why: str, variables: tuple[str, ...]) -> None:
    """Variables of checks that are off: said once, not printed."""
    wheres = [f"{v} ({a.where})" for v in variables if (a := p.get(v)) is not None and a.where.line]
    if wheres:
        p.note(f"{why}: not printed: {', '.join(wheres)}")


def _spam(p: _Plan, destiny: str | None) -> None:
    tag, tag2, kill = (p.value(v) for v in ("$sa_tag_level_deflt", "$sa_tag2_level_deflt", "$sa_kill_level_deflt"))
    inf = NEVER
    for var, v in (("$sa_tag_level_deflt", tag), ("$sa_tag2_level_deflt", tag2), ("$sa_kill_level_deflt", kill)):
        if v is not None and not isinstance(v, (int, float)):
            p.no(f"{p.src(var)}: not a number; left out")
    if isinstance(tag, (int, float)):
        p.put("spam_tag_level", float(tag), p.src("$sa_tag_level_deflt"))
    p.put("milter_score_tag", float(tag2) if isinstance(tag2, (int, float)) else inf,
          p.src("$sa_tag2_level_deflt") + ("" if isinstance(tag2, (int, float)) else
                                           ": no tag2 level, never spam (a level no score reaches)"))
    killing = isinstance(kill, (int, float))
    src = f"{p.src('$sa_kill_level_deflt')} with {p.src('$final_spam_destiny')}"
    if destiny == "D_DISCARD" and killing:
        # spam_quarantine_level set: the spam stage then refuses nothing (no spam_reject_level).
        p.put("spam_quarantine_level", float(kill), src + ": kept from the recipient, never refused")
    elif destiny == "D_TEMPFAIL" and killing:
        p.no(f"{src}: Owlery never defers spam (retrying will not make it less spam); not carried over")
    elif destiny in ("D_REJECT", "D_BOUNCE") and killing:
        p.put("milter_score_reject", float(kill), src)
        if destiny == "D_BOUNCE":
            cutoff = p.value("$sa_dsn_cutoff_level")
            p.note(f"{src}: amavis bounces spam (and above {p.src('$sa_dsn_cutoff_level')} drops it silently); "
                   "Owlery refuses it in the SMTP dialogue, so the client, not this host, tells the sender"
                   + ("" if isinstance(cutoff, (int, float)) else ""))
    else:
        p.put("milter_score_reject", inf, src + ": spam is delivered, tagged, whatever its score (Owlery "
              "always has a reject level: this one no score reaches)")
    if destiny != "D_BOUNCE" and p.get("$sa_dsn_cutoff_level") is not None:
        p.note(f"{p.src('$sa_dsn_cutoff_level')}: only matters for D_BOUNCE; nothing to carry over")
    subject = p.value("$sa_spam_subject_tag")
    if isinstance(subject, str) and subject:
        if re.search(r"_[A-Z]+_", subject):
            p.no(f"{p.src('$sa_spam_subject_tag')}: holds an amavis macro; Owlery's tag is literal text")
        else:
            p.put("spam_subject_tag", subject, p.src("$sa_spam_subject_tag"))
    elif isinstance(subject, Unknown):
        p.no(f"$sa_spam_subject_tag: {subject.reason}")
    limit = p.value("$sa_mail_body_size_limit")
    if isinstance(limit, (int, float)) and limit > 0:
        p.put("spamd_max_size", int(limit), p.src("$sa_mail_body_size_limit"))
    p.note("amavis runs SpamAssassin inside amavisd; Owlery asks spamd (spamd_endpoint, default "
           "tcp:127.0.0.1:783; spamd_user, spamd_timeout): run spamd (Debian: package spamd) on the same "
           "/etc/spamassassin/local.cf")


def _scanned_header(p: _Plan) -> None:
    tag, line = p.value("$X_HEADER_TAG"), p.value("$X_HEADER_LINE")
    if line == "":
        p.put("antivirus_scanned_header", "", p.src("$X_HEADER_LINE") + ": no header")
        return
    if isinstance(tag, str) and tag:
        p.put("antivirus_scanned_header", tag, p.src("$X_HEADER_TAG"))
    if p.get("$X_HEADER_LINE") is not None:
        p.note(f"{p.src('$X_HEADER_LINE')}: the header's text is Owlery's own (\"ClamAV at HOST\")")


_DOUBLE = re.compile(r"\\\.\[\^\./\]\*\\\.\(([A-Za-z0-9|_-]+)\)\\\.\?\$")
_EXT = re.compile(r"\.?\\\.\(([A-Za-z0-9|_-]+)\)\$")
_TYPE = re.compile(r"\^((?:[a-z0-9+_-]|\\\.)+/(?:[a-z0-9+_-]|\\\.)+)\$")
_FILETYPE = re.compile(r"\^\\\.\(([A-Za-z0-9|_-]+)\)\$")
_CLSID = r"\{[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\}?$"
EXECUTABLE_TYPES = {"exe-ms", "exe", "dll", "exe-unix"}   # file(1) short types Owlery's MZ/ELF check covers


def _banned(p: _Plan, destiny: str | None) -> None:
    a = p.get("$banned_filename_re")
    assert a is not None
    value = a.value
    entries = list(value.args) if isinstance(value, PerlCall) and value.name == "new_RE" else (
        [value] if isinstance(value, PerlRegex) else None)
    if entries is None:
        p.no(f"{p.src('$banned_filename_re')}: not a new_RE(...) list or a qr//: the banned rules are Owlery's "
             "defaults")
        return
    ext: set[str] = set()
    double: set[str] = set()
    types: set[str] = set()
    executable = undecipherable = False
    for e in entries:
        if isinstance(e, Array) and len(e.items) == 2 and isinstance(e.items[0], PerlRegex):
            if ac.perl_true(e.items[1]):
                e = e.items[0]
            else:
                p.no(f"$banned_filename_re ({a.where}): the exception [qr'{e.items[0].pattern}' => "
                     f"{_show(e.items[1])}] is not carried over: Owlery's banned rules have no exceptions")
                continue
        if not isinstance(e, PerlRegex):
            p.no(f"$banned_filename_re ({a.where}): {_show(e)} is not a pattern; not carried over")
            continue
        pattern = re.sub(r"\s+", "", e.pattern) if "x" in e.flags else e.pattern
        nocase = "i" in e.flags
        if m := _DOUBLE.fullmatch(pattern):
            double |= {x.lower() for x in m.group(1).split("|")}
        elif m := _EXT.fullmatch(pattern):
            ext |= {x.lower() for x in m.group(1).split("|")}
        elif m := _TYPE.fullmatch(pattern):
            types.add(m.group(1).replace("\\.", ".").lower())
        elif m := _FILETYPE.fullmatch(pattern):
            short = set(m.group(1).split("|"))
            if short & EXECUTABLE_TYPES:
                executable = True
            if short - EXECUTABLE_TYPES:
                p.no(f"$banned_filename_re ({a.where}): qr'{e.pattern}' bans file(1) types "
                     f"{', '.join(sorted(short - EXECUTABLE_TYPES))}; Owlery recognises executables (Windows MZ, "
                     "ELF) by content only (banned_executable_content)")
            continue
        elif pattern.lower() == _CLSID.lower():
            p.note(f"$banned_filename_re ({a.where}): the Windows class id pattern: Owlery always bans it")
            continue
        elif pattern == "^UNDECIPHERABLE$":
            undecipherable = True
            continue
        else:
            p.no(f"$banned_filename_re ({a.where}): qr'{e.pattern}'{e.flags} is no extension, double extension, "
                 "MIME type or file(1) type pattern Owlery has a list for; not carried over")
            continue
        if not nocase:
            p.note(f"$banned_filename_re ({a.where}): qr'{e.pattern}' is case-sensitive; Owlery compares "
                   "extensions and types in any case")
    action = ACTIONS.get(destiny or "")
    if action:
        p.put("banned_action", action, p.src("$final_banned_destiny"))
    elif destiny == "D_TEMPFAIL":
        p.no(f"{p.src('$final_banned_destiny')}: Owlery refuses or quarantines banned files, never defers them")
    src = p.src("$banned_filename_re")
    p.put("banned_extensions", sorted(ext), f"the .\\.(...)$ patterns of {src}")
    p.put("banned_double_extension_extensions", sorted(double), f"the \\.[^./]*\\.(...)\\.?$ patterns of {src}")
    p.put("banned_content_types", sorted(types), f"the ^type/subtype$ patterns of {src}")
    p.put("banned_executable_content", executable,
          f"{'a' if executable else 'no'} ^\\.(exe-ms...)$ file(1) type pattern in {src}")
    if undecipherable and action:
        p.put("banned_undecidable_action", action, f"qr'^UNDECIPHERABLE$' in {src}")
        p.put("banned_encrypted_action", action, f"qr'^UNDECIPHERABLE$' in {src}")
    p.note("Owlery's default banned lists are longer than Debian's (js, dll, msi, hta, lnk, jar, ps1, iso...): "
           "the lists printed are amavis' own; leave a line out to keep Owlery's")


def _archive_limits(p: _Plan, banned_on: bool) -> None:
    for var, name, low, high in (("$MAXLEVELS", "banned_archive_depth_max", 1, 64),
                                 ("$MAXFILES", "banned_archive_members_max", 0, None),
                                 ("$MAX_EXPANSION_QUOTA", "banned_inflate_bytes_max", 1, None)):
        v = p.value(var)
        if v is None or not banned_on:
            continue
        if not isinstance(v, (int, float)) or v <= 0:
            p.note(f"{p.src(var)}: amavis then sets no limit; Owlery always has one ({name})")
            continue
        n = int(v)
        clamped = max(low, n) if high is None else min(max(low, n), high)
        extra = ""
        if var == "$MAXLEVELS":
            extra = ": amavis counts MIME levels too, Owlery archive levels only (MIME: banned_mime_depth_max)"
        if clamped != n:
            extra += f", held to Owlery's range ({low}..{high})"
        p.put(name, clamped, p.src(var) + extra)
    if p.get("$MIN_EXPANSION_QUOTA") is not None and banned_on:
        p.note(f"{p.src('$MIN_EXPANSION_QUOTA')}: Owlery judges archive bombs by banned_inflate_ratio_max and "
               "banned_inflate_bytes_max instead of a quota growing with the message")


def _networks(p: _Plan) -> None:
    maps = p.get("@mynetworks_maps")
    items: list[Any] = []
    for entry in (maps.value if maps is not None and isinstance(maps.value, list) else []):
        table = p._table_of(entry)
        if isinstance(entry, PerlCall) or isinstance(table, Unknown):
            p.no(f"{p.src('@mynetworks_maps')}: {_show(entry)} is read at run time or unknown; list its networks "
                 "in milter_internal_networks")
            continue
        for x in table if isinstance(table, (list, tuple)) else []:
            if not isinstance(x, tuple):
                items.append(x)
            elif ac.perl_true(x[1]):
                items.append(x[0])                # a hash table: its keys looked up true
            else:
                p.no(f"{p.src('@mynetworks_maps')}: {_show(x[0])} => {_show(x[1])} excludes a network; Owlery's "
                     "list has no exclusions: left out")
    nets: list[str] = []
    for item in items:
        if isinstance(item, Unknown):
            p.no(f"@mynetworks: {item.reason}")
            continue
        if not isinstance(item, str):
            p.no(f"@mynetworks: {_show(item)} is not an address; left out")
            continue
        text = item.strip()
        if text.startswith("!"):
            p.no(f"@mynetworks: {text!r} excludes a network; Owlery's list has no exclusions: left out, so the "
                 "network it excluded from a larger one counts as internal")
            continue
        text = re.sub(r"^\[([^\]]+)\]", r"\1", text)
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            p.no(f"@mynetworks: {item!r} is no address or network Owlery reads; left out")
            continue
        if str(net) not in nets:
            nets.append(str(net))
    source = p.src("@mynetworks_maps") if maps is not None and maps.where.line else p.src("@mynetworks")
    if nets:
        p.put("milter_internal_networks", nets, source + ": originating mail (signed, scanned as outbound)")


def _local_domains(p: _Plan) -> None:
    maps = p.get("@local_domains_maps")
    domains: list[str] = []
    for entry in (maps.value if maps is not None and isinstance(maps.value, list) else []):
        if isinstance(entry, Ref) and entry.sigil == "$":
            if p.value("$" + entry.name) is not None:
                p.no(f"${entry.name}: local domains by pattern; not carried over")
            continue
        table = p._table_of(entry)
        if isinstance(table, Unknown):
            p.no(f"{_show(entry)}: {table.reason}")
            continue
        for x in table or []:
            x = x[0] if isinstance(x, tuple) else x
            if isinstance(x, Unknown):
                p.no(f"{_show(entry)}: {x.reason}; the local domains are not known")
            elif isinstance(x, str):
                domains.append(x)
            else:
                p.no(f"{_show(entry)}: {_show(x)} is read at run time or is no domain; not carried over")
    if domains:
        shown = ", ".join(d[1:] + " (and its subdomains)" if d.startswith(".") else d for d in domains)
        p.no(f"local domains {shown}: Owlery's hosted domains come from the directory (the files_domains file, "
             "one per line, or LDAP), not from a milter setting: make sure they are listed there; amavis adds "
             "spam headers for local recipients only, Owlery to all mail it scans")


def _quarantine(p: _Plan, kept: dict[str, bool]) -> None:
    reasons = [r for r, on in kept.items() if on]
    if reasons:
        p.put("quarantine_action", "discard", f"D_DISCARD for {', '.join(reasons)}: accepted, not delivered")
        qdir = p.value("$QUARANTINEDIR")
        for reason in reasons:
            to = p.value(f"${reason}_quarantine_to")
            if isinstance(to, str) and "@" in to:
                p.no(f"{p.src(f'${reason}_quarantine_to')}: amavis mails {reason} quarantine to a mailbox; Owlery "
                     "keeps it in its store (`owlery quarantine`, `owlery web` release it)")
            elif not to or qdir is None:
                p.note(f"{p.src(f'${reason}_quarantine_to')} with {p.src('$QUARANTINEDIR')}: amavis drops "
                       f"{reason} mail it discards; Owlery keeps a copy (expired after quarantine_expire_"
                       f"{reason}_age)")
        if isinstance(qdir, str):
            p.note(f"{p.src('$QUARANTINEDIR')}: Owlery keeps its quarantine in quarantine_directory "
                   "(/var/lib/owlery/quarantine by default) with an index; amavis' quarantined files stay "
                   "where they are")
    admin = p.value("$virus_admin")
    for reason in ("banned", "spam"):
        other = p.value(f"${reason}_admin")
        if isinstance(other, str) and other and not (isinstance(admin, str) and admin):
            p.no(f"{p.src(f'${reason}_admin')}: {reason} notices without $virus_admin; Owlery's "
                 "quarantine_admin_address gets the notices of quarantine_admin_notice_reasons: set both")
    if isinstance(admin, str) and admin:
        p.put("quarantine_admin_address", admin, p.src("$virus_admin"))
        notify = ["virus"]
        for reason in ("banned", "spam"):
            other = p.value(f"${reason}_admin")
            if other == admin:
                notify.append(reason)
            elif isinstance(other, str) and other:
                p.no(f"{p.src(f'${reason}_admin')}: a second admin address; Owlery has one "
                     "(quarantine_admin_address)")
        p.put("quarantine_admin_notice_reasons", notify, p.src("$virus_admin", "$banned_admin", "$spam_admin"))
    elif isinstance(admin, Unknown):
        p.no(f"$virus_admin: {admin.reason}; quarantine_admin_address is not printed")


def _dkim_keys(p: _Plan) -> list[tuple[str, str, str, str]]:
    keys = []
    for call, where, shown in p.c.calls:
        if call.name != "dkim_key":
            continue
        args = call.args
        if len(args) < 3 or not all(isinstance(x, str) for x in args[:3]):
            p.no(f"{where}: {shown}: the domain, selector and key file must be plain strings")
            continue
        domain, selector, path = args[:3]
        if len(args) > 3:
            p.no(f"{where}: {shown}: the key options {_show(list(args[3:]))} are not carried over (Owlery "
                 "signs with its own dkim_sign_headers, relaxed/relaxed, no t= or x=)")
        keys.append((domain, selector, path, str(where)))
    return keys


def _dkim_sign(p: _Plan, keys: list[tuple[str, str, str, str]]) -> None:
    from milters import dkimkeys
    table: dict[str, list[str]] = {}
    wheres = []
    for domain, selector, path, where in keys:
        if domain.startswith(("*", ".")) or not dkimkeys._DOMAIN_RE.match(domain):
            p.no(f"{where}: dkim_key({domain!r}, ...): not a plain domain; Owlery lists exact domains (each also "
                 "covers its subdomains)")
            continue
        if not dkimkeys._SELECTOR_RE.match(selector):
            p.no(f"{where}: dkim_key(..., {selector!r}, ...): not a selector Owlery accepts")
            continue
        domain = domain.lower()
        if selector not in table.setdefault(domain, []):
            table[domain].append(selector)
        target = dkimkeys.key_path(p.key_directory, domain, selector)
        owner = f"-o {_sh(p.key_owner)} " if p.key_owner else ""
        p.out.copies.append(f"install -m 0600 {owner}{_sh(path)} {_sh(target)}")
        wheres.append(where)
    if table:
        p.put("dkim_sign_keys", table, f"dkim_key() at {', '.join(wheres)}; {p.src('$enable_dkim_signing')}")
        p.note("amavis signs the From domain's mail with the key of that domain; Owlery signs it and its "
               "subdomains with the nearest listed domain's keys")


def _sh(s: str) -> str:
    import shlex
    return shlex.quote(s)


def _leftovers(p: _Plan) -> None:
    ignored: dict[str, list[str]] = {}
    for sigil in "$@%":
        for name, a in p.c.table(sigil).items():
            var = sigil + name
            if a.where.line == 0 or var in p.read or isinstance(a.value, Unknown):
                continue                          # (an Unknown's statement is reported as not understood)
            if name in _IGNORED:
                ignored.setdefault(_IGNORED[name], []).append(f"{var} ({a.where})")
            elif name in NO_COUNTERPART:
                why = NO_COUNTERPART[name]
                if why:
                    p.no(f"{a.text} ({a.where}): {why}")
            else:
                p.no(f"{a.text} ({a.where}): not a variable this import knows; not carried over")
    for (name, key), a in p.c.elements.items():
        if name in _IGNORED_ELEMENTS:
            ignored.setdefault(_IGNORED_ELEMENTS[name], []).append(f"${name}{{{key}}} ({a.where})")
        elif name == "policy_bank" and key == "AM.PDP-SOCK":
            p.note(f"{a.text} ({a.where}): the release socket of amavisd-release: `owlery quarantine release` "
                   "replaces it")
        elif name == "interface_policy" and key == "SOCK":
            continue                               # Debian's pairing of that socket with that bank
        elif name in NO_COUNTERPART:
            p.no(f"{a.text} ({a.where}): {NO_COUNTERPART[name]}")
        else:
            p.no(f"{a.text} ({a.where}): not a variable this import knows; not carried over")
    for call, where, shown in p.c.calls:
        if call.name == "read_l10n_templates":
            ignored.setdefault(IGNORED_TEMPLATES, []).append(f"read_l10n_templates() ({where})")
        elif call.name != "dkim_key":
            p.no(f"{shown} ({where}): not carried over")
    for why, names in ignored.items():
        p.note(f"{why}: {', '.join(names)}")


IGNORED_TEMPLATES = "notification texts and their encodings: Owlery's notices have their own"


def _show(v: Any) -> str:
    if isinstance(v, Const):
        return v.name
    if isinstance(v, Ref):
        return f"\\{v.sigil}{v.name}"
    if isinstance(v, PerlRegex):
        return f"qr'{v.pattern}'{v.flags}"
    if isinstance(v, PerlCall):
        return f"{v.name}(...)"
    if isinstance(v, Unknown):
        return "(unknown)"
    if isinstance(v, Array):
        return "[" + ", ".join(_show(x) for x in v.items[:6]) + (", ..." if len(v.items) > 6 else "") + "]"
    if isinstance(v, Hash):
        return "{...}"
    if isinstance(v, list):
        return "(" + ", ".join(_show(x) for x in v[:6]) + (", ..." if len(v) > 6 else "") + ")"
    if v is None:
        return "undef"
    return repr(v)


# --- render -----------------------------------------------------------------------------

def render(result: AmavisImport, sources: list[str]) -> tuple[str, str]:
    """(the TOML lines for stdout, the comment lines for stderr)."""
    from owlery.settings import declared, import_all_sections, render_toml_value
    import_all_sections()
    decls = declared()
    lines = [f"# Owlery milter settings for amavisd-new's {', '.join(sources)} (owlery milter import-amavis)"]
    for name, value, source in result.settings:
        lines.append(f"# from {source}".replace("\n", " "))
        lines.append(f"{name} = {render_toml_value(decls[name], decls[name].type.parse(value))}")
    err = ([f"# not understood: {x}" for x in result.not_understood]
           + [f"# not carried over: {x}" for x in result.not_carried]
           + [f"# note: {x}" for x in result.notes]
           + [f"# key: copy with: {x}" for x in result.copies])
    return "\n".join(lines) + "\n", "".join(x.replace("\n", "\\n") + "\n" for x in err)


def parse_defines(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.lstrip("$")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", name):
            raise ValueError(f"--define {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def command(paths: list[str] | None, defines: list[str], settings: Any, out: TextIO, err: TextIO) -> int:
    """Exit 0: every setting carried over; 1: some could not be or some statements were not
    understood (each said on stderr, with file:line and the reason); 2: nothing could be read."""
    try:
        given = parse_defines(defines)
        sources = paths or default_paths()
        config = read_config(sources, given)
    except (AmavisUnreadable, ValueError) as e:
        print(f"owlery: milter import-amavis: {e}", file=err)
        return EXIT_UNREADABLE
    # The keys go to the milter's user, as `owlery dkim genkey` gives them (unset: whoever copies).
    result = plan(config, settings.dkim_key_directory, settings.daemon_user or "")
    toml, comments = render(result, sources)
    out.write(toml)
    err.write(comments)
    return result.exit_status
