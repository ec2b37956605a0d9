"""The Postfix main.cf and master.cf lines that wire Owlery in, rendered from settings.

One source for three readers: `owlery postfix` / `owlery run` print these lines, the
README's *Integration with Postfix* section shows them for the built-in defaults (a test
checks the README matches), and the end-to-end tests load them into a private Postfix.
A unix socket under Postfix's queue directory (`daemon_postfix_queue_directory`) is named
relative to it (`unix:owlery/policyd.sock`): every Postfix process works in the queue
directory, and a chrooted one (smtpd, lmtp on Debian) has it as its root, where an
absolute path would point elsewhere. TCP endpoints become `inet:HOST:PORT`. Every file
path printed (the settings file after `-c`, map files, the `owlery` command) is absolute:
Postfix's processes work in its queue directory, not where `owlery postfix` was run.
check_policy_service's timeout= is computed from the settings (policy_service_timeout): just
above the longest a decision can take, the checks' own timeouts and the SPF budget added up,
so Postfix never gives up (451 4.3.5) on an answer the policy daemon is still working on.
`render_postscreen` (`owlery postfix --postscreen`) prints postscreen(8) in front of smtpd with
the dnsbl_* lists, for sites that prefer it to the policy daemon's dnsbl check.
Talks to: nothing. Tests: tests/core/test_postfix.py, tests/core/test_secure_defaults.py,
tests/e2e/test_skeleton.py, tests/e2e/test_chroot_sockets_e2e.py, tests/e2e/test_dnsbl_postfix.py,
tests/policyd/test_spf_deadline_s20.py
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from owlery.dnsbl import parse_filter
from owlery.endpoints import ListenEndpoint, parse_endpoint
from owlery.settings import DEFAULT_CONFIG_PATH


def postfix_endpoint(endpoint: ListenEndpoint, queue_directory: str | None = None) -> str:
    """Postfix's spelling of where a daemon listens: inet:HOST:PORT, unix:PATH relative to
    `queue_directory` when the socket is under it, else unix:/absolute/path."""
    if endpoint.kind == "tcp":
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        return f"inet:{host}:{endpoint.port}"
    if endpoint.kind == "unix":
        if queue_directory:
            queue = os.path.normpath(queue_directory)
            path = os.path.normpath(endpoint.path)
            if os.path.commonpath([queue, path]) == queue and path != queue:
                return f"unix:{os.path.relpath(path, queue)}"
        return f"unix:{endpoint.path}"
    raise ValueError(f"{endpoint}: Postfix needs the socket's address, not a systemd name; "
                     "list the unix: or tcp: address the .socket unit binds")


def _queue_directory(settings: Any) -> str | None:
    queue = getattr(settings, "daemon_postfix_queue_directory", None)
    return os.path.abspath(queue) if queue else None


def _first(endpoints: Any) -> ListenEndpoint:
    if isinstance(endpoints, str):
        return parse_endpoint(endpoints)
    return parse_endpoint(list(endpoints)[0])


def _data_calls(settings: Any) -> int:
    """How many times smtpd_data_restrictions must ask the policy service (0: not at all).

    Postfix takes one action per policy reply, and the policy daemon PREPENDs one header
    per reply: a single-recipient message has one RCPT reply, then DATA, then
    END-OF-MESSAGE, where Postfix ignores PREPEND. So every header a message may collect
    beyond the first needs a DATA request to carry it (a header made at DATA needs one of
    its own), else it is lost: greylisting's X-Greylist beside SPF's Received-SPF, say.
    """
    table = _check_tables(settings)
    rcpt, data = table.get("RCPT", ()), table.get("DATA", ())
    at_rcpt = at_data = 0
    if "greylist" in rcpt and settings.greylist_header:
        at_rcpt += 1
    spf_headers = settings.spf_header_type
    if spf_headers != "none":
        if "spf" in rcpt:
            at_rcpt += 1     # Received-SPF, or Authentication-Results
        if "spf" in data and ("spf" not in rcpt or spf_headers == "both"):
            at_data += 1     # with "both", Authentication-Results is made at DATA
    return max(at_rcpt + at_data - 1, at_data, 1 if data else 0)


# Postfix's own smtpd_policy_service_timeout (100 s): the policy timeout printed stays within
# it (a remote client waits for the RCPT reply meanwhile).
POLICY_TIMEOUT_MAX = 100
# Above the longest decision: the reactor's and thread pool's scheduling, the reply's way back.
POLICY_TIMEOUT_MARGIN = 2.0


def _check_tables(settings: Any) -> dict[str, list[str]]:
    table = settings.policyd_checks
    if table is None:
        from policyd.checks import default_checks
        table = default_checks()
    return table


def _check_waits(name: str, settings: Any) -> float:
    """The longest one check waits for its backends in one request, from their own timeouts
    (every wait of a policy check has one): directory lookups (directory_lookup_timeout, which
    counts waiting for a thread), the state store (state_timeout), file reads (quota_read_timeout),
    a back end's quota answer (quota_backend_timeout, 0: none, so unbounded). SPF and the DNS
    lists are counted once per request by the caller (their results are shared by the checks
    that read them)."""
    s = settings
    directory, state = s.directory_lookup_timeout, s.state_timeout
    if name == "recipient":
        return directory
    if name == "lists":
        # the recipient's own list policy, then that of a list its expansion reaches (its
        # resolve is the recipient check's, memoised per request)
        return 2 * directory
    if name == "quota":
        wait = directory + s.quota_read_timeout * (2 if s.quota_read_in_thread else 1)  # read, recount
        if s.quota_backend_endpoint:
            wait += s.quota_backend_timeout if s.quota_backend_timeout > 0 else float("inf")
        return wait
    if name == "greylist":
        return 3 * state            # an earlier write in flight, the read, a pass written through
    if name == "ratelimit":
        return state
    if name == "dnsbl":
        return state                # the shared answer cache (the lookups: _dnsbl_wait)
    return 0.0                      # spf: _spf_wait


def _spf_wait(settings: Any) -> float:
    from policyd.checks.spf import SPF_DEADLINE_SLACK
    return settings.spf_query_time_limit + SPF_DEADLINE_SLACK


def _dnsbl_wait(settings: Any) -> float:
    return settings.dnsbl_timeout + 1.0         # all lists at once; the pool's timeout is 1 s longer


def policy_decision_longest(settings: Any) -> float:
    """The longest one policy decision can take with these settings, in seconds: at the
    protocol_state whose checks can wait longest, each check's own timeouts added up (they
    stack: an SPF temperror or a DNS list that does not answer lets the next check run), the
    SPF budget (one per request, HELO and MAIL FROM together) and the DNS lists' lookups
    counted once when a check there uses them (greylist's SPF pass and DNSBL weights too); at
    most policyd_decision_timeout, past which the daemon abandons the decision."""
    s = settings
    longest = 0.0
    for names in _check_tables(s).values():
        total = sum(_check_waits(name, s) for name in names)
        spf = "spf" in names or ("greylist" in names and (s.greylist_skip_spf_pass or s.greylist_spf_pass_domains))
        dnsbl = "dnsbl" in names or ("greylist" in names and (s.greylist_only_listed
                                                               or s.dnsbl_allowlist_threshold < 0))
        total += (_spf_wait(s) if spf else 0.0) + (_dnsbl_wait(s) if dnsbl else 0.0)
        longest = max(longest, total)
    return min(longest, s.policyd_decision_timeout)


def policy_service_timeout(settings: Any) -> int:
    """Postfix's time limit for a policy answer (check_policy_service's timeout=, seconds):
    just above the longest decision, so Postfix never gives up on an answer the daemon is
    still working on (it would answer 451 4.3.5 instead of what the checks were set to do),
    at most Postfix's own default (render() says so when that is too short)."""
    return min(POLICY_TIMEOUT_MAX, math.ceil(policy_decision_longest(settings) + POLICY_TIMEOUT_MARGIN))


