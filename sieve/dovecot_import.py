"""Dovecot/Pigeonhole configuration as Owlery settings: `owlery sieve import-dovecot`.

Reads the text `doveconf -n` prints (a postmaster's effective Dovecot configuration), takes the
Pigeonhole `plugin { sieve_* }` settings and the delivery settings Owlery has a counterpart for
(recipient_delimiter, lda_mailbox_autocreate, postmaster_address, sendmail_path/submission_host,
mail_location/mail_home, quota_rule, ...), and returns Owlery's settings as TOML plus `# note:`
and `# not mapped:` lines. Pure: text in, text out; sieve/cli.py runs doveconf.

Which section wins: delivery is Dovecot's LMTP or dovecot-lda, whichever loads the sieve plugin
(`protocol lmtp|lda { mail_plugins }`); LMTP when both do (Owlery's LDA hands mail to its lmtpd,
and one Owlery setting serves both), a value lda sets differently is reported as not mapped.
Pigeonhole's setting names and values are translated by the tables the vnd.dovecot.testsuite
harness uses for test_config_set (sieve/pigeonhole_settings.py).
Talks to: owlery.settings (to check and render each value), sieve.pigeonhole_settings, sieve.extensions.
Tests: tests/sieve/test_dovecot_import.py (doveconf texts, and a differential run through a
private Dovecot LMTP and Owlery's delivery).
"""

from __future__ import annotations

import dataclasses
import re

from owlery.settings import SettingsError, Settings, declared, render_toml_value
from sieve import extensions
from sieve.pigeonhole_settings import (CONFIG_MAP, EDITHEADER_PREFIX, INVERTED, LIST_KEYS, VALUE_MAPS,
                                      disabled_extensions, dovecot_bool, dovecot_duration)

# Extensions Pigeonhole 0.5 (Dovecot 2.3) has but leaves out of its default sieve_extensions,
# found with sievec against an empty configuration. Owlery's default enables most of them, so
# an import names them disabled unless the Dovecot configuration enabled them.
PIGEONHOLE_DEFAULT_OFF = frozenset({
    "editheader", "imapflags", "mboxmetadata", "notify", "servermetadata", "spamtest", "spamtestplus",
    "special-use", "vacation-seconds", "virustest", "vnd.dovecot.environment", "vnd.dovecot.report",
})
# The sieve_extprograms plugin's extensions: usable only with sieve_plugins = sieve_extprograms and
# the name in sieve_extensions (user scripts) or sieve_global_extensions (global scripts only).
EXTPROGRAMS = ("vnd.dovecot.pipe", "vnd.dovecot.filter", "vnd.dovecot.execute")

