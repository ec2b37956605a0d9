"""owlery.maildir._Fds and _DirLock: the release stack and lock that stand in for contextlib
(whose import the in-process LDA no longer pays). Releases must run whatever happens."""

from __future__ import annotations

import fcntl
import os

import pytest

from owlery.maildir import Maildir, MaildirError, _Fds


class Exit:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def __enter__(self):
        self.log.append(f"enter {self.name}")
        return self.name

    def __exit__(self, *exc):
        self.log.append(f"exit {self.name} {exc[0].__name__ if exc[0] else None}")
        return False


def test_releases_run_last_in_first_out():
    log = []
    with _Fds() as fds:
        fds.callback(log.append, "first")
        assert fds.enter_context(Exit(log, "lock")) == "lock"
        fds.callback(log.append, "last")
    assert log == ["enter lock", "last", "exit lock None", "first"]


def test_every_release_runs_when_one_fails_and_its_error_follows_the_block():
    log = []

    def boom():
        raise OSError("release failed")
    with pytest.raises(OSError, match="release failed"):
        with _Fds() as fds:
            fds.callback(log.append, "a")
            fds.callback(boom)
            fds.callback(log.append, "c")
    assert log == ["c", "a"]


def test_the_blocks_error_propagates_after_the_releases():
    log = []
    with pytest.raises(ValueError, match="in the block"):
        with _Fds() as fds:
            fds.enter_context(Exit(log, "lock"))
            fds.callback(log.append, "closed")
            raise ValueError("in the block")
    assert log == ["enter lock", "closed", "exit lock ValueError"]


def test_dir_lock_holds_flock_until_the_block_ends(tmp_path):
    md = Maildir(str(tmp_path / "Maildir"))
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        probe = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with md._dir_lock(root, ".", "test"):
                with pytest.raises(BlockingIOError):
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)     # released
            md.lock_timeout = 0.05
            with pytest.raises(MaildirError, match="still locked"):
                with md._dir_lock(root, ".", "test"):
                    pass
        finally:
            os.close(probe)
    finally:
        os.close(root)