def main_cf(settings: Any, domains: Sequence[str], role: str = "backend",
            command: str | None = None) -> list[tuple[str, str]]:
    """(parameter, value) pairs for main.cf, in order. A relay (`role` "relay") delivers
    nothing itself: no LMTP transport, its directory lines route mail to the back ends."""
    queue = _queue_directory(settings)
    policy = postfix_endpoint(_first(settings.policyd_listen), queue)
    milter = postfix_endpoint(_first(settings.milter_listen), queue)
    lmtp = postfix_endpoint(_first(settings.lmtpd_listen), queue)
    # timeout: longer than the longest decision (policy_service_timeout), so Postfix waits for it
    policy_service = f"check_policy_service {{ {policy}, timeout={policy_service_timeout(settings)}s }}"
    return [
        # Relay control first, in its own list: the policy service must never be able
        # to turn an unauthorised relay attempt into a permit (SMTPD_POLICY_README).
        ("smtpd_relay_restrictions", "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"),
        ("smtpd_recipient_restrictions", policy_service),
        ("smtpd_end_of_data_restrictions", policy_service),
        # DATA when a check runs there, or when headers PREPENDed at RCPT may still wait to be
        # sent (Postfix ignores PREPEND at END-OF-MESSAGE); otherwise it would be a request per
        # message for nothing. One call per header that may be waiting (see _data_calls).
        *([("smtpd_data_restrictions", ", ".join([policy_service] * calls))]
          if (calls := _data_calls(settings)) else []),
        ("smtpd_milters", milter),
        ("non_smtpd_milters", "$smtpd_milters"),
        # A milter that is down or fails must defer mail, never let it through unscanned.
        ("milter_default_action", "tempfail"),
        *milter_macro_lines(),
        *(_local_tables(settings, domains, command) if local_accounts(settings, role)
          else _directory_tables(settings, domains, role)),
        *([] if role == "relay" or local_accounts(settings, role) else [
            ("virtual_transport", f"lmtp:{lmtp}"),
            # For the optional LDA transport in master.cf: pipe(8) gives ${user}@${nexthop} one
            # recipient at a time only with a limit of 1 (else several after one -d).
            ("owlery_destination_recipient_limit", "1")]),
    ]


