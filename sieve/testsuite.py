"""The vnd.dovecot.testsuite harness: runs .svtest files (Pigeonhole's test language, see
../shared/conformance/sieve/TESTSUITE-SPEC.md) against this engine, with an in-memory
mail store, SMTP outbox, error log and configuration overrides.

`run_file(path)` returns a FileReport with per-block PASS/FAIL/SKIP; `owlery sieve
testsuite` prints them. Talks to: sieve.api/validator/interpreter only.
Tests: tests/sieve/test_conformance.py (the Pigeonhole corpus), tests/sieve/test_svtest.py,
tests/sieve/test_testsuite_harness_s12.py (the commands and settings against Pigeonhole's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import os
import re
import time

from owlery.settings import Settings, SettingsError
from sieve.actions import DuplicateMark, FileInto, Keep, Notify, Redirect, Reject, Report, SendMessage, Vacation
from sieve import extensions
from sieve.api import BaseHost, Envelope
from sieve.errors import SieveCompileError, SieveError, SieveResourceLimit, SieveRuntimeError, TestsuiteFailure
from sieve.interpreter import ReturnScript, Runtime, StopScript, run_toplevel
from sieve.message import FullMessage, Message
from sieve.pigeonhole_settings import (BOOL_SETTINGS, CONFIG_MAP, DURATION_SETTINGS, EDITHEADER_PREFIX, ENV_PREFIX,
                                      INT_SETTINGS, INVERTED, LIST_KEYS, VALUE_MAPS, disabled_extensions,
                                      dovecot_bool, dovecot_duration)
from sieve.result import ResultBuilder

# Pigeonhole's testsuite loads the extprograms plugin with its extensions enabled: the corpus
# requires them before test_config_set gives them their directories
TESTSUITE_EXT = ("vnd.dovecot.testsuite", "vnd.dovecot.pipe", "vnd.dovecot.filter", "vnd.dovecot.execute")

DEFAULT_MESSAGE = b"From: sender@example.com\r\nTo: recipient@example.org\r\nSubject: Frop!\r\n\r\nFriep!\r\n"

# Extensions only Dovecot has: files needing them are skipped.
DOVECOT_ONLY: dict[str, str] = {}


class SkipBlock(SieveError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AbortFile(SieveError):
    pass


@dataclasses.dataclass
class BlockResult:
    index: int
    name: str
    status: str  # "PASS" | "FAIL" | "SKIP"
    reason: str = ""


@dataclasses.dataclass
class FileReport:
    path: str
    blocks: list[BlockResult]
    case_error: str | None = None
    skipped_reason: str | None = None
    output: list[str] = dataclasses.field(default_factory=list)
    # test_error :count checks: (how many, how many Pigeonhole's exact count would also pass)
    count_checks: tuple[int, int] = (0, 0)

    def count(self, status: str) -> int:
        return sum(1 for b in self.blocks if b.status == status)

    @property
    def passed(self) -> bool:
        return self.count("FAIL") == 0 and self.case_error is None


def _cpu_time() -> float:
    """The process's CPU time in seconds (a function, so tests can give their own clock)."""
    return time.process_time()


# Engine settings Pigeonhole honours that change nothing a test can see in its testsuite:
# tracing and the user log write files; the redirect duplicate period and the resource usage
# timeout need the duplicate and resource databases, which the testsuite has none of.
_NO_EFFECT_IN_HARNESS = {
    "sieve_trace_dir",
    "sieve_trace_level",
    "sieve_trace_debug",
    "sieve_trace_addresses",
    "sieve_user_log",
    "sieve_user_log_path",
    "sieve_redirect_duplicate_period",
    "sieve_resource_usage_timeout",
}
class SuiteHost(BaseHost):
    def __init__(self, suite: "Suite"):
        self.suite = suite

    def mailbox_exists(self, mailbox: str) -> bool:
        return self.suite.norm_box(mailbox) in self.suite.store

    def special_use_exists(self, mailbox, flag):
        return False

    def load_script(self, name, location):
        return self.suite.load_include(name, location)

    def metadata(self, mailbox, annotation):
        box = None if mailbox is None else self.suite.norm_box(mailbox)
        return self.suite.metadata.get((box, annotation.lower()))

    def list_contains(self, list_name: str, value: str) -> bool | None:
        """extlists (RFC 6134): the lists the file configured (sieve_extlists_list), standing
        for the directory's lists of a delivery (sieve/delivery/extlists.py)."""
        members = self.suite.lists.get(list_name)
        if members is None:
            return None
        return value == "" or value in members or value.lower() in members

    def run_program(self, req):
        """extprograms: run the program for real, as this user with USER and HOME (as root: as
        nobody, since sieve.extprograms never runs a program as root)."""
        from sieve import extprograms

        uid = gid = None
        home = os.path.expanduser("~")
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("nobody")
                uid, gid, home = pw.pw_uid, pw.pw_gid, pw.pw_dir
            except KeyError:
                pass
        req = extprograms.with_identity(req, user=self.suite.user, home=home, uid=uid, gid=gid)
        return extprograms.run_program(req)


