"""Shared pieces of the quarantine end-to-end tests: real Postfix -> `owlery milter` with a quarantine store.

`milter_postfix(...)` starts the milter and a Postfix wired to it; `quarantine_stack(...)`
also writes the CLI's own settings file (the same store, releasing to that Postfix);
`spam_milter_config(spamd)` is the usual spam + quarantine milter settings;
`owlery(config, *argv)` runs the CLI as another process would; `quarantined(config, *filters)`
lists the store as JSON records.
"""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.harness.owlery_daemons import OwleryDaemons

ROOT = Path(__file__).resolve().parents[2]
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SENDER = "someone@sender.test"
# An Internet client, so the milter runs the inbound stages (127.0.0.0/8 stays internal, as by default).
OUTSIDE = {"ADDR": "192.0.2.7", "NAME": "mx.sender.test"}


def milter_main_cf(port):
    """main.cf lines giving Postfix's smtpd the milter on loopback `port` (tempfail when it is down)."""
    return {"smtpd_milters": f"inet:127.0.0.1:{port}", "milter_default_action": "tempfail",
            "milter_connect_macros": "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name}",
            "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} {mail_addr}"}


def spam_milter_config(spamd):
    """Milter settings: spam and quarantine stages for every client (none internal), scored by
    `spamd`, quarantined from 6.9."""
    return ('milter_inbound_stages = ["spam", "quarantine"]\nmilter_internal_networks = []\n'
            f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\nspamd_timeout = "20s"\n'
            'spam_quarantine_level = 6.9\n')


def reinject_release(postfix):
    """CLI settings: release through `postfix`'s reinjection port (SMTP)."""
    return f'quarantine_release_smtp_endpoint = "tcp:127.0.0.1:{postfix.reinject_port}"\n'


@contextmanager
def milter_postfix(postfix_factory, workdir, name, milter_config, main_cf=None, **postfix_kw):
    """Yield (postfix, daemons).

    `owlery milter` runs with `milter_config` and quarantine_directory = <workdir>/quarantine;
    the Postfix (`name`, more postfix_factory arguments in postfix_kw) has main_cf(daemons),
    by default milter_main_cf(milter port).
    """
    daemons = OwleryDaemons(workdir, which=("milter",),
                            extra_config=milter_config + f'quarantine_directory = "{workdir / "quarantine"}"\n')
    daemons.start()
    try:
        pf = postfix_factory(main_cf=main_cf(daemons) if main_cf else milter_main_cf(daemons.ports["milter"]),
                             name=name, **postfix_kw)
        yield pf, daemons
        pf.stop()
    finally:
        daemons.stop()


@contextmanager
def quarantine_stack(postfix_factory, workdir, name, milter_config, main_cf=None, release=reinject_release,
                     **postfix_kw):
    """Yield (postfix, daemons, cli_config): milter_postfix(...), and the CLI's settings file
    <workdir>/cli.toml naming the same store, release(postfix) and an audit log in workdir."""
    with milter_postfix(postfix_factory, workdir, name, milter_config, main_cf, **postfix_kw) as (pf, daemons):
        cli_config = workdir / "cli.toml"
        cli_config.write_text(f'quarantine_directory = "{workdir / "quarantine"}"\n' + release(pf)
                              + f'quarantine_audit_log_path = "{workdir / "audit.log"}"\n')
        yield pf, daemons, cli_config


def owlery(config, *argv):
    """`owlery <argv> --config <config>` in its own process; the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "owlery.app.cli", *argv, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def quarantined(cli_config, *filters):
    """`owlery quarantine list --json <filters>`: the records (the command must succeed)."""
    listed = owlery(cli_config, "quarantine", "list", "--json", *filters)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]