# Postfix's defaults (postconf -d) for the steps the milter negotiates macros at (milters.macros).
POSTFIX_DEFAULT_MILTER_MACROS = {
    "connect": ("j", "{daemon_name}", "{daemon_addr}", "v", "_"),
    "mail": ("i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}"),
    "end_of_data": ("i",),
}


def milter_macro_lines() -> list[tuple[str, str]]:
    """milter_<step>_macros for each step the milter asks its macros at: Postfix's default
    list, then the names the milter adds. Postfix sends these when the milter's own request
    (setsymlist) is not negotiated, and other milters keep what the default gives them."""
    from milters.macros import NEGOTIATED
    return [(f"milter_{step}_macros", " ".join(dict.fromkeys((*POSTFIX_DEFAULT_MILTER_MACROS[step], *names))))
            for step, names in NEGOTIATED.items()]


def uses_socketmap(settings: Any, role: str = "backend") -> bool:
    """Postfix reads the directory through `owlery socketmap`: from LDAP, on a relay (its
    transport_maps), or with files_mail_hosts (mail hosts are a relay's business, and `owlery
    run` knows no role). Otherwise Postfix reads the map files itself (texthash)."""
    return (role == "relay" or settings.directory_backend == "ldap"
            or bool(getattr(settings, "files_mail_hosts", None)))


