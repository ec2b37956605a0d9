"""delivery_sieve_default (sieve/delivery/default_script.py): the site's script for users without one."""

import os

from owlery.settings import Settings
from sieve.delivery.default_script import user_or_default


def test_user_or_default(tmp_path):
    default = tmp_path / "default.sieve"
    default.write_text('require "fileinto"; fileinto "Default";\n')
    settings = Settings().replace(delivery_sieve_default=str(default))
    sieve = tmp_path / "alice" / "sieve"
    link = sieve / "active.sieve"
    assert user_or_default(str(link), settings) == str(default)          # no sieve dir at all
    sieve.mkdir(parents=True)
    (sieve / "mine.sieve").write_text("keep;\n")
    assert user_or_default(str(link), settings) == str(default)          # scripts, none active
    os.symlink("mine.sieve", link)
    assert user_or_default(str(link), settings) == str(link)             # activated: theirs, not both
    os.unlink(sieve / "mine.sieve")
    assert user_or_default(str(link), settings) == str(default)          # dangling link: no script
    assert user_or_default(None, settings) == str(default)
    assert user_or_default(str(link), Settings()) is None                # unset: plain keep
    (tmp_path / "afile").write_text("")
    assert user_or_default(str(tmp_path / "afile" / "x.sieve"), settings) == str(default)
