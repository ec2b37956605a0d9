"""Follow-ups of the code review (../shared/research/code-review.md) still open in round s21.

- The policy daemon's adapter reads the checks' directory through a public property of the
  context, and the context closes only the directory it opened (2.7: service.py reached
  into `ctx._directory` to keep an injected directory open).
- The Postfix macros the milter reads are listed once (milters/macros.py): the adapter's
  negotiated lists, the session's names and `owlery postfix`'s milter_*_macros derive from
  it (2.2: three lists that had to agree), and the steps it does not negotiate are carried
  by Postfix's defaults (checked against `postconf -d`).
- Exit statuses are sysexits.h's named constants (os.EX_*), never bare numbers (2.3 #9).
- The redirect limit counts the whole chain of scripts, as Pigeonhole's multiscript does
  (one result): the script that goes past sieve_max_redirects fails (RFC 5228 2.10.6), its
  actions cancelled and the message kept; the planner dropped the copies past the limit
  silently, and a redirect without :copy then lost the message (2.3 #12). Checked against
  sieve-test (-s before-script, -o plugin/sieve_max_redirects) run as nobody.
"""

from __future__ import annotations

import ast
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# --- the policy context's directory ---------------------------------------------------------

class _Directory:
    def __init__(self):
        self.closed = 0

    def close(self):
        self.closed += 1


def _context(**kw):
    from twisted.internet import task

    from owlery.settings import Settings
    from policyd.checks import CheckContext, InlineExecutor
    return CheckContext(Settings(), task.Clock(), InlineExecutor(), **kw)


def test_the_context_says_which_directory_it_holds_without_opening_one(monkeypatch):
    import owlery.directory

    def must_not_open(*a, **kw):
        raise AssertionError("the metrics sampler opened a directory")
    monkeypatch.setattr(owlery.directory, "open_directory", must_not_open)
    assert _context().directory_if_open is None
    injected = _Directory()
    assert _context(directory=injected).directory_if_open is injected


def test_the_context_closes_only_the_directory_it_opened(monkeypatch):
    import owlery.directory
    injected = _Directory()
    ctx = _context(directory=injected)
    ctx.close()
    assert injected.closed == 0, "an injected directory is its owner's to close"
    opened = _Directory()
    monkeypatch.setattr(owlery.directory, "open_directory", lambda *a, **kw: opened)
    ctx = _context()
    assert ctx.directory is opened
    ctx.close()
    assert opened.closed == 1 and ctx.directory_if_open is None


def test_no_module_reads_another_objects_private_directory():
    reads = []
    for package in ("policyd", "socketmap", "owlery"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and node.attr == "_directory"
                        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                    reads.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert reads == []


# --- the milter's macros ----------------------------------------------------------------------

MACRO = re.compile(r"^(\{[a-z_]+\}|[a-z_])$")


def _macro_lists(tree: ast.AST, skip: set[int]) -> list[int]:
    """Lines of tuples/lists of two or more macro names, or of one space-joined string of them."""
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) and MACRO.match(e.value) for e in node.elts) \
                and any(e.value.startswith("{") for e in node.elts):
            found.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value.strip():
            words = node.value.split()
            if all(MACRO.match(w) for w in words) and sum(w.startswith("{") for w in words) >= 2:
                found.append(node.lineno)
    return found


def test_the_macro_names_are_listed_once():
    """Only milters/macros.py lists them; postfix.py may hold Postfix's own defaults."""
    lists = []
    for package in ("milters", "owlery"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "milters" / "macros.py":
                continue
            tree = ast.parse(path.read_text())
            skip = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "POSTFIX_DEFAULT_MILTER_MACROS"
                                                        for t in node.targets):
                    skip |= {id(n) for n in ast.walk(node.value)}
            lists += [f"{path.relative_to(ROOT)}:{line}" for line in _macro_lists(tree, skip)]
    assert lists == []


def _postconf_defaults() -> dict[str, list[str]]:
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    assert os.path.exists(postconf), "postconf missing: scripts/install-deps --test installs Postfix"
    out = subprocess.run([postconf, "-d"], capture_output=True, text=True, timeout=30, check=True).stdout
    return {m.group(1): m.group(2).split() for m in re.finditer(r"^milter_(\w+)_macros = ?(.*)$", out, re.M)}