def socketmap_tables(settings: Any, role: str = "backend") -> list[tuple[str, str]]:
    """main.cf lines that read the directory through `owlery socketmap`. A back end (role
    "backend") hosts the mailboxes: domains, aliases and groups expanded one level at a time
    (Postfix recurses). A relay (an MX in front of several back ends) relays for the same
    domains, knows which recipients exist, expands aliases there (so each member is routed
    on its own) and sends each user to their mail host (transport_maps)."""
    sm = "socketmap:" + postfix_endpoint(_first(settings.socketmap_listen), _queue_directory(settings))
    # virtual_alias_domains empty, else Postfix also asks virtual_alias_maps about every bare domain
    aliases = [("virtual_alias_domains", ""), ("virtual_alias_maps", f"{sm}:virtual_alias_maps")]
    if role == "relay":
        return [("relay_domains", f"{sm}:virtual_mailbox_domains"),
                ("relay_recipient_maps", f"{sm}:relay_recipient_maps"),
                *aliases,
                ("transport_maps", f"{sm}:transport_maps")]
    # virtual_mailbox_maps: the valid recipients, which smtpd refuses others against (the
    # implicit reject_unlisted_recipient). Mail goes over LMTP (virtual_transport), never to
    # virtual(8), so Postfix only asks whether an address is found: relay_recipient_maps says
    # so (OK for what the policy daemon accepts). The socketmap's own virtual_mailbox_maps
    # answers Maildir paths for virtual(8), TEMP for one outside socketmap_mailbox_base.
    return [("virtual_mailbox_domains", f"{sm}:virtual_mailbox_domains"),
            ("virtual_mailbox_maps", f"{sm}:relay_recipient_maps"), *aliases]


def local_accounts(settings: Any, role: str = "backend") -> bool:
    """The mailboxes are local Unix accounts (directory_backend = "passwd") on this back end:
    Postfix's local(8) delivers, running `owlery-lda` as each account (mailbox_command)."""
    return role != "relay" and getattr(settings, "directory_backend", None) == "passwd"


def _local_tables(settings: Any, domains: Sequence[str], command: str | None) -> list[tuple[str, str]]:
    """main.cf lines for local accounts: the domains are local(8)'s (mydestination, never also
    virtual_mailbox_domains), the recipients the accounts and aliases (local_recipient_maps),
    and local(8) runs the LDA as the account (mailbox_command; -d "$USER" the account, -a
    "$RECIPIENT" the address as sent, local(8) EXTERNAL COMMAND DELIVERY). The LDA then reads
    the settings file as that account, and keeps its state in the account's home
    (passwd_state_sqlite_template) when the store is SQLite."""
    owlery = owlery_command() if command is None else command
    lines = [("mydestination", ", ".join(["$myhostname", "localhost.$mydomain", "localhost", *domains])),
             ("local_recipient_maps", "proxy:unix:passwd.byname $alias_maps")]
    if settings.passwd_aliases:
        # the same aliases(5) source Owlery reads; `newaliases` (postalias) builds Postfix's .db
        aliases = os.path.abspath(settings.passwd_aliases)
        lines += [("alias_maps", f"hash:{aliases}"), ("alias_database", f"hash:{aliases}")]
    if settings.directory_recipient_delimiter:
        lines.append(("recipient_delimiter", settings.directory_recipient_delimiter))
    lines.append(("mailbox_command", f'{lda_command(owlery)}{_config_option(settings)} -a "$RECIPIENT" -d "$USER"'))
    return lines


def _config_option(settings: Any) -> str:
    """` -c FILE` for a command that must read the settings these lines were printed for
    (absolute: Postfix runs commands in its queue directory), "" for the default file."""
    path = getattr(settings, "path", None)
    path = os.path.abspath(path) if path else None
    return f" -c {path}" if path and path != os.path.abspath(DEFAULT_CONFIG_PATH) else ""