def _default_settings() -> Settings:
    # Pigeonhole's testsuite policy: 32 actions, 4 redirects; postmaster@example.com; every
    # extension enabled (vnd.dovecot.report too, which Owlery's default, as Pigeonhole's, leaves off)
    return Settings().replace(
        sieve_postmaster_address="postmaster@example.com",
        sieve_vacation_min_period="0",
        sieve_max_cpu_steps=5_000_000,
        sieve_extensions_disabled=[],
    )


class Suite:
    """Harness state for one .svtest file (TESTSUITE-SPEC.md section 4)."""

    def __init__(self, path: str, base_settings: Settings | None = None, echo=None):
        self.path = os.path.abspath(path)
        self.script_dir = os.path.dirname(self.path)
        self.base_settings = base_settings or _default_settings()
        self.settings = self.base_settings
        self.overrides: dict[str, object] = {}
        self.pending: dict[str, str] = {}
        self.store: dict[str, list[tuple[bytes, tuple[str, ...]]]] = {}
        self.outbox: list[tuple[str, str, bytes]] = []
        self.errors: list[str] = []
        self.slot = None
        self.binaries: dict[str, object] = {}
        self.metadata: dict = {}
        self.blocks: list[BlockResult] = []
        self.current: BlockResult | None = None
        self.user = _os_user()
        self.executed = 0  # actions of the current result already executed
        self.keep_executed = False
        self.result_msg: Message | None = None
        self.echo = echo or (lambda line: None)
        self.host = SuiteHost(self)
        self.now = dt.datetime.now(dt.timezone.utc)
        self.main_rt: Runtime | None = None
        self.skip_unknown_config: str | None = None
        self.lists: dict[str, frozenset[str]] = {}  # extlists: normalised name -> members
        self.count_checks = [0, 0]  # test_error :count checks, exact ones
        self.env_config: dict[str, str] = {}  # vnd.dovecot.config.* environment items
        self.cpu_time_limit: float | None = None  # sieve_max_cpu_time, seconds (None: no limit)

    # --- helpers ---
    def norm_box(self, name: str) -> str:
        if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] == "."):
            return "INBOX" + name[5:]
        return name

    def loader(self, name: str, location: str):
        return self.load_include(name, location)

    def load_include(self, name: str, location: str):
        sub = "included-global" if location == "global" else "included"
        p = os.path.join(self.script_dir, sub, name + ".sieve")
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            return None

    def compile(self, path: str, name: str | None = None):
        with open(path, "rb") as f:
            src = f.read()
        base = os.path.basename(path)
        for ext in (".sieve", ".svtest"):
            if base.endswith(ext):
                base = base[: -len(ext)]
        from sieve.validator import compile_source

        return compile_source(
            src,
            name=name or base,
            settings=self.settings,
            extra_extensions=TESTSUITE_EXT,
            loader=self.loader,
            path=path,
        )

    def envelope_from_message(self, msg: Message) -> Envelope:
        from sieve.address import AddressError, parse_address_list

        def first(names, default):
            for h in names:
                for v in msg.header_raw(h):
                    try:
                        al = parse_address_list(v)
                    except AddressError:
                        continue
                    if al:
                        return al[0].all
            return default

        rcpt = first(("envelope-to", "to"), "recipient@example.com")
        sender = first(("return-path", "sender", "from"), "sender@example.com")
        return Envelope(mail_from=sender, rcpt_to=rcpt, orig_rcpt=rcpt, auth_user=self.user)

    def fail(self, reason: str):
        raise TestsuiteFailure(reason)

    def new_result(self) -> ResultBuilder:
        self.executed = 0
        self.keep_executed = False
        return ResultBuilder(self.settings, self.settings.sieve_default_mailbox)

    # --- commands ---
    def cmd_test(self, rt, node):
        name = rt.s(node.pos[0])
        br = BlockResult(len(self.blocks) + 1, name, "PASS")
        self.blocks.append(br)
        self.current = br
        try:
            rt.run_block(node.block)
            if br.status == "FAIL":  # a sub-script's test_fail failed it
                self.echo(f"{br.index:2d}: Test '{name}' FAILED: {br.reason}")
            else:
                self.echo(f"{br.index:2d}: Test '{name}' SUCCEEDED")
        except TestsuiteFailure as f:
            br.status = "FAIL"
            br.reason = f.reason
            self.echo(f"{br.index:2d}: Test '{name}' FAILED: {f.reason}")
        except SkipBlock as s:
            br.status = "SKIP"
            br.reason = s.reason
            self.echo(f"{br.index:2d}: Test '{name}' SKIPPED: {s.reason}")
        except StopScript:
            br.status = "PASS"
            raise
        except SieveError as e:
            br.status = "FAIL"
            br.reason = f"runtime error: {e}"
            self.echo(f"{br.index:2d}: Test '{name}' FAILED: {br.reason}")
            raise AbortFile(str(e)) from None
        finally:
            self.current = None

    def cmd_fail(self, rt, node):
        reason = rt.s(node.pos[0])
        if rt is not self.main_rt:
            # inside a sub-script run by test_script_run
            raise TestsuiteFailure(reason)
        raise TestsuiteFailure(reason)

    def cmd_set(self, rt, node):
        # the object is the argument's text as written (Pigeonhole resolves it at compile time)
        obj = node.pos[0].items[0].value.lower()
        value = rt.s(node.pos[1])
        if obj == "message":
            raw = value.encode("utf-8", "surrogateescape")
            rt.msg = Message(raw, self.settings.sieve_max_message_scan)
            rt.envelope = self.envelope_from_message(rt.msg)
            rt.ext.pop("flags_loaded", None)
            rt.ext.pop("duplicate_checked", None)
            return
        env = rt.envelope
        v = value.strip()
        if obj == "envelope.from":
            rt.envelope = dataclasses.replace(env, mail_from="" if v in ("", "<>") else v)
        elif obj == "envelope.to":
            rt.envelope = dataclasses.replace(env, rcpt_to=v, orig_rcpt=v)
        elif obj == "envelope.orig_to":
            rt.envelope = dataclasses.replace(env, orig_rcpt=v)
        elif obj == "envelope.auth":
            rt.envelope = dataclasses.replace(env, auth_user=value)
        # a bare "envelope" compiles in Pigeonhole and setting it does nothing

    def _select(self, rt, node, as_test: bool) -> bool:
        idx = node.pos[0].value
        if node.tags.get("source:tag") == "folder":
            box = rt.s(node.tags["source"])
            from sieve.extensions.fileinto import store_name_error

            if store_name_error(box):
                self.fail(f"invalid mailbox name '{box}'")
            msgs = self.store.get(self.norm_box(box))
            if msgs is None or idx >= len(msgs):
                if as_test:
                    if msgs is None:
                        rt.msg = Message(DEFAULT_MESSAGE)
                    return False
                self.fail(f"no message in folder '{box}' with index {idx}")
            raw, flags = msgs[idx]
            rt.msg = Message(raw, self.settings.sieve_max_message_scan)
            rt.envelope = self.envelope_from_message(rt.msg)
            rt.ext["stored_flags"] = flags
            # imap4flags' internal variable starts from the flags of the message being
            # filtered (Pigeonhole reads them from the mail): hasflag now sees the stored ones
            rt.ext["flags"] = flags
            rt.ext.pop("duplicate_checked", None)
            return True
        if idx >= len(self.outbox):
            if as_test:
                return False
            self.fail(f"no outgoing SMTP message with index {idx}")
        frm, to, raw = self.outbox[idx]
        rt.msg = Message(raw, self.settings.sieve_max_message_scan)
        rt.envelope = Envelope(mail_from=frm, rcpt_to=to, orig_rcpt=to, auth_user=self.user)
        rt.ext.pop("duplicate_checked", None)
        return True

    def cmd_message(self, rt, node):
        self._select(rt, node, False)

    def test_message(self, rt, node):
        return self._select(rt, node, True)

    def cmd_mailbox_create(self, rt, node):
        """Creates a mailbox in the simulated store. A name that is not UTF-8 is a runtime
        error (it aborts the file); a name the store refuses creates nothing, silently (as
        Pigeonhole, which ignores the store's answer); an existing mailbox stays as it is."""
        name = rt.s(node.pos[0])
        from sieve.extensions.fileinto import mailbox_name_error, store_name_error

        if name and mailbox_name_error(name):
            raise SieveRuntimeError(f"test_mailbox_create command: invalid mailbox '{name}' specified: invalid utf-8")
        if store_name_error(name):
            return
        self.store.setdefault(self.norm_box(name), [])

    def cmd_mailbox_delete(self, rt, node):
        """Deletes a mailbox of the simulated store, with its messages and metadata (its
        sub-mailboxes stay, as in Dovecot). Pigeonhole declares this command but its body
        is a FIXME that fails the test, so no reference test uses it; here it works, for
        self-authored tests. A name that is not UTF-8 aborts the file as with
        test_mailbox_create; INBOX, a name the store refuses, or a mailbox that does not exist
        fails the test."""
        name = rt.s(node.pos[0])
        from sieve.extensions.fileinto import mailbox_name_error, store_name_error

        if name and mailbox_name_error(name):
            raise SieveRuntimeError(f"test_mailbox_delete command: invalid mailbox '{name}' specified: invalid utf-8")
        key = self.norm_box(name)
        if store_name_error(name):
            self.fail(f"test_mailbox_delete: invalid mailbox name '{name}'")
        if key == "INBOX":
            self.fail("test_mailbox_delete: INBOX can't be deleted")
        if key not in self.store:
            self.fail(f"test_mailbox_delete: mailbox '{name}' doesn't exist")
        del self.store[key]
        for k in [k for k in self.metadata if k[0] is not None and self.norm_box(k[0]) == key]:
            del self.metadata[k]

    def cmd_message_print(self, rt, node):
        """Prints the current message between markers (a debugging aid, like Pigeonhole's)."""
        self.echo("--MESSAGE: ")
        self.echo(rt.msg.to_bytes().decode("utf-8", "replace"))
        self.echo("--MESSAGE--")

    def cmd_result_print(self, rt, node):
        """Prints the current result: one line per action, then the implicit keep."""
        self.echo("--")
        for i, a in enumerate(rt.result.actions, 1):
            self.echo(f"{i:2d}: {a.name}{_action_detail(a)}")
        self.echo(f"  implicit keep: {'yes' if rt.result.implicit_keep else 'cancelled'}")
        self.echo("--")

    def cmd_result_reset(self, rt, node):
        rt.result = self.new_result()
        self.outbox = []
        rt.ext.pop("flags", None)
        if "stored_flags" in rt.ext:
            rt.ext["flags"] = rt.ext["stored_flags"]

    def test_result_action(self, rt, node):
        names = [a.name for a in rt.result.actions if not isinstance(a, DuplicateMark) or True]
        if "index" in node.tags:
            n = node.tags["index"].value
            names = [names[n - 1]] if 1 <= n <= len(names) else []
        return rt.match(node, names, rt.sl(node.pos[0]))

    def _store(self, box: str, raw: bytes, flags, create: bool) -> bool:
        from sieve.extensions.fileinto import store_name_error

        err = store_name_error(box)
        if err:
            # the delivery store's rule (owlery.maildir); Pigeonhole's store fails the same way
            self.errors.append(f"failed to store into mailbox '{box}': {err}")
            return False
        key = self.norm_box(box)
        if key not in self.store:
            if create or key == "INBOX":
                self.store[key] = []
            else:
                self.errors.append(f"failed to store into mailbox '{box}': Mailbox doesn't exist: {box}")
                return False
        self.store[key].append((raw, tuple(flags) + _store_keywords(raw, flags)))
        return True

    def execute_result(self, rt, result: ResultBuilder, msg: Message) -> bool:
        ok = True
        raw = msg.to_bytes()
        actions = result.actions[self.executed :]
        self.executed = len(result.actions)
        failed_store = False
        pipe_failed = False  # a failed pipe keeps the message (Pigeonhole's failure keep)
        explicit_keep = False

        def message_of(a) -> bytes:
            # RFC 5293 7: the header as edited when the script asked for the action
            if isinstance(a.head, FullMessage):  # replace/enclose (RFC 5703) changed the body
                return bytes(a.head)
            return a.head + msg.raw[len(msg.raw) - msg.original_body_len :] if a.head is not None else msg.raw

        for a in actions:
            if isinstance(a, Keep):
                ok &= self._store(a.mailbox, message_of(a), a.flags, True)
                explicit_keep |= self.norm_box(a.mailbox) == self.norm_box(self.settings.sieve_default_mailbox)
            elif isinstance(a, FileInto):
                if not self._store(a.mailbox, message_of(a), a.flags, a.create):
                    ok = False
                    failed_store = True
                elif self.norm_box(a.mailbox) == self.norm_box(self.settings.sieve_default_mailbox):
                    explicit_keep = True
            elif isinstance(a, Redirect):
                # the envelope sender the engine chose (sieve_redirect_envelope_from)
                self.outbox.append((a.envelope_from, a.address, message_of(a)))
            elif a.name == "pipe":
                from sieve.extensions.extprograms import pipe_message

                piped, errors = pipe_message(self.settings, a, message_of(a), self.host.run_program)
                if not piped:
                    self.errors.extend(errors)
                    pipe_failed = True
                    ok &= a.try_
            elif isinstance(a, Reject):
                if a.mdn:
                    self.outbox.append(("", a.mdn_to, a.mdn))
            elif isinstance(a, Vacation):
                # the delivery's choice (vacation_envelope_from: <> or the user's address)
                from sieve.delivery.vacation import reply_envelope_from

                env_from = reply_envelope_from(
                    self.settings,
                    rt.envelope.rcpt_to,
                    recipient=rt.envelope.rcpt_to,
                    orig_recipient=rt.envelope.orig_rcpt,
                    message=msg.raw,
                )
                self.outbox.append((env_from, a.to, a.reply))
            elif isinstance(a, Notify):
                for r in a.recipients:
                    self.outbox.append((a.envelope_from, r, a.message))
            elif isinstance(a, (SendMessage, Report)):
                for r in getattr(a, "recipients", ()) or (getattr(a, "address", ""),):
                    self.outbox.append((a.envelope_from, r, a.message))
        if (result.implicit_keep and not explicit_keep or failed_store or pipe_failed) and not self.keep_executed:
            self.keep_executed = True
            # the fallback keep after a failed action stores the message as received:
            # editheader changes belong to the result that could not be carried out
            ok &= self._store(
                self.settings.sieve_default_mailbox, msg.raw if failed_store else raw, result.keep_flags, True
            )
        return ok

    def test_result_execute(self, rt, node):
        self.errors = []
        from sieve.extensions.imap4flags import final_flags

        final_flags(rt)
        msg = self.result_msg if self.result_msg is not None and rt.result is self._result_owner else rt.msg
        return self.execute_result(rt, rt.result, msg)

    _result_owner = None

    def test_script_compile(self, rt, node):
        self.errors = []
        path = os.path.join(self.script_dir, rt.s(node.pos[0]))
        try:
            self.slot = self.compile(path)
        except SieveCompileError as e:
            # Pigeonhole's testsuite error log holds the compiler's warnings too, in order
            self.errors = [d.message for d in e.diagnostics if d.severity in ("error", "warning")]
            return False
        except OSError as e:
            self.errors = [f"failed to open script: {e}"]
            return False
        return True

    def _run_sub(self, rt, script, result: ResultBuilder, context: dict | None = None) -> tuple[bool, Runtime]:
        sub = Runtime(
            script,
            b"",
            rt.envelope,
            host=self.host,
            settings=self.settings,
            environment=self.environment(),
            now=self.now,
            result=result,
            msg=Message(rt.msg.to_bytes(), self.settings.sieve_max_message_scan),
            context=context,
        )
        sub.testsuite = self
        self._limit_cpu_time(sub)
        if "flags" in rt.ext:
            sub.ext["flags"] = rt.ext["flags"]
        try:
            run_toplevel(sub)
        except TestsuiteFailure as f:
            # test_fail in a sub-script: Pigeonhole prints the failure and counts it, so the
            # open block fails (it still runs on; this run returns false)
            self.errors.append(f.reason)
            if self.current is not None and self.current.status == "PASS":
                self.current.status = "FAIL"
                self.current.reason = f"in a script run by the test: {f.reason}"
            return False, sub
        except SieveError as e:
            self.errors.append(getattr(e, "message", str(e)))
            return False, sub
        except RecursionError:
            self.errors.append("recursion too deep")
            return False, sub
        self.errors.extend(sub.errors)  # errors the run reported without failing
        return True, sub

    def _limit_cpu_time(self, sub: Runtime) -> None:
        """sieve_max_cpu_time: Pigeonhole stops a script that has used more CPU time than
        this ("execution exceeded CPU time limit"). The engine's own budget counts steps; for
        the scripts the harness runs after such a reload, each step also checks the CPU time
        the script has used. (The main test script keeps running: it started before.)"""
        limit = self.cpu_time_limit
        if not limit:
            return
        start = _cpu_time()
        charge = sub.step

        def step(n: int = 1) -> None:
            charge(n)
            if _cpu_time() - start > limit:
                raise SieveResourceLimit("execution exceeded CPU time limit")

        sub.step = step  # type: ignore[method-assign]

    def test_script_run(self, rt, node):
        self.errors = []
        if self.slot is None:
            return False
        if not node.tags.get("append_result"):
            rt.result = self.new_result()
        ok, sub = self._run_sub(rt, self.slot, rt.result)
        self.result_msg = sub.msg
        self._result_owner = rt.result
        if "imap4flags" in self.slot.requires:
            rt.ext["flags"] = sub.ext.get("flags", ())
        return ok

    def test_multiscript(self, rt, node):
        self.errors = []
        scripts = []
        for p in rt.sl(node.pos[0]):
            try:
                scripts.append(self.compile(os.path.join(self.script_dir, p)))
            except (SieveCompileError, OSError) as e:
                self.errors.append(str(e))
                return False
        result = ResultBuilder(self.settings, self.settings.sieve_default_mailbox)
        saved_exec = (self.executed, self.keep_executed)
        self.executed, self.keep_executed = 0, False
        msg = rt.msg
        ok = True
        context: dict = {}
        for i, s in enumerate(scripts):
            holder = _MsgHolder(msg)
            good, sub = self._run_sub(holder, s, result, context)
            context = extensions.message_context(sub)  # e.g. flags set by one script, for the next
            msg = sub.msg
            ok &= good
            if not good:
                break
            if not result.implicit_keep and not any(isinstance(a, Keep) for a in result.actions):
                break
            if i < len(scripts) - 1:
                # the next script starts with a fresh implicit keep
                result.implicit_keep = True
                result.keep_flags = ()
        ok &= self.execute_result(rt, result, msg)
        self.executed, self.keep_executed = saved_exec
        return ok

    def test_error(self, rt, node):
        vals = list(self.errors)
        if node.tags.get("match-type") == "count" and "index" not in node.tags:
            # Portable mode (TESTSUITE-SPEC.md section 9): exact error counts measure
            # Pigeonhole's error recovery (it reports every error it can recover from),
            # not correctness. So any count N >= 1 stands for "at least one error": the
            # real count c is compared as N when both are >= 1; "0" still means none.
            from sieve.match import rel_ok

            op = node.tags.get("relation")
            c = len(vals)
            keys = [int(k) for k in rt.sl(node.pos[0]) if k.isdigit()]
            exact = any(rel_ok(op, (c > n) - (c < n)) for n in keys)
            portable = any(
                rel_ok(op, ((n if c >= 1 and n >= 1 else c) > n) - ((n if c >= 1 and n >= 1 else c) < n)) for n in keys
            )
            # the summary tells how many would also pass on Pigeonhole's exact count
            self.count_checks[0] += 1
            self.count_checks[1] += exact == portable
            return portable
        if "index" in node.tags:
            n = node.tags["index"].value
            vals = [vals[n - 1]] if 1 <= n <= len(vals) else []
        return rt.match(node, vals, rt.sl(node.pos[0]))

    def cmd_config_set(self, rt, node):
        self.pending[rt.s(node.pos[0])] = rt.s(node.pos[1])

    def cmd_config_unset(self, rt, node):
        self.pending[rt.s(node.pos[0])] = None

    def cmd_config_reload(self, rt, node):
        if "extension" in node.tags:
            # Pigeonhole reloads that extension's settings; an unknown name fails the reload
            # and aborts the file. (All pending settings are applied either way: a file reloads
            # before it relies on a value, so applying more at once changes no verdict.)
            ext = rt.s(node.tags["extension"])
            if ext not in extensions.REGISTRY:
                raise AbortFile(f"test_config_reload: unknown extension '{ext}'")
        values: dict[str, object] = {}
        lists: dict[str, dict[int, str]] = {}
        env: dict[str, str] = {}
        cpu_limit: float | None = None
        for key, val in self.pending.items():
            if key == "sieve_extlists_list" or key.startswith("sieve_extlists_list/"):
                continue  # read below, into the harness host's lists
            if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX):
                if val is not None:
                    env["vnd.dovecot.config." + key[len(ENV_PREFIX) :].lower()] = val
                continue
            if key == "sieve_extensions":
                values["sieve_extensions_disabled"] = None if val is None else disabled_extensions(val)
                continue
            if key in _NO_EFFECT_IN_HARNESS:
                continue
            if key == "sieve_max_cpu_time":
                try:
                    secs = None if val is None else dovecot_duration(val)
                except ValueError as e:
                    raise AbortFile(f"config reload failed: sieve_max_cpu_time: {e}") from None
                cpu_limit = secs or None
                continue
            if key in INVERTED and val is not None:
                values[CONFIG_MAP[key]] = "no" if dovecot_bool(val) else "yes"
                continue
            if key == "sieve_editheader_header" or key.startswith(EDITHEADER_PREFIX):
                continue  # read below, with the 2.3 lists
            if key in VALUE_MAPS and val is not None:
                values[CONFIG_MAP[key]] = VALUE_MAPS[key](val)
                continue
            if key in CONFIG_MAP:
                values[CONFIG_MAP[key]] = val
                continue
            for prefix, target in LIST_KEYS.items():
                if key.startswith(prefix):
                    try:
                        n = int(key[len(prefix) :])
                    except ValueError:
                        raise SkipBlock(f"unsupported configuration key {key}") from None
                    lists.setdefault(target, {})[n] = val or ""
                    break
            else:
                raise SkipBlock(f"Dovecot configuration '{key}' has no Owlery counterpart")
        values.update(self._editheader_filters())
        for target, items in lists.items():
            top = max(items) if items else -1
            lo = 0 if target == "sieve_spamtest_text_values" else 1
            values[target] = [items.get(i, "") or "" for i in range(lo, top + 1)]
        new = dict(self.overrides)
        for k, v in values.items():
            if v is None:
                new.pop(k, None)
            else:
                new[k] = v
        self.overrides = new
        try:
            conv = {}
            for k, v in new.items():
                if k in INT_SETTINGS and isinstance(v, str):
                    v = int(v)
                if k in BOOL_SETTINGS and isinstance(v, str):
                    v = dovecot_bool(v)
                if k in ("sieve_max_variable_size", "sieve_max_header_size", "sieve_max_script_size") and isinstance(
                    v, str
                ):
                    v = v.strip().upper().replace("B", "") or "0"
                if k in DURATION_SETTINGS and isinstance(v, str):
                    v = dovecot_duration(v)
                conv[k] = v
            self.settings = self.base_settings.replace(**conv)
        except (SettingsError, ValueError) as e:
            raise AbortFile(f"config reload failed: {e}") from None
        rt.settings = self.settings
        rt.result.settings = self.settings
        self.lists = self._extlists()
        self.env_config = env
        self.cpu_time_limit = cpu_limit
        for r in {id(x): x for x in (rt, self.main_rt) if x is not None}.values():
            r.environment = self.environment()

    def _editheader_filters(self) -> dict[str, list[str]]:
        """Pigeonhole 2.4's sieve_editheader_header/<name>/forbid_add|forbid_delete = yes, added
        to the 2.3 lists sieve_editheader_forbid_add|forbid_delete of the same reload."""
        out: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        flags: dict[tuple[str, str], bool] = {}
        for key, val in self.pending.items():
            if not key.startswith(EDITHEADER_PREFIX) or val is None:
                continue
            ident, _, field = key[len(EDITHEADER_PREFIX) :].rpartition("/")
            field = field.removeprefix("sieve_editheader_header_")
            if not ident:
                raise SkipBlock(f"unsupported configuration key {key}")
            if field == "name":
                names[ident] = val
            elif field in ("forbid_add", "forbid_delete"):
                flags[(ident, field)] = dovecot_bool(val)
            else:
                raise SkipBlock(f"Dovecot configuration '{key}' has no Owlery counterpart")
        for (ident, field), on in flags.items():
            if on:
                target = "sieve_editheader_" + field
                if target not in out:
                    own = self.pending.get(target)
                    out[target] = own.split() if own is not None else list(getattr(self.base_settings, target))
                out[target].append(names.get(ident, ident))
        return out

    def _extlists(self) -> dict[str, frozenset[str]]:
        """Dovecot's sieve_extlists_list settings: the names, then per list `name` and a
        `dict` of driver `file` (lines alternating key and value; a key
        priv/sieve/extlists/<member> makes a member). A list with no dict is empty."""
        from sieve.extensions.extlists import normalise_name

        names = (self.pending.get("sieve_extlists_list") or "").split()
        out: dict[str, frozenset[str]] = {}
        for ident in names:
            prefix = f"sieve_extlists_list/{ident}/"
            name = normalise_name(self.pending.get(prefix + "name") or ident)
            if name is None:
                raise SkipBlock(f"extlists list name {ident!r} is not a valid list name")
            members: set[str] = set()
            if self.pending.get(prefix + "dict"):
                driver = self.pending.get(prefix + "dict/file/driver") or self.pending.get(prefix + "dict")
                path = self.pending.get(prefix + "dict/file/path")
                if driver != "file" or not path:
                    raise SkipBlock(f"extlists dict driver {driver!r} has no harness counterpart")
                try:
                    with open(path, encoding="utf-8") as f:
                        lines = f.read().splitlines()
                except OSError as e:
                    raise AbortFile(f"extlists dict file: {e}") from None
                for key in lines[0::2]:
                    if key.startswith("priv/sieve/extlists/"):
                        members.add(key[len("priv/sieve/extlists/") :])
            out[name] = frozenset(members | {m.lower() for m in members})
        return out

    def cmd_binary_save(self, rt, node):
        if self.slot is None:
            raise AbortFile("no compiled script to save")
        self.binaries[rt.s(node.pos[0])] = self.slot

    def cmd_binary_load(self, rt, node):
        name = rt.s(node.pos[0])
        if name not in self.binaries:
            raise AbortFile(f"no saved binary {name}")
        self.slot = self.binaries[name]

    def cmd_metadata_set(self, rt, node):
        box = rt.s(node.tags["mailbox"]) if "mailbox" in node.tags else None
        ann = rt.s(node.pos[0])
        err = _metadata_entry_error(ann)
        if err:
            # Pigeonhole: a system error, and the command fails the whole file
            raise AbortFile(f"testsuite: imap metadata: specified annotation name '{ann}' is invalid: {err}")
        self.metadata[(None if box is None else self.norm_box(box), ann.lower())] = rt.s(node.pos[1])

    def environment(self) -> dict:
        return {
            "name": "Pigeonhole Sieve",
            "location": "MS",
            "version": "0.5",
            "host": "localhost",
            "domain": "example.com",
            "phase": "during",
            **self.env_config,
        }