# Pigeonhole settings with no Owlery counterpart, and why (printed as "# not mapped:").
NOT_MAPPED_WHY = {
    "sieve_trace_dir": "Owlery writes no per-user trace files (`owlery sieve test` shows what a script does)",
    "sieve_trace_level": "Owlery writes no per-user trace files",
    "sieve_trace_debug": "Owlery writes no per-user trace files",
    "sieve_trace_addresses": "Owlery writes no per-user trace files",
    "sieve_user_log": "Owlery logs script errors to its own log, not to a file in the user's home",
    "sieve_max_cpu_time": "Owlery bounds a script by steps (sieve_max_cpu_steps), not CPU seconds",
    "sieve_resource_usage_timeout": "Owlery keeps no per-user resource usage record",
    "sieve_global_extensions": "Owlery has no extensions reserved to global scripts; they are left disabled",
    "sieve_default_name": "the name ManageSieve shows for sieve_default: Owlery's ManageSieve lists only "
                          "the user's own scripts",
    "sieve_discard": "Owlery has no script run for discarded messages",
    "sieve_extlists_list": "Owlery's externally stored lists come from its directory (delivery_sieve_list_prefix)",
    "sieve_pipe_socket_dir": "Owlery runs programs from sieve_pipe_bin_dir, not sockets",
    "sieve_filter_socket_dir": "Owlery runs programs from sieve_filter_bin_dir, not sockets",
    "sieve_execute_socket_dir": "Owlery runs programs from sieve_execute_bin_dir, not sockets",
    "sieve_implicit_extensions": "Owlery has no extensions enabled without require",
}
# Owlery names for Pigeonhole settings the testsuite harness has no use for
_EXTRA_NAMES = {
    "sieve_redirect_duplicate_period": "redirect_duplicate_period",
    "sieve_quota_max_scripts": "managesieve_max_scripts",
    "sieve_quota_max_storage": "managesieve_max_storage",
    "sieve_subaddress_sep": "sieve_recipient_delimiter",    # Pigeonhole's old name
}
# Delivery settings (outside plugin {}) that Owlery cannot follow, and why
_DELIVERY_NOT_MAPPED = {
    "lmtp_save_to_detail_mailbox": "Owlery delivers alice+box@ to alice's INBOX; file by detail with a "
                                   "delivery_sieve_before script (envelope :detail)",
    "lda_original_recipient_header": "Owlery takes the original recipient from the MTA (ORCPT, -a)",
    "lmtp_rcpt_check_quota": "Owlery checks quota at RCPT in its policy daemon (quota check), at delivery always",
    "submission_ssl": "Owlery submits over plain SMTP to a local MTA (submission_smtp_endpoint)",
    "submission_relay_user": "Owlery submits without authentication",
    "submission_relay_ssl": "Owlery submits over plain SMTP to a local MTA",
}
# Dovecot's %variables (2.3) as Owlery path template fields; %h is the home, filled separately
_VARIABLES = {"u": "{user}", "user": "{user}", "n": "{localpart}", "username": "{localpart}",
              "d": "{domain}", "domain": "{domain}"}
_VARIABLE_RE = re.compile(r"%(?:L?(?P<short>[a-zA-Z%])|\{(?P<long>[^}]*)\})")
# Where Owlery keeps a user's files by default: the home its default templates share
OWLERY_DEFAULT_HOME = "/var/lib/owlery/mail/{domain}/{localpart}"
MAX_DOVECONF_BYTES = 4 << 20


class DoveconfError(ValueError):
    """The text is not a doveconf -n configuration (unbalanced braces, a line that is no setting)."""


@dataclasses.dataclass
class DoveconfSection:
    kind: str
    name: str = ""
    values: dict[str, str] = dataclasses.field(default_factory=dict)
    children: list[DoveconfSection] = dataclasses.field(default_factory=list)

    def child(self, kind: str, name: str | None = None) -> list[DoveconfSection]:
        return [c for c in self.children if c.kind == kind and (name is None or c.name == name)]


@dataclasses.dataclass
class DovecotImport:
    settings: dict[str, tuple[str, str]]     # Owlery name -> (TOML value, where it came from)
    notes: list[str]
    not_mapped: list[str]

    def toml(self) -> str:
        lines = ["# Owlery settings imported from Dovecot's configuration (owlery sieve import-dovecot)"]
        for name in sorted(self.settings):
            value, source = self.settings[name]
            lines.append(f"{name} = {value}  # {source}")
        return "\n".join(lines) + "\n"

    def comments(self) -> str:
        return "".join(f"# note: {n}\n" for n in self.notes) + "".join(f"# not mapped: {n}\n" for n in self.not_mapped)

    @property
    def exit_code(self) -> int:
        return 1 if self.not_mapped else 0


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_doveconf(text: str) -> DoveconfSection:
    """The section tree of a doveconf -n text (later values of a key win, as in Dovecot)."""
    root = DoveconfSection("")
    stack = [root]
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            if len(stack) == 1:
                raise DoveconfError(f"line {n}: '}}' closes no section")
            stack.pop()
            continue
        if line.endswith("{"):
            head = line[:-1].split(None, 1)
            if not head:
                raise DoveconfError(f"line {n}: a section without a name")
            sec = DoveconfSection(head[0], _unquote(head[1]) if len(head) > 1 else "")
            stack[-1].children.append(sec)
            stack.append(sec)
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip() or " " in key.strip():
            raise DoveconfError(f"line {n}: not a setting: {line[:80]!r}")
        stack[-1].values[key.strip()] = _unquote(value)
    if len(stack) != 1:
        raise DoveconfError(f"section '{stack[-1].kind} {stack[-1].name}'".replace(" '", "'") + " is not closed")
    return root