def _directory_tables(settings: Any, domains: Sequence[str], role: str = "backend") -> list[tuple[str, str]]:
    """Where Postfix learns the hosted domains and expands aliases and groups: the same
    directory Owlery reads. Files: the domains listed and the aliases file itself. LDAP: the
    socketmap table server (`owlery socketmap`, started by `owlery run`), which answers TEMP,
    never "not found", when LDAP is down."""
    if uses_socketmap(settings, role):
        return socketmap_tables(settings, role)
    tables = [("virtual_mailbox_domains", " ".join(domains))]
    if settings.files_aliases:
        # Postfix expands the aliases itself (one file for both: Postfix table syntax).
        tables.append(("virtual_alias_maps", f"texthash:{os.path.abspath(settings.files_aliases)}"))
    # No virtual_mailbox_maps from files_mailboxes: a line with an address only (Maildir from
    # the template) is no Postfix table entry, so Postfix would refuse that user, and Postfix
    # strips +detail only with its own recipient_delimiter. The policy daemon's recipient
    # check refuses unknown users from the same file, re-read when it changes.
    return tables


def owlery_command() -> str:
    """The absolute path of the `owlery` command, for master.cf's pipe transport."""
    found = shutil.which("owlery")
    if found:
        return os.path.abspath(found)       # a relative PATH entry gives a relative path
    return os.path.abspath(sys.prefix) + "/bin/owlery"