def _action_detail(a) -> str:
    """The target of an action for test_result_print, when it has one."""
    for attr in ("mailbox", "address", "to"):
        v = getattr(a, attr, None)
        if isinstance(v, str) and v:
            return f" {v}"
    return ""


def _metadata_entry_error(name: str) -> str | None:
    """Why `name` is not an IMAP METADATA entry name (RFC 5464 3.2, as Dovecot checks it), or None."""
    if not name.startswith("/"):
        return "Entry name must begin with '/'"
    if "//" in name:
        return "Entry name can't contain consecutive '/'"
    if name.endswith("/"):
        return "Entry name can't end with '/'"
    if "*" in name or "%" in name:
        return "Entry name can't contain '*' or '%'"
    if any(ord(c) <= 0x19 for c in name):
        return "Entry name can't contain control chars"
    if name[1:].split("/", 1)[0].lower() not in ("private", "shared"):
        return "Entry name must begin with /private or /shared"
    return None


def _store_keywords(raw: bytes, flags) -> tuple[str, ...]:
    """The keyword the corpus's mail store adds on save (TESTSUITE-SPEC.md section 4: Dovecot's
    maildir with attachment detection, `$HasAttachment`/`$HasNoAttachment`). It models the
    reference's store, not Owlery's (owlery.maildir adds no keyword); the hasflag counts of
    imap4flags/execute.svtest include it."""
    from sieve.message import parse_content_type

    msg = Message(raw)
    has = False
    for part in msg.mime_parts(200, 20):
        disp = (part.header_raw("content-disposition") or [""])[0]
        dparams = parse_content_type(disp)[1]
        if (
            disp.split(";")[0].strip().lower() == "attachment"
            or "filename" in dparams
            or (not part.children and "name" in part.params)
        ):
            has = True
            break
    word = "$HasAttachment" if has else "$HasNoAttachment"
    return () if any(f.lower() == word.lower() for f in flags) else (word,)


