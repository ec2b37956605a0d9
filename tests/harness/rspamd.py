"""A private Rspamd (Debian package) doing only DKIM/ARC, on loopback, for interop tests.

Rspamd runs as a child (`rspamd -f -c <own rspamd.conf>`, workers as _rspamd) with a
minimal configuration of its own written into the work dir (nothing from /etc/rspamd):
the `dkim` C module (verify), the `arc` Lua module (verify and seal) and `dkim_signing`;
every other Lua plugin is left unconfigured, which Rspamd takes as disabled, so nothing
needs Redis or the network. DNS goes to the test's DNS stub only (key TXT records).
Language detection and the 9,600-suffix URL list are replaced by empty/tiny files: they
cost Rspamd ~3 s at start and play no part in DKIM/ARC. Ready when HTTP /ping answers.

Talks to: the normal worker's HTTP API (/checkv2, the same request `rspamc` makes: the
message as the body, envelope in headers IP, From, Rcpt, User, Helo); `check()` returns
the symbols and the headers Rspamd asks the MTA to add (its milter block), and
`apply_headers()` puts those on top of the message as an MTA would.
Used by tests/e2e/test_rspamd_interop.py and tests/e2e/test_outbound_e2e.py.
"""

import http.client
import json
import os
import pwd
import shutil

from .procs import LOOPBACK, HarnessError, ManagedProcess, ServerProcess, make_dir, wait_until

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
RSPAMD_USER = "_rspamd"
PLUGINS_DIR = "/usr/share/rspamd/plugins"

# DKIM_SIGNED/ARC_SIGNED say Rspamd added a signature; verification symbols per RFC outcome.
DKIM_PASS, DKIM_FAIL = "R_DKIM_ALLOW", "R_DKIM_REJECT"
ARC_PASS, ARC_FAIL = "ARC_ALLOW", "ARC_REJECT"


def _ucl_str(value):
    return json.dumps(str(value))   # a JSON string is a valid UCL string


def _signing_block(keys, use_domain):
    """{domain: (selector, key_path)} -> the `domain { ... }` table of dkim_signing/arc."""
    lines = []
    for domain, (selector, path) in keys.items():
        lines.append(f"    {_ucl_str(domain)} {{ selector = {_ucl_str(selector)}; path = {_ucl_str(path)}; }}")
    return (f"  use_domain = {_ucl_str(use_domain)};\n  use_esld = false;\n  try_fallback = false;\n"
            "  domain {\n" + "\n".join(lines) + "\n  }\n")


