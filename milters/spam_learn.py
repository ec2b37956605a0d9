"""Teaching spamd's Bayes database: what to teach, and remembering what was taught.

`Teacher.teach(message, "spam"|"ham", user)` sends one TELL to spamd unless the state store
remembers that this exact message (SHA-256 of its bytes) was already taught as that class
for that Bayes user: the nightly walk over every Junk folder then costs a store lookup per
old message instead of a full SpamAssassin parse. SpamAssassin keeps its own "seen" list
too (spamd answers without DidSet for a message it knows), so the memory saves work; it
is never what stops double counting. A message moved from Junk back to the inbox is
taught again as ham (the remembered class differs) and SpamAssassin relearns it.
A state store that is down costs the memory only (logged once), never the teaching.

Which Bayes database: one per site (`spamd_user`) by default, or one per mailbox
(`spam_learn_per_user`: the recipient's address is the spamd User, as with spamd's
--virtual-config-dir), the choice sa-learn cron scripts make per site.
Used by milters/spam_cli.py (`owlery spam learn`).
Tests: tests/milters/test_spam_learn.py, tests/e2e/test_spam_learn_imapsieve.py
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from owlery.errors import StateUnavailable
from owlery.settings import Bool, Duration, StrList, setting

SPAM_LEARN_MEMORY = setting(
    "spam_learn_memory", Duration, "180d", unit="s",
    doc="How long the state store remembers that a message was taught (so the nightly walk does "
        "not send it to spamd again); 0: remember nothing.")
SPAM_LEARN_PER_USER = setting(
    "spam_learn_per_user", Bool, False,
    "Teach each mailbox's own Bayes database (spamd User = the address) instead of the site's "
    "(spamd_user). Needs spamd run with per-user databases (e.g. --virtual-config-dir).")
SPAM_LEARN_SPAM_FOLDERS = setting(
    "spam_learn_spam_folders", StrList, ["Junk", "Spam"],
    "Folders whose messages `owlery spam learn --mailboxes` teaches as spam (IMAP names, any case).")
SPAM_LEARN_HAM_AGE = setting(
    "spam_learn_ham_age", Duration, "14d", unit="s",
    doc="With --ham-inbox, INBOX messages delivered at least this long ago are taught as ham (the "
        "user had time to move spam out of them).")

log = logging.getLogger("owlery.spam")

CLASSES = ("spam", "ham")


def memory_key(user: str, message: bytes) -> str:
    return f"spamlearn:{user}:{hashlib.sha256(message).hexdigest()}"


class Teacher:
    """TELL with memory. `client`: a SpamdClient; `store`: a StateStore or None."""

    def __init__(self, client: Any, store: Any, *, memory: float, now: float):
        self.client = client
        self.store = store if memory > 0 else None
        self.memory = memory
        self.now = now
        self._store_failed = False

    def _recall(self, key: str) -> str | None:
        if self.store is None:
            return None
        try:
            return self.store.get(key, self.now)
        except StateUnavailable as e:
            self._forget_store(e)
            return None

    def _remember(self, key: str, klass: str) -> None:
        if self.store is None:
            return
        try:
            self.store.set(key, klass, self.memory, self.now)
        except StateUnavailable as e:
            self._forget_store(e)

    def _forget_store(self, e: Exception) -> None:
        if not self._store_failed:
            log.warning("spam: learn: state store unavailable, teaching without memory: %s", e)
        self._store_failed = True
        self.store = None

    def teach(self, message: bytes, klass: str, user: str) -> str:
        """"learned", "known" (spamd or our memory had it) or raises ScannerUnavailable."""
        if klass not in CLASSES:
            raise ValueError(f"message class must be spam or ham, not {klass!r}")
        key = memory_key(user, message)
        if self._recall(key) == klass:
            return "known"
        answer = self.client.tell(message, klass, user=user)
        self._remember(key, klass)
        return "learned" if "local" in answer.did_set() else "known"