class _MsgHolder:
    """Just enough of a Runtime for _run_sub in multiscript."""

    def __init__(self, msg):
        self.msg = msg
        self.ext = {}
        self.envelope = None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def count_blocks(tree) -> int:
    """Test blocks a file contains (excluding dead `if false` regions)."""
    n = 0
    stack = list(tree)
    while stack:
        node = stack.pop()
        if node.name == "test" and not node.is_test:
            n += 1
        if node.block and not node.skip and node.name != "test":
            stack.extend(node.block)
    return n


def run_file(path: str, settings: Settings | None = None, echo=None, expect_failure: bool | None = None) -> FileReport:
    """Run one .svtest file; never raises for engine errors (they become failures).

    expect_failure (upstream -F, default: the file is under a `failures/` directory): the
    file is a crash regression; it passes when every block fails (or it does not compile)
    without crashing the engine."""
    if expect_failure is None:
        expect_failure = "failures" in os.path.normpath(path).split(os.sep)
    report = _run_file(path, settings, echo)
    if expect_failure:
        flipped = [
            dataclasses.replace(
                b,
                status="PASS" if b.status == "FAIL" else ("FAIL" if b.status == "PASS" else b.status),
                reason="expected failure" if b.status == "FAIL" else "expected to fail but succeeded",
            )
            for b in report.blocks
        ]
        if not flipped:
            flipped = [BlockResult(1, "(case)", "PASS" if report.case_error else "FAIL")]
        report = dataclasses.replace(report, blocks=flipped, case_error=None)
    return report


