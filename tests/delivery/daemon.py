"""Start `owlery lmtpd` as a child process for tests and benchmarks (free port, polled readiness).

Also `shared_workdir()`: a private directory every user can traverse, because Dovecot and
Postfix's pipe(8) read and write the Maildirs as `nobody` (pytest's tmp_path is 0700 root).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tests.harness.owlery_daemons import OwleryDaemon


def shared_workdir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


def remove_workdir(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)


def base_config(work: Path) -> str:
    """Mail under work/mail/<domain>/<user>/Maildir, scripts in .../<user>/sieve/active.sieve."""
    return f"""
maildir_path_template = "{work}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{work}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_sqlite_path = "{work}/state/state.sqlite"
maildir_owner = "nobody"
"""


@contextmanager
def maildir_lmtpd(prefix: str, config: str = ""):
    """Yield (work, lmtpd): `owlery lmtpd` filing mail into Maildirs under shared_workdir(prefix)
    (base_config, then `config`, without directory lookups); stopped and removed afterwards."""
    work = shared_workdir(prefix)
    lmtpd = Lmtpd(work, base_config(work) + config + "delivery_use_directory = false\n")
    try:
        yield work, lmtpd.start()
    finally:
        lmtpd.stop()
        remove_workdir(work)


class Lmtpd(OwleryDaemon):
    """`owlery lmtpd --config <work>/<name>.toml` on a free loopback port."""

    command = "lmtpd"
