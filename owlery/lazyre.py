"""Regular expressions compiled on their first use, for module-level patterns.

The in-process LDA starts one Python process per message and loads the Sieve engine, the
Maildir writer and the settings each time; their modules hold dozens of patterns, most of
which an ordinary delivery never uses (encoded words, quoted-printable, RFC 5322 address
parts, SRS, spamtest values). Compiling them at import cost about 5 ms per message, so such
a module writes `_QUOTED = lazy(r'"(?:[^"\\\\]|\\\\.)*"')` instead of `re.compile(...)`: the
object compiles the pattern at its first attribute use and from then on hands out the
compiled pattern's own bound methods (`match`, `search`, `sub`, ...), so later calls cost
what a compiled pattern's do. A pattern that fails to compile fails at its first use, so
every lazy pattern is compiled once by tests/core/test_lazyre.py. `re` itself is imported
at the first compile, not with this module: with enum, functools and collections it costs
about 22 M instructions, a fifth of an in-process delivery that compiles no pattern.
"""

# what callers use of a compiled pattern; cached on the instance at the first use of any
_ATTRIBUTES = ("match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer",
               "pattern", "flags", "groups", "groupindex", "scanner")


class LazyPattern:
    """`re.compile(pattern, flags)` on first use (see the module docstring)."""

    def __init__(self, pattern, flags: int = 0):
        self._args = (pattern, flags)

    def compiled(self) -> "re.Pattern":  # noqa: F821 (re is imported here, not at module level)
        import re
        return re.compile(*self._args)

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "_args":
            raise AttributeError(name)
        compiled = self.compiled()
        for attr in _ATTRIBUTES:
            self.__dict__[attr] = getattr(compiled, attr)
        return getattr(compiled, name)

    def __repr__(self) -> str:
        return f"lazy({self._args[0]!r})"


def lazy(pattern, flags: int = 0) -> LazyPattern:
    """A pattern compiled at its first use."""
    return LazyPattern(pattern, flags)
