"""Which module declares the settings of each section (a key's prefix, e.g. `greylist_`).

The one list that maps setting prefixes to modules, so that loading a file imports only
the modules its keys need and `owlery config show` can import them all. The core never
imports a product; this table only names them, and only the CLI walks all of it.
Add one line when a module declares settings under a new prefix.
Tests: tests/core/test_settings.py (every listed module imports and declares its prefix).
"""

SECTION_MODULES: dict[str, tuple[str, ...]] = {
    # shared core
    "log": ("owlery.log",),
    "daemon": ("owlery.daemon",),
    "dns": ("owlery.dns",),
    # policy daemon
    "policyd": ("policyd.settings", "owlery.metrics"),
    "directory": ("owlery.directory",),
    "files": ("owlery.directory.files", "owlery.directory.auth", "owlery.quarantine.preferences"),
    "ldap": ("owlery.directory.ldap", "owlery.quarantine.preferences"),
    "passwd": ("owlery.directory.passwd",),
    "quota": ("policyd.checks.quota",),
    "quota_warning": ("sieve.delivery.quota_warn",),
    # socketmap table server
    "socketmap": ("socketmap.settings", "owlery.metrics"),
    # milter
    "milter": ("milters.settings", "milters.session", "milters.effects", "milters.stages",
               "milters.dns", "milters.stages.authres", "owlery.metrics"),
    "milter_spf": ("milters.stages.spf",),
    "dkim": ("milters.stages.dkim_sign", "milters.stages.dkim_verify"),
    "dmarc": ("milters.stages.dmarc", "milters.dmarc_store", "milters.dmarc_report"),
    "arc": ("milters.stages.arc_verify", "milters.stages.arc_seal"),
    "clamd": ("milters.clients.clamav",),
    "spamd": ("milters.clients.spamd",),
    "quarantine": ("owlery.quarantine", "milters.stages.quarantine", "owlery.quarantine.release", "milters.quarantine_cli",
                   "owlery.quarantine.tokenkey", "owlery.quarantine.notify", "owlery.quarantine.preferences"),
    "antivirus": ("milters.stages.antivirus",),
    "spam": ("milters.stages.spam", "milters.spam_learn"),
    "banned": ("milters.stages.banned",),
    "content": ("owlery.content_policy",),
    # sieve engine
    "sieve": ("sieve.limits",),
    # (their own prefixes: reading sieve_max_redirects on every delivery loads neither)
    "sieve_spamtest": ("sieve.extensions.spamtest",),
    "sieve_virustest": ("sieve.extensions.spamtest",),
    "sieve_pipe": ("sieve.extprograms",),
    "sieve_filter": ("sieve.extprograms",),
    "sieve_execute": ("sieve.extprograms",),
    "sieve_extprograms": ("sieve.extprograms",),
    # sieve delivery
    "lmtpd": ("sieve.delivery.lmtpd_settings", "owlery.metrics"),
    "maildir": ("owlery.maildir",),
    "delivery": ("sieve.delivery.users", "sieve.delivery.executor", "sieve.delivery.default_script",
                 "sieve.delivery.extlists"),
    "lda": ("sieve.delivery.lda",),
    "managesieve": ("sieve.managesieve.settings", "owlery.metrics"),
    "mailbox": ("sieve.delivery.expire",),
    "redirect": ("sieve.delivery.redirect",),
    "vacation": ("sieve.delivery.vacation",),
    "submission": ("sieve.delivery.submission",),
    "state": ("owlery.state",),
    "greylist": ("policyd.checks.greylist",),
    "spf": ("policyd.checks.spf",),
    "dnsbl": ("policyd.checks.dnsbl",),
    "ratelimit": ("policyd.checks.ratelimit",),
    # quarantine web application
    "web": ("web.settings", "owlery.metrics"),
    # `owlery stats` (reads the log files)
    "stats": ("owlery.app.stats",),
    # `owlery check` (the Nagios/Icinga plugin)
    "check": ("owlery.app.check_settings",),
}
