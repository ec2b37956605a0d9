"""OpenDKIM's signing setup read into Owlery's: `owlery dkim import-opendkim`.

Three steps. `read_opendkim` parses opendkim.conf (`Name value` lines, Include) and the
KeyTable/SigningTable it names, or the Domain/Selector/KeyFile mode, into rules: text in,
rules out (files reach it through a reader). `plan` decides, for each rule, whether Owlery's
model (`dkim_sign_keys`: the From domain, or its nearest listed parent, signs with that
domain's selectors; stages/dkim_sign.py) signs the same way, by asking both models which
d=/s= each concerned From domain gets, as opendkim.conf(5) and opendkim(8) describe (first
match, or every match with MultipleSignatures; refile: patterns in file order; file: tables
looked up as user@host, host, .parent..., *); it validates every key with dkimkeys' loader
and never plans to overwrite a different key. `apply` copies the keys (0600, owned as
`owlery dkim genkey` gives them). What Owlery cannot express (a rule for some addresses only,
a d= that is not the From domain or its parent, `%` where d= would vary, LDAP or SQL
datasets...) is skipped with the reason.
Talks to: the file system (reads OpenDKIM's files, writes key copies in apply).
Tests: tests/milters/test_dkim_import.py (parsing and planning from strings; the CLI end to
end against the real opendkim signing the same From addresses).
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Callable, Iterator

from milters import dkimkeys
from owlery.cliutil import FileRefused, read_regular_file

MAX_TABLE_BYTES = 1 << 20        # opendkim.conf, KeyTable, SigningTable: each at most 1 MiB
MAX_KEY_BYTES = 64 * 1024        # an 8192-bit RSA PEM is under 7 KiB
MAX_INCLUDE_DEPTH = 5            # opendkim.conf(5): Include nests to five levels
PROBE_LABEL = "owlery-import-probe"   # a subdomain no rule names, standing for "any subdomain"

# opendkim(8) DATA SETS: the prefixes it knows; only flat files and lists are read here.
_UNSUPPORTED_DATASETS = {
    "db": "a Berkeley DB dataset", "dsn": "an SQL (DSN) dataset", "ldap": "an LDAP dataset",
    "ldaps": "an LDAP dataset", "ldapi": "an LDAP dataset", "lua": "a Lua dataset",
    "memcache": "a memcached dataset", "mdb": "an LMDB dataset", "erlang": "an Erlang dataset",
}
_PREFIX_RE = re.compile(r"^([A-Za-z][A-Za-z0-9]*):")
_TRUE, _FALSE = "TtYy1", "FfNn0"


class OpenDkimUnreadable(Exception):
    """An OpenDKIM file that cannot be read or parsed at all (exit status 2)."""


class KeyRefused(Exception):
    """A key file that is not imported (a symlink, not a regular file, too small, not a key)."""


Reader = Callable[[str], str]


# --- reading ----------------------------------------------------------------------------

def read_bounded(path: str, limit: int = MAX_TABLE_BYTES) -> bytes:
    """A regular file's bytes, at most `limit` (OpenDkimUnreadable otherwise)."""
    try:
        return read_regular_file(path, limit)
    except FileRefused as e:
        raise OpenDkimUnreadable(str(e)) from None