class Rspamd(ServerProcess):
    """Rspamd on 127.0.0.1:<port> answering DNS from `dns_port` (the DNS stub).

    dkim_keys / arc_keys: {domain: (selector, PEM private key path)}; the keys are copied
    into the work dir for the _rspamd user. DKIM signing happens for authenticated
    requests (check(user=...)) with the From header's domain; ARC sealing for
    unauthenticated ones from outside, with `arc_domain` as d=.
    """

    start_timeout = 60.0
    stop_timeout = 15
    keep_port = False

    def __init__(self, workdir, dns_port, dkim_keys=None, arc_keys=None, arc_domain=None):
        self.workdir = make_dir(workdir, 0o755, owner=RSPAMD_USER)
        self.dns_port = dns_port
        self.dkim_keys = self._copy_keys(dkim_keys or {}, "dkim")
        self.arc_keys = self._copy_keys(arc_keys or {}, "arc")
        self.arc_domain = arc_domain or next(iter(self.arc_keys), None)
        self.log_path = self.workdir / "rspamd.log"

    def _copy_keys(self, keys, kind):
        pw = pwd.getpwnam(RSPAMD_USER)
        out = {}
        for domain, (selector, path) in keys.items():
            dest = self.workdir / f"{kind}.{domain}.{selector}.key"
            shutil.copyfile(path, dest)
            os.chmod(dest, 0o600)
            os.chown(dest, pw.pw_uid, pw.pw_gid)
            out[domain] = (selector, dest)
        return out

    def config_text(self):
        w = self.workdir
        lang = make_dir(w / "languages", 0o755, owner=RSPAMD_USER)
        tld = w / "tld.dat"
        tld.write_text("test\nexample\ninvalid\ncom\nnet\norg\n")
        text = f"""options {{
  pidfile = {_ucl_str(w / "rspamd.pid")};
  filters = "dkim";
  dns {{ nameserver = [{_ucl_str(f"{LOOPBACK}:{self.dns_port}")}]; timeout = 2s; retransmits = 1; sockets = 4; }}
  hs_cache_dir = {_ucl_str(w)};
  tempdir = {_ucl_str(w)};
  url_tld = {_ucl_str(tld)};
  local_addrs = [];
  task_timeout = 8s;
}}
lang_detection {{ languages = {_ucl_str(lang)}; }}
logging {{ type = "file"; filename = {_ucl_str(self.log_path)}; level = "info"; }}
worker "normal" {{ bind_socket = {_ucl_str(f"{LOOPBACK}:{self.port}")}; count = 1; }}
modules {{ path = {_ucl_str(PLUGINS_DIR)}; }}
dkim {{ check_local = true; check_authed = true; }}
"""
        if self.dkim_keys:
            text += ("dkim_signing {\n  sign_authenticated = true;\n  sign_local = false;\n"
                     "  allow_username_mismatch = true;\n" + _signing_block(self.dkim_keys, "header") + "}\n")
        else:
            text += "dkim_signing { enabled = false; }\n"
        if self.arc_keys:
            text += ("arc {\n  check_local = true;\n  check_authed = true;\n  sign_inbound = true;\n"
                     "  sign_local = false;\n  sign_authenticated = false;\n"
                     + _signing_block(self.arc_keys, self.arc_domain) + "}\n")
        else:
            text += "arc { check_local = true; check_authed = true; }\n"
        return text

    def _spawn(self, timeout):
        conf = self.workdir / "rspamd.conf"
        conf.write_text(self.config_text())
        argv = [RSPAMD, "-f", "-c", conf, "-u", RSPAMD_USER, "-g", RSPAMD_USER]
        with self._started(ManagedProcess(argv, "rspamd", self.workdir / "rspamd.out",
                                          extra_logs=[self.log_path])) as proc:
            wait_until(self.ping, timeout, "rspamd on port %d" % self.port, proc, interval=0.05)

    def ping(self):
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2.0)
        try:
            conn.request("GET", "/ping")
            return conn.getresponse().read().strip() == b"pong"
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def check(self, message, ip="192.0.2.10", sender=None, rcpts=(), user=None, helo="mail.example.test",
              timeout=20.0):
        """POST /checkv2 as `rspamc` does; returns the JSON reply (symbols, milter, action...)."""
        headers = [("IP", ip), ("Helo", helo), ("Hostname", helo)]
        if sender is not None:
            headers.append(("From", sender))
        if user is not None:
            headers.append(("User", user))
        headers += [("Rcpt", r) for r in rcpts]      # one header per recipient, as rspamc sends
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        try:
            conn.putrequest("POST", "/checkv2")
            for name, value in headers + [("Content-Length", str(len(message)))]:
                conn.putheader(name, value)
            conn.endheaders(message)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise HarnessError(f"rspamd /checkv2: HTTP {resp.status}: {body[:500]!r}\n" + self.proc.log_tail())
        return json.loads(body)

    def symbols(self, message, **kw):
        """Names of the symbols Rspamd found (a set)."""
        return set(self.check(message, **kw).get("symbols", {}))


def added_headers(reply):
    """[(name, value)] Rspamd asks the MTA to add, in its order: its milter.add_headers (ARC
    sets) and, from dkim_signing without the milter_headers module, "dkim-signature"."""
    out = []
    sigs = reply.get("dkim-signature") or []
    for sig in [sigs] if isinstance(sigs, str) else sigs:
        out.append((0, "DKIM-Signature", sig))
    for name, spec in (reply.get("milter") or {}).get("add_headers", {}).items():
        for item in spec if isinstance(spec, list) else [spec]:
            if isinstance(item, dict):
                out.append((item.get("order", 0), name, item["value"]))
            else:
                out.append((0, name, item))
    return [(n, v) for _, n, v in sorted(out, key=lambda t: t[0])]


def apply_headers(message, reply):
    """The message as the next hop sees it: Rspamd's added headers on top (folds as CRLF)."""
    top = b""
    for name, value in added_headers(reply):
        value = value.replace("\r\n", "\n").replace("\n", "\r\n")
        top += f"{name}: {value}\r\n".encode()
    return top + message


__all__ = ["Rspamd", "added_headers", "apply_headers", "DKIM_PASS", "DKIM_FAIL", "ARC_PASS", "ARC_FAIL"]
