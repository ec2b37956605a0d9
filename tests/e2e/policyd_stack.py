"""Real Postfix asking `owlery policyd` at RCPT, for the policy end-to-end tests.

`policyd_postfix(...)` starts policyd with some settings and a Postfix wired to it with the
lines `owlery postfix` prints; `greylist_config(workdir, delay)` is the greylisting settings
those tests share (SQLite state, allowlist files in workdir, mx.example.test in X-Greylist).
"""

from contextlib import contextmanager

from tests.harness.owlery_daemons import OwleryDaemons


def recipient_restrictions(daemons):
    """main.cf: smtpd_recipient_restrictions as `owlery postfix` prints it for these settings."""
    return {"smtpd_recipient_restrictions": dict(daemons.main_cf(["unused.test"]))["smtpd_recipient_restrictions"]}


@contextmanager
def policyd_postfix(postfix_factory, workdir, name, config, main_cf=recipient_restrictions):
    """Yield (postfix, daemons): `owlery policyd` with settings `config`, and a Postfix
    (`name`) with main_cf(daemons)."""
    daemons = OwleryDaemons(workdir, which=("policyd",), extra_config=config)
    daemons.start()
    try:
        pf = postfix_factory(main_cf=main_cf(daemons), name=name)
        yield pf, daemons
        pf.stop()
    finally:
        daemons.stop()


def greylist_config(workdir, delay):
    return (f'state_sqlite_path = "{workdir}/state.sqlite"\n'
            f"greylist_delay = {delay}\n"
            f'greylist_whitelist_clients = ["{workdir}/wl_clients"]\n'
            f'greylist_whitelist_recipients = ["{workdir}/wl_rcpts"]\n'
            'greylist_hostname = "mx.example.test"\n')
