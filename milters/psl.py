"""Organizational domains from the Public Suffix List shipped in milters/data (no network).

`PublicSuffixList.load(path).organizational_domain("mail.example.co.uk")` ->
"example.co.uk" (RFC 7489 section 3.2: the public suffix plus one label). Rules,
wildcards and exceptions follow https://publicsuffix.org/list/ (ICANN and private sections).
Talks to: the file system (one read at start). Tests: tests/milters/test_units.py
"""

from __future__ import annotations

import functools
import os

PACKAGED_LIST = os.path.join(os.path.dirname(__file__), "data", "public_suffix_list.dat")


class PublicSuffixList:
    def __init__(self, rules: set[str], exceptions: set[str]):
        self._rules = rules            # "co.uk", "*.ck"
        self._exceptions = exceptions  # "www.ck" (from "!www.ck")

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
    def load(cls, path: str = PACKAGED_LIST) -> "PublicSuffixList":
        with open(path, encoding="utf-8") as f:
            return cls.parse(f.read())

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
        labels = domain.lower().rstrip(".").split(".")
        suffix_len = len(self.public_suffix(domain).split("."))
        if len(labels) <= suffix_len:
            return ".".join(labels)     # the domain is itself a public suffix
        return ".".join(labels[-(suffix_len + 1):])


@functools.lru_cache(maxsize=4)
def shared(path: str = PACKAGED_LIST) -> PublicSuffixList:
    """One parsed list per path for the whole process (read-only after load)."""
    return PublicSuffixList.load(path)