def _run_file(path: str, settings: Settings | None = None, echo=None) -> FileReport:
    out: list[str] = []

    def _echo(line):
        out.append(line)
        if echo:
            echo(line)

    suite = Suite(path, settings, _echo)
    try:
        with open(path, "rb") as f:
            src = f.read()
    except OSError as e:
        return FileReport(path, [], case_error=f"cannot read: {e}", output=out)
    reqs = set(re.findall(r'require\s+(?:\[[^\]]*\]|"[^"]*")', src.decode("utf-8", "replace")))
    text_reqs = " ".join(reqs)
    for ext, reason in DOVECOT_ONLY.items():
        if f'"{ext}"' in text_reqs:
            nblocks = len(re.findall(rb'(?m)^\s*test\s+"', src))
            blocks = [BlockResult(i + 1, "?", "SKIP", reason) for i in range(nblocks)]
            return FileReport(path, blocks, skipped_reason=reason, output=out)
    try:
        script = suite.compile(path)
    except SieveCompileError as e:
        for d in e.diagnostics:
            _echo(str(d))
        nblocks = len(re.findall(rb'(?m)^\s*test\s+"', src))
        return FileReport(
            path,
            [BlockResult(i + 1, "?", "FAIL", "file failed to compile") for i in range(max(nblocks, 1))],
            case_error="failed to compile testcase script",
            output=out,
        )
    total = count_blocks(script.tree)
    msg = Message(DEFAULT_MESSAGE)
    rt = Runtime(
        script,
        DEFAULT_MESSAGE,
        suite.envelope_from_message(msg),
        host=suite.host,
        settings=suite.settings,
        environment=suite.environment(),
        now=suite.now,
        result=suite.new_result(),
        msg=msg,
    )
    rt.testsuite = suite
    suite.main_rt = rt
    case_error = None
    try:
        rt.run_block(script.tree)
    except (StopScript, ReturnScript):
        pass
    except TestsuiteFailure as f:
        case_error = f"test_fail outside a test block: {f.reason}"
    except AbortFile as e:
        case_error = f"test script execution aborted: {e}"
    except SkipBlock as e:
        case_error = None
        for i in range(len(suite.blocks), total):
            suite.blocks.append(BlockResult(i + 1, "?", "SKIP", e.reason))
    except SieveResourceLimit as e:
        case_error = f"resource limit exceeded: {e}"
    except SieveError as e:
        case_error = f"test script execution aborted due to error: {e}"
    except RecursionError:
        case_error = "recursion too deep"
    blocks = list(suite.blocks)
    for i in range(len(blocks), total):
        if case_error:
            blocks.append(BlockResult(i + 1, "?", "FAIL", f"not run: {case_error}"))
    if case_error:
        _echo(f"XX: Test CASE FAILED: {case_error}")
    return FileReport(
        path, blocks, case_error=case_error, output=out, count_checks=(suite.count_checks[0], suite.count_checks[1])
    )
