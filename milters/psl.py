"""Organizational domains from the Public Suffix List: Debian's `publicsuffix` package, else a bundled copy.

`PublicSuffixList.load(path).organizational_domain("mail.example.co.uk")` ->
"example.co.uk" (RFC 7489 section 3.2: the public suffix plus one label). Rules,
wildcards and exceptions follow https://publicsuffix.org/list/ (ICANN and private sections).

Which file: `shared(path)` reads `dmarc_public_suffix_list` (default SYSTEM_LIST, kept current
by apt's `publicsuffix` package). Only when that file does not exist does it fall back to
BUNDLED_LIST (a frozen copy in milters/data, which goes stale), logging that once per path
and process; a file that exists but cannot be read or holds no rules is an error
(PublicSuffixListError): a broken list would silently change every DMARC alignment.
Talks to: the file system (one read per path per process). Tests: tests/milters/test_units.py,
tests/milters/test_psl_loading.py
"""

from __future__ import annotations

import functools
import logging
import os

# Debian's publicsuffix package (a runtime dependency in scripts/install-deps).
SYSTEM_LIST = "/usr/share/publicsuffix/public_suffix_list.dat"
# The copy shipped in the repository, used only when the system list is missing.
BUNDLED_LIST = os.path.join(os.path.dirname(__file__), "data", "public_suffix_list.dat")
PACKAGED_LIST = BUNDLED_LIST     # the older name of BUNDLED_LIST

log = logging.getLogger("owlery.milter")

ORGANIZATIONAL_CACHE_SIZE = 10_000     # domains whose organizational domain is remembered


class PublicSuffixListError(ValueError):
    """A Public Suffix List file that exists but cannot be used (unreadable, no rules)."""


class PublicSuffixList:
    def __init__(self, rules: set[str], exceptions: set[str]):
        self._rules = rules            # "co.uk", "*.ck"
        self._exceptions = exceptions  # "www.ck" (from "!www.ck")
        # organizational_domain's answers: the dmarc stage asks up to five times per message,
        # mostly for the same few domains. The list never changes once parsed.
        self._organizational: dict[str, str] = {}

    @classmethod
    def parse(cls, text: str) -> "PublicSuffixList":
        rules, exceptions = set(), set()
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            rule = line.split()[0].lower()
            rule = rule.encode("idna").decode("ascii") if not rule.isascii() and "*" not in rule \
                else rule
            if rule.startswith("!"):
                exceptions.add(rule[1:])
            else:
                rules.add(rule)
        return cls(rules, exceptions)

    @classmethod
    def load(cls, path: str = BUNDLED_LIST) -> "PublicSuffixList":
        """Parse one file; FileNotFoundError when it is missing, PublicSuffixListError when unusable."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError) as e:
            raise PublicSuffixListError(f"public suffix list {path}: cannot be read: {e}") from None
        parsed = cls.parse(text)
        if not parsed._rules:
            raise PublicSuffixListError(f"public suffix list {path}: holds no rules")
        return parsed

    @property
    def rule_count(self) -> int:
        return len(self._rules) + len(self._exceptions)

    def public_suffix(self, domain: str) -> str:
        labels = domain.lower().rstrip(".").split(".")
        # The longest matching rule wins; an exception rule beats everything; the
        # default rule "*" makes an unknown TLD a public suffix.
        best = 1
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            if candidate in self._exceptions:
                return ".".join(labels[i + 1:])
            wildcard = ".".join(["*"] + labels[i + 1:]) if i + 1 <= len(labels) else ""
            n = len(labels) - i
            if candidate in self._rules or (wildcard and wildcard in self._rules):
                best = max(best, n)
        return ".".join(labels[len(labels) - best:])

    def organizational_domain(self, domain: str) -> str:
        found = self._organizational.get(domain)
        if found is None:
            found = self._organizational_domain(domain)
            if len(self._organizational) >= ORGANIZATIONAL_CACHE_SIZE:
                self._organizational.clear()
            self._organizational[domain] = found
        return found

    def _organizational_domain(self, domain: str) -> str:
        labels = domain.lower().rstrip(".").split(".")
        suffix_len = len(self.public_suffix(domain).split("."))
        if len(labels) <= suffix_len:
            return ".".join(labels)     # the domain is itself a public suffix
        return ".".join(labels[-(suffix_len + 1):])


def load_or_bundled(path: str = SYSTEM_LIST) -> PublicSuffixList:
    """The list at path; the bundled copy instead when path does not exist (logged)."""
    try:
        return PublicSuffixList.load(path)
    except FileNotFoundError:
        pass
    bundled = PublicSuffixList.load(BUNDLED_LIST)
    log.warning("milter: psl: fallback: path=%s missing; using the copy bundled with Owlery (%s, may be "
                "out of date); install Debian's publicsuffix package or set dmarc_public_suffix_list",
                path, BUNDLED_LIST)
    return bundled


@functools.lru_cache(maxsize=4)
def shared(path: str = SYSTEM_LIST) -> PublicSuffixList:
    """One parsed list per path for the whole process (read-only after load); the fallback
    to the bundled copy is therefore decided, and logged, once per path."""
    return load_or_bundled(path)