def _merged(root: DoveconfSection, protocol: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(top-level settings, plugin settings) as `protocol` sees them."""
    top = dict(root.values)
    plugin: dict[str, str] = {}
    for p in root.child("plugin"):
        plugin.update(p.values)
    if protocol:
        for sec in root.child("protocol"):
            if protocol in sec.name.split():
                top.update(sec.values)
                for p in sec.child("plugin"):
                    plugin.update(p.values)
    return top, plugin


class _Importer:
    def __init__(self, root: DoveconfSection, home_template: str | None):
        self.root = root
        self.out: dict[str, tuple[str, str]] = {}
        self.notes: list[str] = []
        self.not_mapped: list[str] = []
        self.home_template = home_template
        self.home_source = "--home-template" if home_template else ""
        self.needs_home: list[str] = []      # settings left out for want of the user's home
        self.renames: dict[str, str] = {}    # Owlery setting -> the one it becomes (local accounts)

    # -- output -----------------------------------------------------------------------------

    def set(self, name: str, value, source: str) -> bool:
        """Check `value` against the declaration of `name` and keep it; a refused one is reported.
        A string is read as Dovecot spells values of that type (yes/no, "2 days", "1 MB")."""
        name = self.renames.get(name, name)
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        if any("{home}" in str(t) for t in texts) and not name.startswith("passwd_"):
            # only the passwd directory's templates have {home} (local_accounts)
            self.not_mapped.append(f"{source}: {name} has no {{home}} field (only delivery's passwd_* "
                                   f"templates do): {value!r} left out")
            return False
        try:
            if isinstance(value, str):
                value = _dovecot_value(_decl(name).type.name, value)
            parsed = getattr(Settings().replace(**{name: value}), name)
        except (SettingsError, ValueError) as e:
            self.not_mapped.append(f"{source}: Owlery refuses {value!r} for {name}: {e}")
            return False
        self.out[name] = (render_toml_value(_decl(name), parsed), source)
        return True

    # -- the parts --------------------------------------------------------------------------

    def choose_protocol(self) -> str:
        """LMTP or LDA: the one that loads the sieve plugin (LMTP when both or neither do)."""
        for sec in self.root.children:
            if sec.kind in ("local", "remote", "local_name"):
                self.not_mapped.append(f"{sec.kind} {sec.name} {{ }}: Owlery's settings do not depend on the "
                                       "connection; ignored")
        loads = []
        for proto in ("lmtp", "lda"):
            top, _ = _merged(self.root, proto)
            if "sieve" in top.get("mail_plugins", "").split():
                loads.append(proto)
        if not loads:
            self.notes.append("neither protocol lmtp nor protocol lda loads the sieve plugin (mail_plugins): "
                              "Pigeonhole did not run at delivery; imported what it would have used (LMTP's)")
            return "lmtp"
        if len(loads) == 2:
            lmtp, lda = _merged(self.root, "lmtp"), _merged(self.root, "lda")
            for part, what in ((0, ""), (1, "plugin ")):
                for key in sorted(set(lmtp[part]) | set(lda[part])):
                    if key != "mail_plugins" and lmtp[part].get(key) != lda[part].get(key):
                        self.not_mapped.append(
                            f"{what}{key}: protocol lda has {lda[part].get(key)!r}, protocol lmtp "
                            f"{lmtp[part].get(key)!r}; Owlery's LDA and lmtpd share one setting: took LMTP's")
        return loads[0]

    def template(self, dovecot_path: str, source: str) -> str | None:
        """A Dovecot path (with ~ and %variables) as an Owlery path template, None when it cannot be."""
        path = dovecot_path
        if path == "~" or path.startswith("~/"):
            path = "%h" + path[1:]
        problems: list[str] = []

        def sub(m: re.Match) -> str:
            name = m.group("short") or m.group("long")
            if name == "%":
                return "%"
            if name in ("h", "home"):
                if self.home_template is None:
                    problems.append("home")
                    return "{home}"
                return self.home_template
            if name in _VARIABLES:
                return _VARIABLES[name]
            problems.append(m.group(0))
            return m.group(0)
        out = _VARIABLE_RE.sub(sub, path).replace("//", "/")
        if "home" in problems:
            self.home_missing(source)
            return None
        if problems:
            self.not_mapped.append(f"{source}: {dovecot_path}: Owlery's path templates have "
                                   f"{{localpart}}, {{domain}}, {{user}} only, not {', '.join(problems)}")
            return None
        if not out.startswith(("/", "{home}/")):      # ({home}: an account's, absolute: local_accounts)
            self.not_mapped.append(f"{source}: {dovecot_path}: not an absolute path")
            return None
        return out

    def local_accounts(self) -> None:
        """`userdb { driver = passwd }` and no mail_home: the users are the system's accounts and
        ~ is each one's home, which Owlery's passwd directory knows ({home} in its templates)."""
        self.home_template, self.home_source = "{home}", "userdb passwd: each account's home"
        self.renames = {"maildir_path_template": "passwd_maildir_template",
                        "delivery_sieve_script_template": "passwd_sieve_script_template"}
        self.out["directory_backend"] = (render_toml_value(_decl("directory_backend"), "passwd"), "userdb passwd")
        self.not_mapped.append(
            "userdb passwd: set passwd_domains to the domains mail for the accounts comes to (Postfix's "
            "mydestination); doveconf does not name them, and the passwd directory does not start without")

    def home_missing(self, source: str) -> None:
        self.needs_home.append(source)

    def mail(self, top: dict[str, str]) -> None:
        if "mail_home" in top:
            home = self.template(top["mail_home"], "mail_home")
            if home is not None and self.home_template is None:
                self.home_template, self.home_source = home.rstrip("/"), "mail_home"
        location = top.get("mail_location", "")
        if not location:
            self.notes.append("no mail_location: Dovecot looks for the mail itself (autodetection); "
                              "maildir_path_template keeps Owlery's setting")
            return
        driver, _, rest = location.partition(":")
        if driver != "maildir" or not rest:
            self.not_mapped.append(f"mail_location = {location}: Owlery delivers to Maildir++ only")
            return
        path, *options = rest.split(":")
        for opt in options:
            key, _, value = opt.partition("=")
            if key.upper() == "LAYOUT" and value != "maildir++":
                self.not_mapped.append(f"mail_location {opt}: Owlery writes Maildir++ folders (.Folder)")
            elif key.upper() in ("INBOX", "DIRNAME", "SUBSCRIPTIONS", "ALT", "MAILBOXDIR"):
                self.not_mapped.append(f"mail_location {opt}: Owlery's Maildir layout has no such option")
            # INDEX, CONTROL, VOLATILEDIR, UTF8...: where Dovecot keeps its own files; no bearing on delivery
        if self.home_template is None and (path == "~" or path.startswith("~/")):
            # ~/Maildir: the home is the Maildir's parent; without mail_home, where that is comes
            # from the userdb, so Owlery's own layout is kept and the postmaster must line them up
            self.home_template, self.home_source = OWLERY_DEFAULT_HOME, "Owlery's default home"
            self.not_mapped.append(
                f"mail_location = {location}: the home (~) comes from Dovecot's userdb, which doveconf does not "
                f"show; the templates below take Owlery's default home {OWLERY_DEFAULT_HOME}: make Dovecot's "
                "homes the same, or rerun with --home-template TEMPLATE (Dovecot's home in Owlery's fields)")
        maildir = self.template(path, "mail_location")
        if maildir is not None:
            self.set("maildir_path_template", maildir.rstrip("/"), "mail_location")
        if "mail_uid" in top:
            owner = top["mail_uid"] + (":" + top["mail_gid"] if top.get("mail_gid") else "")
            self.out["maildir_owner"] = (render_toml_value(_decl("maildir_owner"), owner), "mail_uid/mail_gid")

    def script_location(self, location: str, source: str) -> tuple[str | None, dict[str, str]]:
        """(path, parameters) of a Pigeonhole script location (`file:PATH;k=v` or a plain path)."""
        driver, colon, rest = location.partition(":")
        if not colon or "/" in driver or driver.startswith("~"):
            driver, rest = "file", location
        if driver != "file":
            self.not_mapped.append(f"{source} = {location}: Owlery reads scripts from files only, not {driver}:")
            return None, {}
        path, *params = rest.split(";")
        return path, dict(p.partition("=")[::2] for p in params if p)

    def scripts(self, plugin: dict[str, str]) -> None:
        personal = plugin.get("sieve")
        if personal is None:
            personal = "~/.dovecot.sieve"
            self.notes.append("no sieve setting: Pigeonhole's default personal script ~/.dovecot.sieve")
        path, params = self.script_location(personal, "sieve")
        if path is not None:
            active = params.get("active")
            if active is None and path.rstrip("/").endswith(".sieve"):
                active, path = path, None          # a single script file, no ManageSieve directory
            if active is None:
                self.not_mapped.append(f"sieve = {personal}: a script directory with no active= link: set "
                                       "delivery_sieve_script_template to the user's active script")
            else:
                t = self.template(active, "sieve active=")
                if t is not None:
                    self.set("delivery_sieve_script_template", t, "sieve active=")
            if path is not None:
                t = self.template(path, "sieve")
                if t is not None:
                    self.set("managesieve_script_dir_template", t.rstrip("/"), "sieve")
        if "sieve_dir" in plugin and "sieve" not in plugin:
            t = self.template(plugin["sieve_dir"], "sieve_dir")
            if t is not None:
                self.set("managesieve_script_dir_template", t.rstrip("/"), "sieve_dir")
        for kind in ("before", "after"):
            paths = []
            for _, key in self.numbered(plugin, f"sieve_{kind}"):
                path, _ = self.script_location(plugin[key], key)
                if path is None:
                    continue
                t = self.template(path, key)
                if t is not None and "{" in t:
                    self.not_mapped.append(f"{key} = {plugin[key]}: a per-user path; Owlery's "
                                           f"delivery_sieve_{kind} scripts are the same for everyone")
                elif t is not None:
                    paths.append(t)
            if paths:
                self.set(f"delivery_sieve_{kind}", paths, f"sieve_{kind}")
        default = plugin.get("sieve_default") or plugin.get("sieve_global_path")
        if default:
            key = "sieve_default" if plugin.get("sieve_default") else "sieve_global_path"
            path, params = self.script_location(default, key)
            if path is not None and "name" in params:
                path = path.rstrip("/") + "/" + params["name"] + ".sieve"
            t = self.template(path, key) if path is not None else None
            if t is not None:
                self.set("delivery_sieve_default", t, key)
        global_dir = plugin.get("sieve_global") or plugin.get("sieve_global_dir")
        if global_dir:
            key = "sieve_global" if plugin.get("sieve_global") else "sieve_global_dir"
            path, _ = self.script_location(global_dir, key)
            t = self.template(path, key) if path is not None else None
            if t is not None:
                self.set("delivery_sieve_global_dir", [t.rstrip("/")], key)

    def numbered(self, plugin: dict[str, str], base: str) -> list[tuple[int, str]]:
        """`base`, `base2`, `base3`...: Pigeonhole stops at the first number missing."""
        keys = [(1, base)] if plugin.get(base) else []
        i = 2
        while keys and plugin.get(f"{base}{i}"):
            keys.append((i, f"{base}{i}"))
            i += 1
        for key in plugin:
            m = re.fullmatch(re.escape(base) + r"(\d+)", key)
            if m and (int(m.group(1)), key) not in keys:
                self.not_mapped.append(f"{key}: Pigeonhole reads {base}, {base}2, ... up to the first one "
                                       "missing, so it never ran this script; left out")
        return keys

    def extension_set(self, plugin: dict[str, str]) -> None:
        names = sorted(n for n, e in extensions.REGISTRY.items() if not e.hidden)
        value = plugin.get("sieve_extensions")
        words = (value or "").split()
        for w in words:
            if w.lstrip("+-") not in extensions.REGISTRY:
                self.not_mapped.append(f"sieve_extensions: Owlery has no extension {w.lstrip('+-')!r}")
        if value is not None and any(w[:1] not in "+-" for w in words):
            disabled = set(disabled_extensions(value))     # a plain list names the whole set
        else:
            disabled = set((PIGEONHOLE_DEFAULT_OFF | set(EXTPROGRAMS)) & set(names))   # PIGEONHOLE_DEFAULT_OFF is frozen; grown below
            disabled |= {w[1:] for w in words if w[:1] == "-"}
            disabled -= {w[1:] for w in words if w[:1] == "+"}
        plugins = plugin.get("sieve_plugins", "").split()
        for name in EXTPROGRAMS:
            if name not in disabled and "sieve_extprograms" not in plugins:
                self.not_mapped.append(f"sieve_extensions: {name} needs sieve_plugins = sieve_extprograms, "
                                       "which is not loaded: left disabled")
                disabled.add(name)
            if name in plugin.get("sieve_global_extensions", "").split():
                disabled.add(name)
        for p in plugins:
            if p == "sieve_imapsieve":
                self.notes.append("sieve_plugins sieve_imapsieve: IMAPSieve runs in Dovecot's IMAP server, "
                                  "which stays; Owlery's delivery has no part in it")
            elif p != "sieve_extprograms":
                self.not_mapped.append(f"sieve_plugins {p}: Owlery has no such plugin")
        owlery_only = sorted(set(names) - disabled - PIGEONHOLE_DEFAULT_OFF - set(EXTPROGRAMS)
                             - set(_PIGEONHOLE_HAS))
        if owlery_only:
            self.notes.append(f"extensions Pigeonhole 0.5 does not have stay enabled: {', '.join(owlery_only)}")
        self.set("sieve_extensions_disabled", sorted(disabled),
                 "sieve_extensions" if value is not None else "Pigeonhole's default sieve_extensions")

    def sieve_settings(self, plugin: dict[str, str]) -> None:
        lists: dict[str, dict[int, str]] = {}
        editheader: dict[str, list[str]] = {}
        for key, val in plugin.items():
            if not key.startswith("sieve_") and key != "recipient_delimiter":
                continue
            if key in _HANDLED_ELSEWHERE or re.fullmatch(r"sieve_(before|after)\d*", key):
                continue
            if key in NOT_MAPPED_WHY or key.startswith(("sieve_environment/", "sieve_extlists_list")):
                why = NOT_MAPPED_WHY.get(key) or NOT_MAPPED_WHY.get(key.split("/")[0], "no Owlery counterpart")
                self.not_mapped.append(f"{key}: {why}")
                continue
            # Dovecot expands %variables in plugin settings for each user ("%%" is a "%")
            if any(m.group(0) != "%%" for m in _VARIABLE_RE.finditer(val)):
                self.not_mapped.append(f"{key} = {val}: per-user %variables; Owlery's setting is one "
                                       "value for every user")
                continue
            val = val.replace("%%", "%")
            if key in INVERTED:
                self.set(CONFIG_MAP[key], "no" if dovecot_bool(val) else "yes", key)
            elif key == "sieve_editheader_header" or key.startswith(EDITHEADER_PREFIX):
                ident, _, field = key[len(EDITHEADER_PREFIX):].rpartition("/")
                field = field.removeprefix("sieve_editheader_header_")
                if field in ("forbid_add", "forbid_delete") and ident and dovecot_bool(val):
                    editheader.setdefault("sieve_editheader_" + field, []).append(ident)
                elif field != "name":
                    self.not_mapped.append(f"{key}: no Owlery counterpart")
            elif key in VALUE_MAPS:
                self.set(CONFIG_MAP[key], VALUE_MAPS[key](val), key)
            elif key in CONFIG_MAP or key in _EXTRA_NAMES:
                self.set(CONFIG_MAP.get(key) or _EXTRA_NAMES[key], val, key)
            else:
                for prefix, target in LIST_KEYS.items():
                    m = re.fullmatch(re.escape(prefix.rstrip("/")) + r"/?(\d+)", key)
                    if m:
                        lists.setdefault(target, {})[int(m.group(1))] = val
                        break
                else:
                    self.not_mapped.append(f"{key}: no Owlery counterpart")
        for target, items in lists.items():
            lo = 0 if target == "sieve_spamtest_text_values" else 1
            self.set(target, [items.get(i, "") for i in range(lo, max(items) + 1)], target.rstrip("s"))
        for target, extra in editheader.items():
            # 2.4's per-header flags add to the 2.3 list (or to Pigeonhole's default list)
            base = plugin[target].split() if target in plugin else list(getattr(Settings(), target))
            self.set(target, base + extra, EDITHEADER_PREFIX + "*")
        if "sieve_quota_max_scripts" not in plugin and "sieve_quota_max_storage" not in plugin:
            self.notes.append("sieve_quota_max_scripts/max_storage unset (Dovecot: no limit): Owlery's "
                              "ManageSieve keeps its own limits (managesieve_max_scripts, managesieve_max_storage)")

    def delivery(self, top: dict[str, str], plugin: dict[str, str]) -> None:
        if "recipient_delimiter" in top:
            self.set("delivery_recipient_delimiter", top["recipient_delimiter"], "recipient_delimiter")
            self.set("sieve_recipient_delimiter", top["recipient_delimiter"], "recipient_delimiter")
        autocreate = dovecot_bool(top.get("lda_mailbox_autocreate", "no"))
        self.set("delivery_mailbox_autocreate", autocreate,
                 "lda_mailbox_autocreate" + ("" if "lda_mailbox_autocreate" in top else " (Dovecot's default)"))
        if autocreate and not dovecot_bool(top.get("lda_mailbox_autosubscribe", "no")):
            self.not_mapped.append("lda_mailbox_autosubscribe = no: Owlery subscribes every folder it creates")
        for key, why in _DELIVERY_NOT_MAPPED.items():
            if key in top and top[key] not in ("", "no"):
                self.not_mapped.append(f"{key} = {top[key]}: {why}")
        postmaster = top.get("postmaster_address", "")
        if postmaster and "%" not in postmaster:
            self.set("sieve_postmaster_address", postmaster, "postmaster_address")
        else:
            self.not_mapped.append(
                f"postmaster_address = {postmaster or 'postmaster@%d (Dovecot default)'}: Owlery's "
                "sieve_postmaster_address is one fixed address, not one per recipient domain: set it")
        if "hostname" in top:
            self.set("lmtpd_hostname", top["hostname"], "hostname")
        host = top.get("submission_host", "")
        if host:
            name, _, port = host.rpartition(":") if ":" in host else (host, "", "25")
            self.set("submission_method", "smtp", "submission_host")
            self.set("submission_smtp_endpoint", f"tcp:{name}:{port}", "submission_host")
        else:
            sendmail = top.get("sendmail_path", "/usr/sbin/sendmail")
            self.set("submission_method", "sendmail", "sendmail_path")
            self.set("submission_sendmail_command", sendmail.split(),
                     "sendmail_path" + ("" if "sendmail_path" in top else " (Dovecot's default)"))
        if "quota_full_tempfail" in top:
            self.set("delivery_quota_full_tempfail", top["quota_full_tempfail"], "quota_full_tempfail")
        self.quota(plugin)

    def quota(self, plugin: dict[str, str]) -> None:
        rule = plugin.get("quota_rule", "")
        if rule:
            box, _, limits = rule.partition(":")
            if box != "*":
                self.not_mapped.append(f"quota_rule = {rule}: Owlery's quota is per mailbox, not per folder")
            for part in limits.split(":"):
                key, _, value = part.partition("=")
                target = {"storage": "delivery_quota_size", "bytes": "delivery_quota_size",
                          "messages": "delivery_quota_messages"}.get(key)
                if target is None or value.startswith(("+", "-")) or value.endswith("%"):
                    self.not_mapped.append(f"quota_rule {part}: no Owlery counterpart")
                else:
                    if key == "storage" and value.isdigit():
                        value += "k"        # Dovecot counts a bare storage= in kilobytes
                    self.set(target, value, "quota_rule")
        for key in sorted(plugin):
            if re.fullmatch(r"quota_rule\d+", key):
                self.not_mapped.append(f"{key} = {plugin[key]}: Owlery's quota is per mailbox, not per folder")
        grace = plugin.get("quota_grace", "")
        if grace.endswith("%"):
            self.not_mapped.append(f"quota_grace = {grace}: delivery_quota_overrun_allowance is a size "
                                   "(at most a tenth of the quota)")
        elif grace:
            self.set("delivery_quota_overrun_allowance", grace, "quota_grace")
        driver = plugin.get("quota", "").partition(":")[0]
        if driver and driver != "maildir":
            self.notes.append(f"quota = {plugin['quota']}: Owlery keeps the Maildir++ maildirsize file "
                              "(Dovecot's quota = maildir driver) for its quota")

    def special_use(self) -> None:
        table: dict[str, list[str]] = {}
        for ns in self.root.child("namespace"):
            if ns.values.get("prefix", "") != "":
                continue
            for box in ns.child("mailbox"):
                for flag in ns_flags(box.values.get("special_use", "")):
                    table.setdefault(flag, []).append(box.name)
        if table:
            self.set("delivery_special_use_folders", table, "namespace mailbox special_use")


def _dovecot_value(kind: str, value: str):
    """A Dovecot setting's text as the value Owlery's `kind` of setting reads."""
    if kind == "boolean":
        return dovecot_bool(value)
    if kind == "duration":
        return dovecot_duration(value)
    if kind == "integer":
        return int(value.strip())
    if kind == "size":
        return value.strip().upper().replace(" ", "").removesuffix("B") or "0"
    return value


def _decl(name: str):
    """The declaration of Owlery setting `name` (its section imported on first use)."""
    getattr(Settings(), name)
    return declared()[name]


def ns_flags(value: str) -> list[str]:
    return [w.lstrip("\\") for w in value.split() if w.startswith("\\")]


# Pigeonhole 0.5's extensions (on or off by default), to tell Owlery's own ones apart
_PIGEONHOLE_HAS = frozenset({
    "body", "comparator-i;ascii-numeric", "copy", "date", "duplicate", "encoded-character", "enotify",
    "envelope", "environment", "extracttext", "fileinto", "foreverypart", "ihave", "imap4flags", "include",
    "index", "mailbox", "mime", "regex", "reject", "relational", "subaddress", "vacation", "variables",
    "vnd.dovecot.debug",
})
# plugin {} keys read by _Importer.scripts / extension_set rather than the name tables
_HANDLED_ELSEWHERE = frozenset({
    "sieve", "sieve_dir", "sieve_default", "sieve_global_path", "sieve_global", "sieve_global_dir",
    "sieve_extensions", "sieve_plugins", "recipient_delimiter",
})


def import_doveconf(text: str, home_template: str | None = None) -> DovecotImport:
    """Owlery's settings for the Dovecot configuration `text` (doveconf -n output).
    `home_template`: Dovecot's user home as an Owlery template ({localpart}, {domain}, {user})
    when the configuration has no mail_home. DoveconfError when the text is no configuration."""
    root = parse_doveconf(text)
    imp = _Importer(root, home_template.rstrip("/") if home_template else None)
    proto = imp.choose_protocol()
    top, plugin = _merged(root, proto)
    if (home_template is None and "mail_home" not in top
            and any(u.values.get("driver") == "passwd" for u in root.child("userdb"))):
        imp.local_accounts()
    imp.mail(top)
    imp.scripts(plugin)
    imp.extension_set(plugin)
    imp.sieve_settings(plugin)
    imp.delivery(top, plugin)
    imp.special_use()
    if imp.needs_home:
        imp.not_mapped.append(
            f"{', '.join(imp.needs_home)}: use the user's home (~ or %h), which Dovecot takes from its userdb "
            "and doveconf does not show (no mail_home): rerun with --home-template TEMPLATE, e.g. "
            "--home-template '/var/vmail/{domain}/{localpart}'")
    if imp.home_source and imp.home_source != "Owlery's default home":
        imp.notes.insert(0, f"the user's home (~) is {imp.home_template} (from {imp.home_source})")
    imp.notes.insert(0, f"delivery settings as Dovecot's {proto.upper()} sees them")
    return DovecotImport(imp.out, imp.notes, imp.not_mapped)