def lda_command(owlery: str) -> str:
    """The pipe command for `owlery-lda`, installed beside `owlery`: the same as `owlery lda`,
    but Python starts without site processing (sieve/delivery/owlery-lda), so each message
    costs less. `PYTHON -I -S DIR/owlery-lda` when `owlery`'s shebang names an interpreter
    (what owlery-lda's sh part would exec: naming it here saves that sh, ~0.6 ms a message),
    else `DIR/owlery-lda` alone, which finds its interpreter itself."""
    script = owlery.rpartition("/")[0] + "/owlery-lda" if "/" in owlery else "owlery-lda"
    try:
        with open(owlery, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return script
    python = first[2:].rstrip(b"\r\n").decode("utf-8", "replace")
    # pip's one-path shebang only ("#!/usr/bin/env python3", or a path with spaces for
    # which pip writes a sh wrapper, stay with owlery-lda's own sh part, like unusual bytes)
    if (first.startswith(b"#!/") and "python" in python.rpartition("/")[2] and python.isprintable()
            and not any(c.isspace() for c in python) and os.access(python, os.X_OK)
            and os.path.isfile(python) and "/" in script):
        return f"{python} -I -S {script}"
    return script


def master_cf(settings: Any, command: str | None = None) -> str:
    """master.cf lines: an `owlery` pipe transport for sites that prefer the LDA to LMTP.
    `command` is the `owlery` command's path; the line runs `owlery-lda` beside it (under
    the interpreter `owlery` names: lda_command)."""
    command = owlery_command() if command is None else command
    # The LDA must read the settings these lines were printed for: without --config it
    # would run on the default file (or built-in defaults) and refuse or misfile mail.
    config = _config_option(settings)
    if local_accounts(settings):
        return release_service(settings)      # local(8) runs the LDA: no pipe transport
    # The LDA writes the Maildirs as the pipe's user: their owner (maildir_owner), else the user
    # lmtpd writes them as (daemon_user); with neither set, the conventional vmail.
    owner = (getattr(settings, "maildir_owner", None) or "").split(":")[0] or settings.daemon_user or "vmail"
    return (
        "# Optional: deliver through the LDA instead of LMTP (virtual_transport = owlery)\n"
        "owlery    unix  -       n       n       -       -       pipe\n"
        f"  flags=DRhu user={owner} argv={lda_command(command)}{config} -f ${{sender}} -a ${{original_recipient}}"
        " -d ${user}@${nexthop}\n"
        + release_service(settings)
    )


def release_service(settings: Any) -> str:
    """The smtpd that takes released quarantine mail (`owlery quarantine release`, method smtp):
    loopback only, no milters, no policy service, no content filter, like amavis' 10025."""
    if getattr(settings, "quarantine_release_method", "smtp") != "smtp":
        return ""
    ep = parse_endpoint(settings.quarantine_release_smtp_endpoint)
    if ep.kind != "tcp":
        return ""
    host = f"[{ep.host}]" if ":" in ep.host else ep.host
    return (
        "# Quarantine release (owlery quarantine release): loopback only, not scanned again\n"
        f"{host}:{ep.port} inet n  -  n  -  -  smtpd\n"
        "  -o smtpd_milters=\n"
        "  -o non_smtpd_milters=\n"
        "  -o content_filter=\n"
        "  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters\n"
        "  -o smtpd_relay_restrictions=\n"
        "  -o smtpd_recipient_restrictions=permit_mynetworks,reject\n"
        "  -o smtpd_data_restrictions=\n"
        "  -o smtpd_end_of_data_restrictions=\n"
        f"  -o mynetworks={'127.0.0.0/8' if ':' not in ep.host else '[::1]/128'}\n"
        # its maillog lines name it (postfix/owlery-release/smtpd), apart from the scanning smtpd
        "  -o syslog_name=postfix/owlery-release\n"
    )


# Who connects to each daemon's socket: the Postfix processes that run chrooted on Debian.
_SOCKET_CLIENTS = {"policyd_listen": "smtpd or lmtp", "milter_listen": "smtpd or lmtp",
                   "lmtpd_listen": "smtpd or lmtp",
                   # virtual_mailbox_domains (trivial-rewrite), virtual_alias_maps (cleanup, smtpd)
                   "socketmap_listen": "trivial-rewrite, cleanup or smtpd"}


def _unreachable(settings: Any, role: str = "backend") -> list[tuple[str, str]]:
    """(socket path, the chrooted processes that use it) for each unix socket printed in the
    lines that lies outside Postfix's queue directory."""
    queue = _queue_directory(settings)
    keys = ["policyd_listen", "milter_listen", "lmtpd_listen"]
    if uses_socketmap(settings, role):
        keys.append("socketmap_listen")
    out = []
    for key in keys:
        ep = _first(getattr(settings, key))
        if ep.kind == "unix" and postfix_endpoint(ep, queue).startswith("unix:/"):
            out.append((ep.path, _SOCKET_CLIENTS[key]))
    return out


def unreachable_when_chrooted(settings: Any) -> list[str]:
    """The unix sockets outside Postfix's queue directory, which a chrooted Postfix process
    cannot reach (Debian's master.cf chroots smtpd and lmtp, and may chroot cleanup and
    trivial-rewrite, which ask the socketmap)."""
    return [path for path, _ in _unreachable(settings)]


# postscreen counts any answer of an entry without a filter; these keep 127.255.255.x
# (the lists' error codes) and answers outside 127/8 from counting, as the dnsbl check does.
POSTSCREEN_DEFAULT_FILTER = "127.[0..254].[0..255].[0..255]"


def postscreen_main_cf(settings: Any) -> list[tuple[str, str]]:
    """main.cf lines for postscreen(8) in front of smtpd, from the dnsbl_* settings."""
    sites = [str(site) if site.filter is not None else
             str(dataclasses.replace(site, filter=parse_filter(POSTSCREEN_DEFAULT_FILTER)))
             for site in settings.dnsbl_sites]
    out = [("postscreen_access_list", "permit_mynetworks"),
           ("postscreen_dnsbl_sites", ", ".join(sites)),
           ("postscreen_dnsbl_threshold", str(settings.dnsbl_threshold)),
           ("postscreen_dnsbl_allowlist_threshold", str(settings.dnsbl_allowlist_threshold)),
           ("postscreen_dnsbl_action", "enforce"),
           ("postscreen_dnsbl_timeout", f"{max(1, round(settings.dnsbl_timeout))}s"),
           ("postscreen_dnsbl_min_ttl", f"{max(1, round(settings.dnsbl_cache_min_ttl))}s"),
           ("postscreen_dnsbl_max_ttl", f"{max(1, round(settings.dnsbl_cache_max_ttl))}s"),
           ("postscreen_greet_action", "enforce")]
    if settings.dnsbl_reply_names:
        pairs = ", ".join(f"{{{k}={v}}}" for k, v in sorted(settings.dnsbl_reply_names.items()))
        out.append(("postscreen_dnsbl_reply_map", f"inline:{{ {pairs} }}"))
    return out


def postscreen_master_cf(service: str = "smtp", chroot: str = "-") -> str:
    """master.cf lines: postscreen takes port 25 (`service`) and hands clients to smtpd."""
    rows = [(service, "inet", "n", "1", "postscreen"), ("smtpd", "pass", "-", "-", "smtpd"),
            ("dnsblog", "unix", "-", "0", "dnsblog"), ("tlsproxy", "unix", "-", "0", "tlsproxy")]
    return "".join(f"{name:<9} {kind:<5} {private:<7} -       {chroot:<7} -       {procs:<7} {command}\n"
                   for name, kind, private, procs, command in rows)


def render_postscreen(settings: Any) -> str:
    """`owlery postfix --postscreen`: postscreen in front of smtpd, with the dnsbl_* lists."""
    lines = ["# postscreen(8) in front of smtpd, DNS lists from the dnsbl_* settings.",
             "# /etc/postfix/master.cf: replace the \"smtp inet ... smtpd\" line with these"]
    lines.append(postscreen_master_cf().rstrip("\n"))
    lines.append("")
    lines.append("# /etc/postfix/main.cf")
    if not settings.dnsbl_sites:
        lines.append("# dnsbl_sites is empty: postscreen runs its other tests only")
    if any(site.filter is None for site in settings.dnsbl_sites):
        lines.append(f"# entries without a filter get ={POSTSCREEN_DEFAULT_FILTER}: postscreen would count a "
                     "list's 127.255.255.x error answers")
    if settings.dnsbl_rhsbl_sender_sites or settings.dnsbl_rhsbl_helo_sites:
        lines.append("# postscreen looks up client addresses only: the dnsbl_rhsbl_* lists stay with the "
                     "policy daemon's dnsbl check")
    for name, value in postscreen_main_cf(settings):
        lines.append(f"{name} = {value}".rstrip())
    return "\n".join(lines)


def render(settings: Any, domains: Sequence[str], command: str | None = None, role: str = "backend") -> str:
    """Both files' lines as the text a postmaster pastes (also shown in README.rst). `role`
    (`owlery postfix --role`): "backend" hosts the mailboxes, "relay" routes to back ends
    (no LDA pipe then: it delivers nothing itself)."""
    lines = ["# /etc/postfix/main.cf"]
    queue = _queue_directory(settings)
    for path, clients in _unreachable(settings, role):
        lines.append(f"# {path} is outside Postfix's queue directory {queue}: a chrooted {clients} "
                     "(chroot column y in master.cf) cannot reach it")
    longest = policy_decision_longest(settings)
    if longest + POLICY_TIMEOUT_MARGIN > POLICY_TIMEOUT_MAX:
        lines.append(f"# a policy decision may take {math.ceil(longest)} s with these settings, longer than Postfix "
                     f"should wait ({POLICY_TIMEOUT_MAX} s): lower policyd_decision_timeout or the checks' "
                     "timeouts, else Postfix answers 451 4.3.5 before the policy daemon does")
    for name, value in main_cf(settings, domains, role, command):
        lines.append(f"{name} = {value}".rstrip())
    master = release_service(settings) if role == "relay" else master_cf(settings, command)
    if master:
        lines.append("")
        lines.append("# /etc/postfix/master.cf")
        lines.append(master.rstrip("\n"))
    return "\n".join(lines)