def test_every_macro_the_milter_reads_reaches_it():
    from owlery.app.postfix import POSTFIX_DEFAULT_MILTER_MACROS, milter_macro_lines
    from milters import macros, session
    defaults = _postconf_defaults()
    assert {step: list(names) for step, names in POSTFIX_DEFAULT_MILTER_MACROS.items()} == \
        {step: defaults[step] for step in POSTFIX_DEFAULT_MILTER_MACROS}
    # the steps the milter asks nothing for: Postfix's own lists carry what it reads there
    for step, names in macros.FROM_POSTFIX_DEFAULTS.items():
        assert set(names) <= set(defaults[step]), step
    # the negotiated steps: main.cf's list (the fallback) holds them too, after Postfix's default
    lines = dict(milter_macro_lines())
    for step, names in macros.NEGOTIATED.items():
        assert 0 < len(names) <= 5, "libmilter's setsymlist takes at most 5 names a step"
        written = lines[f"milter_{step}_macros"].split()
        assert written[:len(defaults[step])] == defaults[step] and set(names) <= set(written), step
    assert set(session.MACROS) == {n for names in (*macros.NEGOTIATED.values(),
                                                   *macros.FROM_POSTFIX_DEFAULTS.values()) for n in names}


# --- exit statuses -----------------------------------------------------------------------------

SYSEXITS = {os.EX_USAGE, os.EX_DATAERR, os.EX_NOINPUT, os.EX_NOUSER, os.EX_NOHOST, os.EX_UNAVAILABLE,
            os.EX_SOFTWARE, os.EX_OSERR, os.EX_OSFILE, os.EX_CANTCREAT, os.EX_IOERR, os.EX_TEMPFAIL,
            os.EX_PROTOCOL, os.EX_NOPERM, os.EX_CONFIG}