def read_text(path: str) -> str:
    """A table or configuration file as text (bounded; undecodable bytes replaced, so they
    fail the domain and selector checks instead of the whole file)."""
    return read_bounded(path).decode("utf-8", "replace")


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, content) of the lines that say something: CRLF or LF, `#` starts a comment
    (opendkim.conf(5), opendkim(8) file:), surrounding white space dropped."""
    for number, line in enumerate(text.split("\n"), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield number, line


def split_entry(line: str) -> tuple[str, str]:
    """`key value`: the key up to the first white space, the rest (stripped) the value."""
    parts = line.split(None, 1)
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


# --- opendkim.conf ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ConfValue:
    value: str
    where: str


def parse_conf(text: str, path: str, read: Reader, depth: int = 0) -> dict[str, ConfValue]:
    """opendkim.conf's parameters by lower-cased name (names are matched without regard to
    case); Include is followed (to five levels). A parameter given twice is refused: which one
    OpenDKIM keeps is no promise of its manual."""
    out: dict[str, ConfValue] = {}
    for number, line in logical_lines(text):
        name, value = split_entry(line)
        where = f"{path}:{number}"
        if name.lower() == "include":
            if depth >= MAX_INCLUDE_DEPTH:
                raise OpenDkimUnreadable(f"{where}: Include nested deeper than {MAX_INCLUDE_DEPTH} levels")
            target = resolve(value, os.path.dirname(path))
            included = parse_conf(read(target), target, read, depth + 1)
            for k, v in included.items():
                _set_once(out, k, v)
            continue
        _set_once(out, name.lower(), ConfValue(value, where))
    return out


# The parameters read here; another one given twice is no concern of the import.
_READ = {"basedirectory", "domain", "keyfile", "keytable", "multiplesignatures", "selector", "signingtable",
         "subdomains"}


def _set_once(out: dict[str, ConfValue], name: str, setting: ConfValue) -> None:
    if name in out:
        if name in _READ:
            raise OpenDkimUnreadable(f"{setting.where}: {name} given again (first at {out[name].where})")
        return
    out[name] = setting


def boolean(setting: ConfValue | None) -> bool:
    """opendkim.conf(5): only the first byte of a Boolean counts."""
    if setting is None:
        return False
    if setting.value[:1] in _TRUE:
        return True
    if setting.value[:1] in _FALSE:
        return False
    raise OpenDkimUnreadable(f"{setting.where}: {setting.value!r} is not a Boolean")


def resolve(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def dataset_kind(spec: str) -> tuple[str, str]:
    """(kind, rest) of a dataset: "file", "refile", "csl", or ("unsupported", reason)."""
    m = _PREFIX_RE.match(spec)
    prefix = m.group(1).lower() if m else None
    if prefix in ("file", "refile", "csl"):
        return prefix, spec[m.end():]
    if prefix in _UNSUPPORTED_DATASETS:
        return "unsupported", f"{spec.split('//')[0]}... is {_UNSUPPORTED_DATASETS[prefix]}, which this import does not read"
    if prefix is not None:
        return "unsupported", f"{prefix}:...: an unknown dataset type"
    if spec.endswith(".db"):
        return "unsupported", f"{spec}: a Berkeley DB dataset, which this import does not read"
    if spec.startswith("/"):
        return "file", spec
    return "csl", spec


# --- keys and rules ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class KeyRef:
    """One KeyTable entry (or the KeyFile of the Domain mode): d=, s= and the key file."""

    domain: str          # "%": the From domain
    selector: str
    path: str
    where: str


@dataclasses.dataclass(eq=False)
class Rule:
    """One signing rule: a SigningTable line, or a domain of the Domain mode."""

    where: str
    text: str
    kind: str            # "exact", "subtree", "wild" (generic, not expressible), "address" (some users)
    domain: str | None   # exact: the From domain; subtree: the parent of the From domains
    names: list[str]     # KeyTable names ("%": the From domain)
    reason: str = ""     # why it is not expressible (wild, address)
    regex: re.Pattern[str] | None = None   # refile: the pattern
    signer: str = ""

    def describe(self) -> str:
        return f"{self.where}: {self.text!r}"


@dataclasses.dataclass
class Source:
    """The signing setup read from OpenDKIM: rules, the KeyTable, how they are looked up."""

    mode: str                              # "refile", "file" (lookup order of opendkim(8)), "domain"
    rules: list[Rule]
    keys: dict[str, KeyRef | str]          # KeyTable name -> entry, or why the entry is unusable
    multiple: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)   # skipped as a whole
    notes: list[str] = dataclasses.field(default_factory=list)


def _domain_ok(domain: str) -> bool:
    return bool(dkimkeys._DOMAIN_RE.match(domain))


def refile_regex(pattern: str) -> re.Pattern[str]:
    """opendkim(8) refile: `*` matches any text, every other character itself; the whole
    address must match (compared lower-cased, as OpenDKIM matches `*@Other.NET`)."""
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern.lower()), re.S)


def classify_refile(pattern: str) -> tuple[str, str | None, str]:
    """(kind, domain, reason) of a refile: SigningTable pattern."""
    p = pattern.lower()
    if "@" in p:
        local, dom = p.rsplit("@", 1)
        if local != "*":
            return "address", None, ("a per-address rule: Owlery signs by From domain only"
                                     if "*" not in local else
                                     "a rule for some local parts only: Owlery signs by From domain only")
        if "*" not in dom:
            return ("exact", dom, "") if _domain_ok(dom) else ("wild", None, f"{dom!r} is no domain name")
        if dom.startswith("*.") and "*" not in dom[2:] and _domain_ok(dom[2:]):
            return "subtree", dom[2:], ""
        return "wild", None, _wild_reason(dom)
    if p.startswith("*"):
        rest = p[1:]
        if rest.startswith(".") and "*" not in rest and _domain_ok(rest[1:]):
            return "subtree", rest[1:], ""
        return "wild", None, _wild_reason(p)
    return "address", None, ("matches no From address: refile: patterns match the whole user@domain "
                             f"(*@{p} is the domain)")


def _wild_reason(dom: str) -> str:
    if dom in ("*", "*@*"):
        return "signs every From domain: Owlery signs only the domains listed (list each)"
    return (f"the wildcard in {dom!r} matches domains Owlery cannot list "
            "(Owlery lists exact domains; each also covers its subdomains)")


def classify_file_key(key: str) -> tuple[str, str | None, str]:
    """(kind, domain, reason) of a file: SigningTable key (opendkim(8) lookup forms)."""
    k = key.lower()
    if k == "*":
        return "wild", None, _wild_reason("*")
    if "@" in k:
        if k.startswith("*@"):
            return "address", None, ("in a file: table * is no wildcard: this line matches the local part '*' "
                                     "only, so OpenDKIM never uses it (refile: makes it a pattern)")
        return "address", None, "a per-address rule: Owlery signs by From domain only"
    if "*" in k:
        return "address", None, "in a file: table * is no wildcard: OpenDKIM never matches this line"
    if k.startswith(".") and _domain_ok(k[1:]):
        return "subtree", k[1:], ""
    if _domain_ok(k):
        return "exact", k, ""
    return "address", None, f"{key!r} is no domain name"


def parse_keytable(text: str, path: str) -> dict[str, KeyRef | str]:
    """KeyTable `name domain:selector:/path/to/key` -> KeyRef, or why the line is unusable."""
    out: dict[str, KeyRef | str] = {}
    base = os.path.dirname(path)
    for number, line in logical_lines(text):
        name, value = split_entry(line)
        where = f"{path}:{number}"
        if name in out:
            continue                 # the first line of a name is the one looked up
        fields = value.split(":", 2)
        if len(fields) != 3 or not all(f.strip() for f in fields):
            out[name] = (f"KeyTable entry {name} ({where}) has {len([f for f in fields if f.strip()])} of its "
                         "3 fields domain:selector:keyfile")
            continue
        domain, selector, key = (f.strip() for f in fields)
        if not key.startswith(("/", "./", "../")):
            out[name] = (f"KeyTable entry {name} ({where}) holds the private key itself, not a file: "
                         "put it in a file")
        elif "%" in key:
            out[name] = f"KeyTable entry {name} ({where}): a % macro in the key path"
        elif domain != "%" and not _domain_ok(domain):
            out[name] = f"KeyTable entry {name} ({where}): {domain!r} is no domain name"
        elif not dkimkeys._SELECTOR_RE.match(selector):
            out[name] = f"KeyTable entry {name} ({where}): {selector!r} is no selector Owlery accepts"
        else:
            out[name] = KeyRef(domain.lower(), selector, resolve(key, base), where)
    return out


def parse_signingtable(text: str, path: str, kind: str) -> list[Rule]:
    rules = []
    for number, line in logical_lines(text):
        key, value = split_entry(line)
        where = f"{path}:{number}"
        fields = value.split(":", 1)
        name = fields[0].split()[0] if fields[0].split() else ""
        signer = fields[1].strip() if len(fields) > 1 else ""
        if kind == "refile":
            what, domain, reason = classify_refile(key)
            regex = refile_regex(key)
        else:
            what, domain, reason = classify_file_key(key)
            regex = None
        if not name:
            what, reason = "address", "no KeyTable name after the pattern"
        rules.append(Rule(where, line, what, domain, [name], reason, regex, signer))
    return rules


def read_opendkim(conf_path: str | None, read: Reader, *, keytable: str | None = None,
                  signingtable: str | None = None) -> Source:
    """The signing setup of opendkim.conf at `conf_path` (None: only the tables given), with
    `keytable`/`signingtable` (dataset specifications, as in opendkim.conf) in place of its own."""
    conf = parse_conf(read(conf_path), conf_path, read) if conf_path is not None else {}
    base_setting = conf.get("basedirectory")
    # Relative paths are relative to BaseDirectory (OpenDKIM chdirs there), else to the file's directory.
    base = base_setting.value if base_setting else (os.path.dirname(conf_path) if conf_path else os.getcwd())
    multiple = boolean(conf.get("multiplesignatures"))
    subdomains = boolean(conf.get("subdomains"))
    kt = ConfValue(keytable, "--keytable") if keytable else conf.get("keytable")
    st = ConfValue(signingtable, "--signingtable") if signingtable else conf.get("signingtable")
    if kt is None and st is None:
        return _domain_mode(conf, base, read, subdomains)
    source = Source("file", [], {}, multiple)
    if conf.get("domain") or conf.get("keyfile"):
        source.notes.append("Domain, Selector and KeyFile are ignored: a KeyTable is in use (opendkim.conf(5))")
    if subdomains:
        source.notes.append("SubDomains applies to the Domain list only, not to a SigningTable: not imported")
    if kt is None or st is None:
        source.problems.append(f"{(kt or st).where}: a {'KeyTable' if kt else 'SigningTable'} without a "
                               f"{'SigningTable' if kt else 'KeyTable'}: OpenDKIM signs nothing with it")
        return source
    kind, rest = dataset_kind(kt.value)
    if kind != "file":
        source.problems.append(f"{kt.where}: KeyTable {rest if kind == 'unsupported' else kt.value}"
                               + ("" if kind == "unsupported" else ": only a file: KeyTable is read"))
        return source
    path = resolve(rest, base)
    source.keys = parse_keytable(read(path), path)
    kind, rest = dataset_kind(st.value)
    if kind not in ("file", "refile"):
        source.problems.append(f"{st.where}: SigningTable {rest if kind == 'unsupported' else st.value}"
                               + ("" if kind == "unsupported" else ": only file: and refile: SigningTables are read"))
        return source
    path = resolve(rest, base)
    source.mode = kind
    source.rules = parse_signingtable(read(path), path, kind)
    return source


def _domain_mode(conf: dict[str, ConfValue], base: str, read: Reader, subdomains: bool) -> Source:
    """Domain + Selector + KeyFile: every listed domain signs with d= itself; with SubDomains its
    subdomains too, with d= the listed domain (what opendkim 2.11 does)."""
    source = Source("file", [], {})
    domain = conf.get("domain")
    if domain is None:
        source.problems.append("no KeyTable/SigningTable and no Domain: this OpenDKIM signs nothing")
        return source
    missing = [n for n in ("selector", "keyfile") if n not in conf]
    if missing:
        source.problems.append(f"{domain.where}: Domain without {' and '.join(m.capitalize() for m in missing)}: "
                               "OpenDKIM signs nothing with it")
        return source
    selector, keyfile = conf["selector"], conf["keyfile"]
    if not dkimkeys._SELECTOR_RE.match(selector.value):
        source.problems.append(f"{selector.where}: {selector.value!r} is no selector Owlery accepts")
        return source
    source.keys["KeyFile"] = KeyRef("%", selector.value, resolve(keyfile.value, base), keyfile.where)
    kind, rest = dataset_kind(domain.value)
    if kind == "unsupported":
        source.problems.append(f"{domain.where}: Domain {rest}")
        return source
    if kind == "refile":
        source.problems.append(f"{domain.where}: Domain refile:...: a pattern list, not domains")
        return source
    if kind == "file":
        path = resolve(rest, base)
        entries = [(f"{path}:{n}", split_entry(line)[0]) for n, line in logical_lines(read(path))]
    else:
        entries = [(domain.where, e.strip()) for e in rest.split(",") if e.strip()]
    for where, entry in entries:
        entry = entry.split("=", 1)[0].lower()   # "x=y" list items are keys with values; the key names the domain
        if entry == "*":
            source.rules.append(Rule(where, entry, "wild", None, ["KeyFile"], _wild_reason("*")))
        elif not _domain_ok(entry):
            source.rules.append(Rule(where, entry, "address", None, ["KeyFile"], f"{entry!r} is no domain name"))
        else:
            source.rules.append(Rule(where, entry, "exact", entry, ["KeyFile"]))
            if subdomains:
                sub = Rule(where, f"{entry} (SubDomains)", "subtree", entry, ["KeyFile"])
                sub.names = [f"KeyFile@{entry}"]      # d= is the listed domain, not the From domain
                source.keys[f"KeyFile@{entry}"] = dataclasses.replace(source.keys["KeyFile"], domain=entry)
                source.rules.append(sub)
    return source


# --- what OpenDKIM does -----------------------------------------------------------------

def _parents(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


def opendkim_rules(source: Source, domain: str) -> list[Rule]:
    """The rules OpenDKIM applies to mail From some ordinary user at `domain`: per-address rules
    never do. refile: every pattern in file order; file: (and the Domain list) user@host, host,
    then user@.parent and .parent from the nearest parent, user@*, * (opendkim.conf(5)); only
    the first line of a key counts. The first match, or all with MultipleSignatures."""
    address = f"{PROBE_LABEL}@{domain}"
    if source.mode == "refile":
        hits = [r for r in source.rules if r.kind != "address" and r.regex is not None and r.regex.fullmatch(address)]
    else:
        def first(kind: str, dom: str | None) -> list[Rule]:
            found = [r for r in source.rules if r.kind == kind and r.domain == dom]
            return found[:1]
        hits = first("exact", domain)
        for parent in _parents(domain):
            hits += first("subtree", parent)
        hits += first("wild", None)
    return hits if source.multiple else hits[:1]


@dataclasses.dataclass(frozen=True)
class Signature:
    domain: str
    selector: str
    path: str

    def __str__(self) -> str:
        return f"d={self.domain} s={self.selector}"


def signatures(source: Source, rules: list[Rule], domain: str, judged: Rule | None = None
               ) -> tuple[list[Signature], str]:
    """The signatures `rules` make for mail From `domain`, or ([], why they cannot be known);
    the reason names the rule at fault unless it is `judged`."""
    out: list[Signature] = []
    for rule in rules:
        at = "" if rule is judged else f"{rule.describe()} also applies: "
        if rule.kind == "wild":
            return [], f"{rule.describe()} applies to {domain} too ({rule.reason})"
        for name in rule.names:
            name = domain if name == "%" else name
            ref = source.keys.get(name)
            if ref is None:
                return [], f"{at}no KeyTable entry {name!r} (OpenDKIM fails such mail)"
            if isinstance(ref, str):
                return [], f"{at}{ref}"
            sig = Signature(domain if ref.domain == "%" else ref.domain, ref.selector, ref.path)
            if sig not in out:
                out.append(sig)
    return out, ""


# --- the plan ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Copy:
    source: str
    domain: str
    selector: str
    target: str
    exists: bool         # an identical key is already there


@dataclasses.dataclass
class ImportPlan:
    table: dict[str, list[str]]
    copies: list[Copy]
    skipped: list[str]
    notes: list[str]
    unreadable: bool = False

    def toml(self) -> str:
        """The `dkim_sign_keys` line to paste into owlery.toml."""
        import json
        items = ", ".join(f"{json.dumps(d)} = [{', '.join(json.dumps(s) for s in sel)}]"
                          for d, sel in sorted(self.table.items()))
        return f"dkim_sign_keys = {{ {items} }}"


KeyCheck = Callable[[Signature, str], bytes]     # (signature, target) -> key bytes, or raise


def plan(source: Source, directory: str, check_key: KeyCheck) -> ImportPlan:
    """Which rules Owlery can take over, the keys to copy to `directory`, and why the rest cannot.

    `check_key(sig, target)` reads and validates the key (KeyRefused, OpenDkimUnreadable) and says
    whether `target` already holds it. A rule is taken over when, for the From domains it
    concerns, Owlery's nearest-parent rule over the table built from all exact rules gives the
    same d=/s=/key as OpenDKIM."""
    result = ImportPlan({}, [], list(source.problems), list(source.notes))
    skipped: dict[int, str] = {}      # id(rule) -> why

    def skip(rule: Rule, reason: str) -> None:
        skipped.setdefault(id(rule), f"{rule.describe()}: {reason}")

    checked: dict[tuple[Signature, str], str] = {}
    copies: dict[Signature, Copy] = {}       # keys that passed, copied once their domain is in the table

    def key_problem(sig: Signature) -> str:
        target = dkimkeys.key_path(directory, sig.domain, sig.selector)
        if (sig, target) not in checked:
            try:
                existing = check_key(sig, target)
                checked[(sig, target)] = ""
                copies[sig] = Copy(sig.path, sig.domain, sig.selector, target, bool(existing))
            except KeyRefused as e:
                checked[(sig, target)] = str(e)
            except OpenDkimUnreadable as e:
                result.unreadable = True
                checked[(sig, target)] = str(e)
        return checked[(sig, target)]

    for rule in source.rules:
        if rule.kind in ("address", "wild"):
            skip(rule, rule.reason)

    warned: set[str] = set()

    def many(what: str, applied: list[Rule]) -> None:
        # opendkim 2.11.0, refile: and MultipleSignatures: of three matching lines it signs with
        # the first and the last only (seen in test_dkim_import's end-to-end run); its manual
        # says every match. Owlery follows the manual; say so where the two part.
        if source.mode == "refile" and len(applied) >= 3 and what not in warned:
            warned.add(what)
            result.notes.append(f"{len(applied)} lines of {applied[0].where.rsplit(':', 1)[0]} apply to {what}: "
                                "opendkim 2.11 signs with only some of them (of three, it leaves out the second), "
                                "Owlery with every one: publish each selector's key")

    # 1. The table: each exact rule whose signatures all have d= the From domain itself.
    expected: dict[int, tuple[str, list[Signature]]] = {}
    seen: set[str] = set()
    for rule in source.rules:
        if rule.kind != "exact" or rule.domain is None:
            continue
        if rule.domain in seen and source.mode != "refile":
            result.notes.append(f"{rule.describe()}: {rule.domain} given again; OpenDKIM uses its first line only")
            continue
        seen.add(rule.domain)
        sigs, why = signatures(source, opendkim_rules(source, rule.domain), rule.domain, rule)
        if why:
            skip(rule, why)
            continue
        if not _among(rule, opendkim_rules(source, rule.domain)):
            result.notes.append(f"{rule.describe()}: never used for {rule.domain}: an earlier rule matches first")
            continue
        expected[id(rule)] = (rule.domain, sigs)
        many(rule.domain, opendkim_rules(source, rule.domain))
        if rule.domain in result.table or any(s.domain != rule.domain for s in sigs):
            continue             # d= a parent (or a third party): checked against the table below
        problem = _selector_clash(sigs) or next((p for p in map(key_problem, sigs) if p), "")
        if problem:
            skip(rule, problem)
            continue
        result.table[rule.domain] = [s.selector for s in sigs]
        result.copies += [copies[s] for s in sigs]

    owl_keys = {(s.domain, s.selector): s for _, sigs in expected.values() for s in sigs
                if s.domain in result.table and s.selector in result.table[s.domain]}

    def owlery(domain: str) -> list[Signature]:
        for d in [domain, *_parents(domain)]:
            if d in result.table:
                return [owl_keys[(d, s)] for s in result.table[d]]
        return []

    # 2. Every rule: does Owlery sign the From domains it concerns as OpenDKIM does?
    for rule in source.rules:
        if id(rule) in skipped or rule.kind not in ("exact", "subtree") or rule.domain is None:
            continue
        if rule.kind == "exact":
            if id(rule) not in expected:
                continue
            domain, want = expected[id(rule)]
        else:
            domain = f"{PROBE_LABEL}.{rule.domain}"
            applied = opendkim_rules(source, domain)
            if not _among(rule, applied):
                result.notes.append(f"{rule.describe()}: never used: an earlier rule matches first")
                continue
            want, why = signatures(source, applied, domain, rule)
            many(f"subdomains of {rule.domain}", applied)
            if why:
                skip(rule, why)
                continue
        got = owlery(domain)
        if set(got) == set(want):
            continue
        skip(rule, _difference(domain, rule, want, got, result.table))

    # 3. Owlery signs subdomains of a listed domain with its key; say where OpenDKIM did not.
    for domain in sorted(result.table):
        probe = f"{PROBE_LABEL}.{domain}"
        if not opendkim_rules(source, probe):
            result.notes.append(f"Owlery also signs mail From subdomains of {domain} (d={domain}), "
                                "which OpenDKIM left unsigned")
    result.skipped += [skipped[id(r)] for r in source.rules if id(r) in skipped]
    for rule in source.rules:
        if rule.signer and id(rule) not in skipped:
            result.notes.append(f"{rule.describe()}: the signer {rule.signer!r} (i=) is not carried over: "
                                "Owlery's signatures have no i= (it means @d=)")
    return result


def _among(rule: Rule, rules: list[Rule]) -> bool:
    return any(r is rule for r in rules)


def _selector_clash(sigs: list[Signature]) -> str:
    by_selector: dict[tuple[str, str], str] = {}
    for s in sigs:
        other = by_selector.setdefault((s.domain, s.selector), s.path)
        if other != s.path:
            return f"two key files for d={s.domain} s={s.selector} ({other}, {s.path})"
    return ""


def _difference(domain: str, rule: Rule, want: list[Signature], got: list[Signature],
                table: dict[str, list[str]]) -> str:
    apex = rule.domain or domain
    strangers = [s for s in want if s.domain != domain and s.domain not in _parents(domain)]
    if strangers:
        return (f"signs with {', '.join(map(str, strangers))}, not the From domain or a parent of it "
                "(a third-party signature): Owlery signs with the From domain or its nearest listed parent")
    if rule.kind == "subtree" and any(s.domain == domain for s in want):
        return "d= is each subdomain's own name (a % macro): Owlery would need every subdomain listed"
    if rule.kind == "subtree" and not got and all(s.domain == apex for s in want):
        return (f"Owlery signs subdomains with the keys of their nearest listed parent, and {apex} itself "
                f"is not signed by OpenDKIM: listing it would sign {apex} too")
    said = ", ".join(map(str, got)) or "nothing"
    return (f"OpenDKIM signs {('subdomains of ' + apex) if rule.kind == 'subtree' else domain} with "
            f"{', '.join(map(str, want)) or 'nothing'}; Owlery's nearest-parent rule would sign with {said}")


# --- key files --------------------------------------------------------------------------

def read_key(path: str) -> bytes:
    """A key file's bytes: a regular file, not through a symlink (KeyRefused), at most 64 KiB."""
    try:
        st = os.lstat(path)
    except OSError as e:
        raise OpenDkimUnreadable(f"{path}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise KeyRefused(f"{path} is a symlink: name the key file itself")
    if not stat.S_ISREG(st.st_mode):
        raise KeyRefused(f"{path} is not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise OpenDkimUnreadable(f"{path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise KeyRefused(f"{path} is not a regular file")
        data = f.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise KeyRefused(f"{path}: larger than {MAX_KEY_BYTES} bytes: not a DKIM key")
    return data


def validate_key(data: bytes, path: str, sig: Signature, min_bits: int) -> dkimkeys.SigningKey:
    """The key as the milter will load it (dkimkeys.load_key), from memory: the bytes go to an
    anonymous file (memfd, mode 0600), so nothing is written and the file judged is the one read."""
    fd = os.memfd_create("owlery-dkim-import", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.fchmod(fd, 0o600)
        label = f"/proc/self/fd/{fd}"
        try:
            return dkimkeys.load_key(label, sig.domain, sig.selector, min_bits,
                                     owner=dkimkeys.KeyOwner(os.geteuid(), os.getegid()))
        except ValueError as e:
            why = str(e).replace(label, path)
            raise KeyRefused(why + (" (dkim_min_key_bits)" if "required" in why else "")) from None
    finally:
        os.close(fd)


def key_checker(min_bits: int) -> KeyCheck:
    """check_key for `plan`: the file system's keys, validated; True-ish bytes when the target
    already holds the same key, b"" when the target is free; KeyRefused when it holds another."""
    def check(sig: Signature, target: str) -> bytes:
        data = read_key(sig.path)
        validate_key(data, sig.path, sig, min_bits)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return b""
        except OSError as e:
            raise OpenDkimUnreadable(f"{target}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyRefused(f"{target} exists and is not a regular file: not replaced")
        try:
            existing = read_key(target)
        except KeyRefused as e:
            raise KeyRefused(f"{e}: not replaced") from None
        if existing != data:
            raise KeyRefused(f"{target} exists with a different key: not replaced (move it away, or pick "
                             "another directory with --directory)")
        return existing
    return check


def apply(result: ImportPlan, directory: str, ids: tuple[int, int] | None, owner: dkimkeys.KeyOwner,
          min_bits: int) -> list[str]:
    """Copy the planned keys (mode 0600, owned by `ids` as genkey gives them; never over another
    file: written aside, then linked into place). Returns what was done, one line each."""
    done = []
    todo = [c for c in result.copies if not c.exists]
    if todo:
        dkimkeys._make_key_directory(directory, ids)
    for c in todo:
        data = read_key(c.source)
        tmp = f"{c.target}.import{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)              # whatever the umask
                if ids is not None:
                    os.fchown(f.fileno(), *ids)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # As the milter will read it, owner and mode included.
            dkimkeys.load_key(tmp, c.domain, c.selector, min_bits, owner=owner)
            os.link(tmp, c.target)                          # fails, rather than replaces, if it appeared
        finally:
            os.unlink(tmp)
        done.append(f"{c.source} -> {c.target}")
    if todo:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return done