def _is_status(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value in SYSEXITS


def _bare_statuses(tree: ast.AST) -> list[int]:
    """Lines where a sysexits number is returned, exited with, named or compared as a status."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None and _is_status(node.value):
            found.append(node.lineno)
        elif isinstance(node, ast.Call) and node.args and _is_status(node.args[0]):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("exit", "_exit", "SystemExit", "_fail"):
                found.append(node.lineno)
        elif isinstance(node, ast.Assign):
            names = [t for target in node.targets
                     for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            if any(getattr(t, "id", "").startswith(("EX_", "EXIT_")) for t in names) and any(map(_is_status, values)):
                found.append(node.lineno)
        elif isinstance(node, ast.Compare):
            left = ast.unparse(node.left)
            if re.search(r"returncode|status|exit", left) and any(
                    _is_status(e) for c in node.comparators
                    for e in (c.elts if isinstance(c, (ast.Tuple, ast.List, ast.Set)) else [c])):
                found.append(node.lineno)
    return found


def test_exit_statuses_are_named():
    bare = []
    for package in ("owlery", "policyd", "milters", "sieve", "socketmap"):
        for path in sorted((ROOT / package).rglob("*.py")):
            bare += [f"{path.relative_to(ROOT)}:{line}" for line in _bare_statuses(ast.parse(path.read_text()))]
    assert bare == [], "use os.EX_* (sysexits.h), as every other exit status does"


# --- the redirect limit over a chain of scripts ------------------------------------------------

MSG = b"From: a@example.com\nTo: u@example.org\nSubject: t\nMessage-ID: <s21@example.com>\n\nbody\n"
SCRIPTS = {
    "one": 'redirect "m1@example.net";\n',
    "two": 'require "copy";\nredirect :copy "b1@example.net";\nredirect :copy "b2@example.net";\n',
    "three": 'require "fileinto";\nfileinto "Folder";\nredirect "r1@example.net";\n'
             'redirect "r2@example.net";\nredirect "r3@example.net";\n',
}
# (before script or None, user script): sieve_max_redirects = 2
CHAINS = [("two", "one"),       # the user's script goes past the limit: it fails, the message is kept
          ("two", "two"),       # the same addresses again: no new redirect (RFC 5228 2.10.3)
          (None, "three")]      # one script past it: nothing of it happens (its fileinto neither)


def _pigeonhole(home: str, before: str | None, user: str) -> tuple[list[str], bool]:
    """sieve-test's redirects and whether it kept the message (as nobody: it refuses root)."""
    argv = ["/usr/bin/sieve-test", "-o", "plugin/sieve_max_redirects=2"]
    if before:
        argv += ["-s", f"{home}/{before}.sieve"]
    argv += [f"{home}/{user}.sieve", f"{home}/msg.eml"]
    nobody = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=home,
                       env={"HOME": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                       user=nobody.pw_uid if nobody else None, group=nobody.pw_gid if nobody else None,
                       extra_groups=[] if nobody else None)
    assert "final result:" in p.stderr, (p.stdout, p.stderr)
    kept = ("resolved with successful implicit keep" in p.stderr
            or "* keep" in p.stdout.rpartition("Implicit keep:")[2])
    return re.findall(r"redirect message to: <([^>]+)>", p.stdout), kept


def _owlery(home: str, before: str | None, user: str) -> tuple[list[str], bool]:
    from owlery.settings import Settings
    from owlery.state.memory_store import MemoryStore
    from sieve.delivery.executor import DeliveryExecutor
    from sieve.delivery.users import MailUser

    class Submitter:
        sent: list[str] = []

        def send(self, env_from, rcpts, message):
            self.sent += rcpts
    sub = Submitter()
    settings = Settings().replace(delivery_use_directory=False, sieve_max_redirects=2,
                                  delivery_sieve_before=[f"{home}/{before}.sieve"] if before else [])
    maildir = f"{home}/Maildir-{before}-{user}"
    ex = DeliveryExecutor(settings, submitter=sub, state=MemoryStore(), program="test")
    try:
        outcome = ex.deliver(MSG, "a@example.com", "u@example.org", MailUser("u@example.org", maildir,
                                                                          f"{home}/{user}.sieve"))
    finally:
        ex.close()
    assert outcome.ok, outcome
    kept = any(os.listdir(f"{maildir}/{sub_}") for sub_ in ("new", "cur") if os.path.isdir(f"{maildir}/{sub_}"))
    assert not os.path.isdir(f"{maildir}/.Folder"), "the failing script's fileinto happened"
    return sub.sent, kept


def test_the_redirect_limit_counts_the_chain_as_sieve_test_does():
    assert os.path.exists("/usr/bin/sieve-test"), "sieve-test missing: scripts/install-deps --test installs it"
    home = tempfile.mkdtemp(prefix="owlery-s21-redirects-")
    try:
        for name, src in SCRIPTS.items():
            Path(home, f"{name}.sieve").write_text(src)
        Path(home, "msg.eml").write_bytes(MSG)
        os.chmod(home, 0o777)           # sieve-test (as nobody) writes its compiled binaries beside
        got = {chain: (_owlery(home, *chain), _pigeonhole(home, *chain)) for chain in CHAINS}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert got[("two", "one")][1] == (["b1@example.net", "b2@example.net"], True)     # what sieve-test does
    differ = {chain: f"owlery {ours}, sieve-test {theirs}" for chain, (ours, theirs) in got.items() if ours != theirs}
    assert differ == {}


def test_the_chain_limit_counts_distinct_addresses():
    from sieve import actions as act
    from sieve.delivery.planner import redirect_limit_error

    def r(address):
        return act.Redirect(address=address, envelope_from=None)
    assert redirect_limit_error([r("a@x.test"), r("b@x.test")], [r("a@X.TEST")], 2) is None
    assert redirect_limit_error([r("a@x.test"), r("b@x.test")], [r("A@x.test")], 2) is not None   # local part: exact
    assert "exceeds policy limit (3 > 2)" in redirect_limit_error([r("a@x.test")], [r("b@x.test"), r("c@x.test")], 2)
    assert redirect_limit_error([], [r(f"{n}@x.test") for n in range(4)], 4) is None


def test_the_planner_keeps_a_copy_past_the_limit_instead_of_dropping_it():
    """A plan built past the limit (not by the executor's chain) still loses nothing."""
    from sieve import actions as act
    from sieve.delivery import planner
    rules = planner.Rules("INBOX", True, False, 1, 5, 1, "recipient", {})
    plan = planner.Plan(actions=[act.Redirect(address="c@other.test", envelope_from=None),
                                 act.Redirect(address="d@other.test", envelope_from=None)],
                        keep=False, message=MSG)
    seen = []

    def carry_out(step):
        seen.append(step)
        if isinstance(step, planner.StoreStep):
            return "/m/new/1"
        return "sent" if isinstance(step, planner.RedirectStep) else None
    verdict = planner.drive(planner.steps(planner.Delivery(plan, MSG, "a@example.com", "u@example.org",
                                                           "u@example.org"), rules), carry_out)
    assert [s.address for s in seen if isinstance(s, planner.RedirectStep)] == ["c@other.test"]
    assert [s.folder for s in seen if isinstance(s, planner.StoreStep)] == ["INBOX"]
    assert any(isinstance(s, planner.Note) and "sieve_max_redirects" in s.text for s in seen)
    assert isinstance(verdict, planner.Delivered)
