"""`owlery dkim import-opendkim`: OpenDKIM's signing setup taken over (milters/dkim_import.py).

Parsing and planning from strings (tables of OpenDKIM configurations: what is imported, what
is skipped and why); the key checks and the CLI's exit status on real files; and end to end:
OpenDKIM configurations with keys made by Debian's opendkim-genkey, imported by the CLI, then
the same From addresses signed by the real opendkim (miltertest) and by Owlery's milter with
the imported settings: the d=/s= must agree except where the import said why they cannot, and
OpenDKIM must verify every signature Owlery made (keys in the DNS stub).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import Milter
import pytest

from milters import dkim_import as di
from owlery.app.cli import main as owlery_main
from tests.harness.owlery_milter import lua_session_helpers, run_miltertest
from tests.harness.procs import ManagedProcess, wait_for_unix

from .test_auth_stages import signed_copy
from .test_dkim_interop import OPENDKIM, lua_string, safe_base

ROOT = Path(__file__).resolve().parents[2]
GENKEY = shutil.which("opendkim-genkey") or "/usr/sbin/opendkim-genkey"

KEYTABLE = """\
k1 example.org:s1:/keys/s1
k2 example.org:s2:/keys/s2
kn example.net:n1:/keys/n1
ka example.net:a1:/keys/a1
kp %:p1:/keys/p1
bad example.org:s3
inline example.org:s4:MIIEvQIBADANBgkqhkiG9w0BAQEFAASC
"""


def source(signingtable, kind="refile", keytable=KEYTABLE, extra=""):
    files = {"/o/opendkim.conf": f"KeyTable file:/o/kt\nSigningTable {kind}:/o/st\n{extra}",
             "/o/kt": keytable, "/o/st": signingtable}
    return di.read_opendkim("/o/opendkim.conf", files.__getitem__)


def free(sig, target):
    return b""


def planned(signingtable, **kw):
    return di.plan(source(signingtable, **kw), "/new", free)


# (SigningTable, extra opendkim.conf lines, kind) -> (dkim_sign_keys, substrings of the skips, of the notes)
CASES = {
    "domain": ("*@example.org k1\n", "", "refile", {"example.org": ["s1"]}, [],
               ["subdomains of example.org"]),
    "comments, CRLF, blanks, trailing spaces": (
        "# the table\r\n\r\n*@example.org\tk1   \r\n  # done\n", "", "refile", {"example.org": ["s1"]}, [], []),
    "domain and subdomains, same key": ("*@example.org k1\n*@*.example.org k1\n", "", "refile",
                                        {"example.org": ["s1"]}, [], []),
    "subdomains only": ("*@*.example.org k1\n", "", "refile", {},
                        ["example.org itself is not signed by OpenDKIM"], []),
    "subdomains with another key": ("*@example.org k1\n*@*.example.org k2\n", "", "refile", {"example.org": ["s1"]},
                                    ["*@*.example.org k2", "d=example.org s=s2", "would sign with d=example.org s=s1"],
                                    []),
    "per-address": ("alice@example.net ka\n*@example.net kn\n", "", "refile", {"example.net": ["n1"]},
                    ["'alice@example.net ka': a per-address rule"], []),
    "some local parts": ("news-*@example.net ka\n", "", "refile", {}, ["some local parts only"], []),
    "third party": ("*@example.com k1\n", "", "refile", {}, ["d=example.org s=s1", "third-party"], []),
    "third party for a subdomain": ("*@example.org k1\n*@*.example.org kn\n", "", "refile",
                                    {"example.org": ["s1"]}, ["third-party"], []),
    "% for one domain": ("*@example.com kp\n", "", "refile", {"example.com": ["p1"]}, [], []),
    "% name for one domain": ("*@k1 %\n", "", "refile", {}, ["third-party"], []),
    "% for subdomains": ("*@example.com kp\n*@*.example.com kp\n", "", "refile", {"example.com": ["p1"]},
                         ["% macro"], []),
    "everything": ("* k1\n", "", "refile", {}, ["signs every From domain"], []),
    "everything first": ("* k1\n*@example.org k1\n", "", "refile", {},
                         ["'* k1' applies to example.org too"], []),
    "everything last": ("*@example.org k1\n* k1\n", "", "refile", {"example.org": ["s1"]},
                        ["'* k1': signs every From domain"], []),
    "suffix wildcard": ("*example.org k1\n", "", "refile", {}, ["matches domains Owlery cannot list"], []),
    "dot wildcard is subdomains": ("*@example.org k1\n*.example.org k1\n", "", "refile", {"example.org": ["s1"]},
                                   [], []),
    "refile without @": ("example.org k1\n", "", "refile", {}, ["matches no From address"], []),
    "multiple signatures": ("*@example.org k1\n*@example.org k2\n", "MultipleSignatures yes\n", "refile",
                            {"example.org": ["s1", "s2"]}, [], []),
    "first match only": ("*@example.org k1\n*@example.org k2\n", "MultipleSignatures no\n", "refile",
                         {"example.org": ["s1"]}, [], ["'*@example.org k2': never used"]),
    "KeyTable line missing a field": ("*@example.org bad\n", "", "refile", {}, ["has 2 of its 3 fields"], []),
    "inline key": ("*@example.org inline\n", "", "refile", {}, ["holds the private key itself"], []),
    "no such KeyTable name": ("*@example.org nosuch\n", "", "refile", {}, ["no KeyTable entry 'nosuch'"], []),
    "signer": ("*@example.org k1:alice@example.org\n", "", "refile", {"example.org": ["s1"]}, [],
               ["signer 'alice@example.org' (i=) is not carried over"]),
    "file: host and .parent": ("example.org k1\n.example.org k1\n", "", "file", {"example.org": ["s1"]}, [], []),
    "file: lookup order (host before *)": ("* kn\nexample.org k1\n", "", "file", {"example.org": ["s1"]},
                                           ["'* kn': signs every From domain"], []),
    "file: * is literal": ("*@example.org k1\n", "", "file", {}, ["in a file: table * is no wildcard"], []),
    "file: per-address": ("alice@example.org k2\nexample.org k1\n", "", "file", {"example.org": ["s1"]},
                          ["per-address"], []),
    "file: first line of a key": ("example.org k1\nexample.org k2\n", "MultipleSignatures yes\n", "file",
                                  {"example.org": ["s1"]}, [], ["given again; OpenDKIM uses its first line only"]),
    "SubDomains is for Domain only": ("example.org k1\n", "SubDomains yes\n", "file", {"example.org": ["s1"]}, [],
                                      ["SubDomains applies to the Domain list only"]),
    "two keys, one selector": ("*@example.org k1\n*@example.org k3\n", "MultipleSignatures yes\n", "refile", {},
                               ["two key files for d=example.org s=s1"], []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plan(name):
    table, extra, kind, want, skips, notes = CASES[name]
    kt = KEYTABLE + "k3 example.org:s1:/keys/other\n"
    result = di.plan(source(table, kind, kt, extra), "/new", free)
    assert result.table == want
    for s in skips:
        assert any(s in line for line in result.skipped), (s, result.skipped)
    if not skips:
        assert result.skipped == []
    for s in notes:
        assert any(s in line for line in result.notes), (s, result.notes)
    assert {(c.domain, c.selector) for c in result.copies} == {(d, s) for d, sel in want.items() for s in sel}


def test_copies_name_domain_selector():
    result = planned("*@example.org k1\n*@example.org k2\n", extra="MultipleSignatures yes\n")
    assert sorted((c.source, c.target) for c in result.copies) == [
        ("/keys/s1", "/new/example.org.s1.key"), ("/keys/s2", "/new/example.org.s2.key")]
    assert result.toml() == 'dkim_sign_keys = { "example.org" = ["s1", "s2"] }'


def test_a_refused_key_skips_its_domain_and_copies_nothing():
    def check(sig, target):
        if sig.path == "/keys/s2":
            raise di.KeyRefused("/keys/s2: RSA key of 512 bits; at least 1024 required (dkim_min_key_bits)")
        return b""
    result = di.plan(source("*@example.org k1\n*@example.org k2\n*@example.net kn\n",
                            extra="MultipleSignatures yes\n"), "/new", check)
    assert result.table == {"example.net": ["n1"]}
    assert [c.source for c in result.copies] == ["/keys/n1"]
    why = "/keys/s2: RSA key of 512 bits; at least 1024 required (dkim_min_key_bits)"
    assert result.skipped == [f"/o/st:1: '*@example.org k1': {why}", f"/o/st:2: '*@example.org k2': {why}"]


@pytest.mark.parametrize("spec, says", [
    ("ldap://ldap.example.org/dc=example,dc=org?dkim", "an LDAP dataset"),
    ("dsn:mysql://user:secret@3306+db/odkim/table=k", "an SQL (DSN) dataset"),
    ("db:/etc/opendkim/keys.db", "Berkeley DB"),
    ("/etc/opendkim/keys.db", "Berkeley DB"),
    ("lua:/etc/opendkim/keys.lua", "a Lua dataset"),
    ("weird:/x", "an unknown dataset type"),
])
def test_datasets_not_read(spec, says):
    files = {"/o/c": f"KeyTable file:/o/kt\nSigningTable {spec}\n", "/o/kt": KEYTABLE}
    result = di.plan(di.read_opendkim("/o/c", files.__getitem__), "/new", free)
    assert result.table == {} and says in result.skipped[0], result.skipped
    assert "secret" not in result.skipped[0]


@pytest.mark.parametrize("conf, want, skips, notes", [
    ("Domain csl:a.org,b.org\nSelector s\nKeyFile /k\nSubDomains yes\n", {"a.org": ["s"], "b.org": ["s"]}, [], []),
    ("Domain a.org\nSelector s\nKeyFile /k\n", {"a.org": ["s"]}, [], ["also signs mail From subdomains of a.org"]),
    ("Domain file:/o/domains\nSelector s\nKeyFile /k\nsubdomains Y\n", {"a.org": ["s"], "c.org": ["s"]}, [], []),
    ("Domain *\nSelector s\nKeyFile /k\n", {}, ["signs every From domain"], []),
    ("Domain a.org\nKeyFile /k\n", {}, ["Domain without Selector"], []),
    ("KeyFile /k\n", {}, ["signs nothing"], []),
    ("Domain a.org\nSelector s\nKeyFile /k\nKeyTable file:/o/kt\nSigningTable refile:/o/st\n",
     {"example.org": ["s1"]}, [], ["Domain, Selector and KeyFile are ignored"]),
    ("Include /o/more\nSelector s\nKeyFile ../k\n", {"a.org": ["s"]}, [], []),
])
def test_domain_mode(conf, want, skips, notes):
    files = {"/o/c": conf, "/o/domains": "a.org\n# c\nc.org\n", "/o/kt": KEYTABLE, "/o/st": "*@example.org k1\n",
             "/o/more": "Domain a.org\n"}
    result = di.plan(di.read_opendkim("/o/c", files.__getitem__), "/new", free)
    assert result.table == want
    for s in skips:
        assert any(s in line for line in result.skipped), result.skipped
    for s in notes:
        assert any(s in line for line in result.notes), result.notes
    if "../k" in conf:
        assert result.copies[0].source == "/k"


@pytest.mark.parametrize("conf, says", [
    ("KeyTable file:/o/kt\nkeytable file:/o/kt\n", "keytable given again"),
    ("MultipleSignatures maybe\nKeyTable file:/o/kt\nSigningTable refile:/o/st\n", "is not a Boolean"),
    ("Include /o/c\n", "Include nested deeper than 5 levels"),
])
def test_conf_refused(conf, says):
    files = {"/o/c": conf, "/o/kt": KEYTABLE, "/o/st": ""}
    with pytest.raises(di.OpenDkimUnreadable, match=says):
        di.read_opendkim("/o/c", files.__getitem__)


def test_other_parameters_may_repeat():
    files = {"/o/c": "Socket a\nSocket b\nDomain a.org\nSelector s\nKeyFile /k\n"}
    assert di.plan(di.read_opendkim("/o/c", files.__getitem__), "/n", free).table == {"a.org": ["s"]}


# --- keys and the CLI on real files -----------------------------------------------------

@pytest.fixture(scope="module")
def genkeys(tmp_path_factory):
    """opendkim-genkey's keys: s1 2048, s2 1024, weak 512 bits. This opendkim-genkey (OpenSSL 3)
    writes PKCS#8; s2 is turned into PKCS#1 (BEGIN RSA PRIVATE KEY), as it wrote with OpenSSL 1."""
    from cryptography.hazmat.primitives import serialization
    d = tmp_path_factory.mktemp("odkeys")
    for sel, bits in (("s1", 2048), ("s2", 1024), ("weak", 512)):
        subprocess.run([GENKEY, "-D", str(d), "-d", "example.org", "-s", sel, "-b", str(bits)], check=True,
                       capture_output=True)
    key = serialization.load_pem_private_key((d / "s2.private").read_bytes(), None)
    (d / "s2.private").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                                     serialization.NoEncryption()))
    assert (d / "s2.private").read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert (d / "s1.private").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    return d


def cli(capsys, *argv):
    code = owlery_main(["dkim", "import-opendkim", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def write_setup(tmp_path, keys, signingtable):
    (tmp_path / "owlery.toml").write_text("")
    (tmp_path / "kt").write_text("".join(f"k{sel} example.org:{sel}:{path}\n" for sel, path in keys.items()))
    (tmp_path / "st").write_text(signingtable)
    (tmp_path / "od.conf").write_text(f"KeyTable {tmp_path}/kt\nSigningTable refile:{tmp_path}/st\n"
                                      "MultipleSignatures yes\n")
    return ["--opendkim-conf", tmp_path / "od.conf", "-c", tmp_path / "owlery.toml", "-d", tmp_path / "new"]


def test_cli_imports_and_is_idempotent(tmp_path, capsys, genkeys):
    args = write_setup(tmp_path, {"s1": genkeys / "s1.private", "s2": genkeys / "s2.private"},
                       "*@example.org ks1\n*@example.org ks2\n*@*.example.org ks1\n*@*.example.org ks2\n")
    code, out, err = cli(capsys, *args, "--dry-run")
    assert code == 0 and "would copy" in err and not (tmp_path / "new").exists()
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert tomllib.loads(out) == {"dkim_key_directory": str(tmp_path / "new"),
                                  "dkim_sign_keys": {"example.org": ["s1", "s2"]}}
    for sel in ("s1", "s2"):
        copy = tmp_path / "new" / f"example.org.{sel}.key"
        assert copy.read_bytes() == (genkeys / f"{sel}.private").read_bytes()
        st = copy.stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, os.geteuid())
    assert cli(capsys, *args)[0] == 0                      # the same keys again: fine
    assert sorted(os.listdir(tmp_path / "new")) == ["example.org.s1.key", "example.org.s2.key"]


def test_cli_never_replaces_another_key(tmp_path, capsys, genkeys):
    args = write_setup(tmp_path, {"s1": genkeys / "s1.private"}, "*@example.org ks1\n")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "example.org.s1.key").write_bytes((genkeys / "s2.private").read_bytes())
    code, out, err = cli(capsys, *args)
    assert code == 1 and out == ""
    assert "exists with a different key: not replaced" in err
    assert (tmp_path / "new" / "example.org.s1.key").read_bytes() == (genkeys / "s2.private").read_bytes()


@pytest.mark.parametrize("make, says, code", [
    (lambda p, k: p.symlink_to(k / "s1.private"), "is a symlink", 1),
    (lambda p, k: p.mkdir(), "not a regular file", 1),
    (lambda p, k: os.mkfifo(p), "not a regular file", 1),
    (lambda p, k: p.write_bytes((k / "weak.private").read_bytes()), "RSA key of 512 bits; at least 1024 required", 1),
    (lambda p, k: p.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
     "not a usable PEM private key", 1),
    (lambda p, k: p.write_bytes(b"x" * (di.MAX_KEY_BYTES + 1)), "larger than", 1),
    (lambda p, k: None, "No such file", 2),
])
def test_cli_refuses_keys(tmp_path, capsys, genkeys, make, says, code):
    key = tmp_path / "key"
    make(key, genkeys)
    args = write_setup(tmp_path, {"s1": key, "s2": genkeys / "s2.private"}, "*@example.org ks1\n*@example.net ks2\n")
    got, out, err = cli(capsys, *args)
    assert got == code and says in err, err
    assert not (tmp_path / "new" / "example.org.s1.key").exists()
    assert out == ""                               # example.net (d=example.org) is third-party: nothing to print


@pytest.mark.parametrize("what", ["conf", "table", "huge", "fifo"])
def test_cli_unreadable_input_is_status_2(tmp_path, capsys, genkeys, what):
    args = write_setup(tmp_path, {"s1": genkeys / "s1.private"}, "*@example.org ks1\n")
    if what == "conf":
        (tmp_path / "od.conf").unlink()
    elif what == "table":
        (tmp_path / "st").unlink()
    elif what == "huge":
        (tmp_path / "st").write_text("# padding\n" * (di.MAX_TABLE_BYTES // 10 + 1))
    else:
        (tmp_path / "st").unlink()
        os.mkfifo(tmp_path / "st")
    code, out, err = cli(capsys, *args)
    assert code == 2 and out == "", err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("keytable, signingtable", [("file:{d}/kt", "refile:{d}/st"), ("kt", "st"), ("{d}/kt", "st")])
def test_cli_tables_without_conf(tmp_path, capsys, genkeys, monkeypatch, keytable, signingtable):
    write_setup(tmp_path, {"s1": genkeys / "s1.private"}, "example.org ks1\n")
    (tmp_path / "st").write_text("example.org ks1\n" if "refile" not in signingtable else "*@example.org ks1\n")
    monkeypatch.chdir(tmp_path)                  # a bare relative path is a file, as a path in the shell is
    code, out, err = cli(capsys, "--keytable", keytable.format(d=tmp_path), "--signingtable",
                         signingtable.format(d=tmp_path), "-c", tmp_path / "owlery.toml", "-d", tmp_path / "new", "-n")
    assert code == 0 and 'dkim_sign_keys = { "example.org" = ["s1"] }' in out, err


# --- end to end: the real opendkim and Owlery sign the same way ---------------------------

LUA_SIGN = """
do
  local conn = start()
  {headers}
  assert(mt.eoh(conn) == nil, "eoh")
  if mt.getreply(conn) == SMFIR_CONTINUE then
    assert(mt.bodystring(conn, {body}) == nil, "body")
    mt.macro(conn, string.byte("E"), "i", "Q{n}")
    assert(mt.eom(conn) == nil, "eom")
    local i = 0
    while true do
      local v = mt.getheader(conn, "DKIM-Signature", i)
      if v == nil then break end
      mt.echo("CASE {n} SIG<<" .. v .. ">>")
      i = i + 1
    end
    {results}
  end
  mt.disconnect(conn)
end
"""


def lua_message(n, raw, results=False):
    from milters.testing import split_message
    fields, body = split_message(raw)
    # As an MTA without SMFIP_HDR_LEADSPC sends them: one leading space dropped, CRLF folds.
    values = [(name, value.removeprefix(b" ").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
              for name, value in fields]
    headers = "\n  ".join(f'assert(mt.header(conn, "{name}", {lua_string(v)}) == nil, "header")' for name, v in values)
    echo = (f'local j = 0\n    while mt.getheader(conn, "Authentication-Results", j) ~= nil do\n'
            f'      mt.echo("CASE {n} AR<<" .. mt.getheader(conn, "Authentication-Results", j) .. ">>")\n'
            f'      j = j + 1\n    end') if results else ""
    return LUA_SIGN.format(headers=headers, body=lua_string(body), n=n, results=echo)


def ds(signature_values):
    return {(re.search(r"\bd=([^;\s]+)", v).group(1), re.search(r"\bs=([^;\s]+)", v).group(1))
            for v in signature_values}


def message(address):
    return (f"From: <{address}>\r\nTo: bob@example.com\r\nSubject: import\r\n"
            f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{uuid.uuid4().hex}@import.test>\r\n\r\n"
            "Same keys, same rules.\r\n").encode()


@pytest.fixture(scope="module")
def workdir():
    """Below a directory no world-writable ancestor has (OpenDKIM refuses files below /tmp)."""
    work = safe_base() / f"dkim-import-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True, mode=0o755)
    keys = work / "keys"
    keys.mkdir(mode=0o700)
    for domain, sel in (("example.org", "s1"), ("example.org", "s2"), ("example.net", "n1"), ("example.net", "a1")):
        subprocess.run([GENKEY, "-D", str(keys), "-d", domain, "-s", sel, "-b", "1024"], check=True, capture_output=True)
        os.rename(keys / f"{sel}.private", keys / f"{domain}.{sel}.private")
    yield work
    shutil.rmtree(work, ignore_errors=True)


def kt_line(name, domain, sel, work):
    return f"{name} {domain}:{sel}:{work}/keys/{domain}.{sel}.private\n"


# Each configuration: opendkim.conf's signing lines and files; From addresses -> None where both
# must sign alike, or (a line the import printed saying why, Owlery's s=, OpenDKIM's s=).
SETUPS = {
    "KeyTable + refile SigningTable, MultipleSignatures": (
        lambda w: (f"KeyTable file:{w}/KeyTable\nSigningTable refile:{w}/SigningTable\nMultipleSignatures yes\n",
                   {"KeyTable": "".join(kt_line(*a, w) for a in (("k1", "example.org", "s1"), ("k2", "example.org", "s2"),
                                                                 ("kn", "example.net", "n1"), ("ka", "example.net", "a1")))
                    # one key file under a second selector: a third line for lists.example.net
                    + f"kt1 lists.example.net:t1:{w}/keys/example.net.n1.private\n"
                    + f"kt2 lists.example.net:t2:{w}/keys/example.net.a1.private\n"
                    + f"kt3 lists.example.net:t3:{w}/keys/example.net.n1.private\n",
                    "SigningTable": ("# per address first, then domains\r\nalice@example.net ka\r\n"
                                     "*@example.org k1\n*@example.org k2 \n*@*.example.org k1\n*@*.example.org k2\n"
                                     "*@example.net kn\n*@example.com k1\n"
                                     "*@lists.example.net kt1\n*@lists.example.net kt2\n*@lists.example.net kt3\n")}),
        {"a@example.org": None, "a@sub.example.org": None, "b@deep.sub.example.org": None, "a@example.net": None,
         "alice@example.net": ("'alice@example.net ka': a per-address rule", "n1", "a1 n1"),
         "a@sub.example.net": ("also signs mail From subdomains of example.net", "n1", ""),
         "a@example.com": ("'*@example.com k1': signs with d=example.org s=s1, not the From domain", "", "s1"),
         "a@lists.example.net": ("of three, it leaves out the second", "t1 t2 t3", "t1 t3"),
         "a@unlisted.test": None}),
    "Domain + Selector + KeyFile, SubDomains": (
        lambda w: (f"Domain csl:example.org,example.net\nSelector s1\nKeyFile {w}/keys/example.org.s1.private\n"
                   "SubDomains yes\n", {}),
        {"a@example.org": None, "a@sub.example.org": None, "a@example.net": None, "a@sub.example.net": None,
         "a@unlisted.test": None}),
    "Domain + Selector + KeyFile, no SubDomains": (
        lambda w: (f"Domain file:{w}/domains\nSelector s1\nKeyFile {w}/keys/example.org.s1.private\n",
                   {"domains": "example.org\n"}),
        {"a@example.org": None, "a@sub.example.org": ("also signs mail From subdomains of example.org", "s1", ""),
         "a@example.net": None}),
}


def start_opendkim(work, signing, dns_port):
    sock = work / "opendkim.sock"
    conf = work / "opendkim.conf"
    conf.write_text(f"""# written by test_dkim_import
{signing}
Socket local:{sock}
Mode sv
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.1
AuthservID opendkim.test
Nameservers 127.0.0.1@{dns_port}
Background no
Syslog no
PidFile {work}/opendkim.pid
""")
    proc = ManagedProcess([OPENDKIM, "-f", "-x", str(conf)], "opendkim", work / "opendkim.log").start()
    wait_for_unix(str(sock), timeout=15, proc=proc, what="opendkim")
    return proc, f"unix:{sock}", conf


def miltertest_batch(work, spec, client_ip, messages, results=False):
    script = work / f"batch-{client_ip}.lua"
    script.write_text(lua_session_helpers(client_ip, 10) + "".join(
        lua_message(n, raw, results) for n, raw in enumerate(messages)))
    code, out = run_miltertest(script, spec)
    assert code == 0, out
    sigs = [[] for _ in messages]
    ars = [[] for _ in messages]
    for m in re.finditer(r"CASE (\d+) (SIG|AR)<<(.*?)>>", out, re.S):
        (sigs if m.group(2) == "SIG" else ars)[int(m.group(1))].append(m.group(3))
    return sigs, ars


@pytest.mark.parametrize("setup", list(SETUPS))
def test_imported_setup_signs_as_opendkim_did(setup, workdir, dns, milter_env):
    from milters import dkimkeys
    make, froms = SETUPS[setup]
    work = workdir / re.sub(r"\W+", "-", setup)
    work.mkdir(mode=0o755)
    signing, files = make(workdir)
    for name, text in files.items():
        (workdir / name).write_text(text)
    proc, spec, conf = start_opendkim(work, signing, dns.port)
    try:
        (work / "owlery.toml").write_text("")
        done = subprocess.run([sys.executable, "-m", "owlery.app.cli", "dkim", "import-opendkim",
                               "--opendkim-conf", str(conf), "-c", str(work / "owlery.toml"), "-d", str(work / "dkim")],
                              capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              timeout=30)
        differs = {a: why for a, why in froms.items() if why}
        skipped = [why for why, _, _ in differs.values() if "also signs" not in why and "of three" not in why]
        assert done.returncode == (1 if skipped else 0), done.stderr
        imported = tomllib.loads(done.stdout)
        for why, _, _ in differs.values():
            assert why in done.stderr, (why, done.stderr)
        settings = dict(dkim_sign_keys=imported["dkim_sign_keys"], dkim_key_directory=imported["dkim_key_directory"])
        run = milter_env(**settings)
        for d, sels in imported["dkim_sign_keys"].items():
            for sel in sels:
                key = dkimkeys.load_key(dkimkeys.key_path(str(work / "dkim"), d, sel), d, sel)
                dns.set(f"{sel}._domainkey.{d}", "TXT", dkimkeys.public_txt(key.key))
        addresses = list(froms)
        raws = [message(a) for a in addresses]
        ours = []
        for raw, address in zip(raws, addresses):
            code, ctx = run(raw, sender=f"<{address}>", mail_macros={"{auth_authen}": "alice"})
            assert code == Milter.ACCEPT
            ours.append(signed_copy(ctx, raw))
        theirs, _ = miltertest_batch(work, spec, "127.0.0.1", raws)
        _, verdicts = miltertest_batch(work, spec, "192.0.2.10", ours, results=True)
    finally:
        # SIGTERM takes OpenDKIM ~5 s (libmilter winds down); this one keeps no state worth it.
        proc.stop(sig=signal.SIGKILL)
    for n, address in enumerate(addresses):
        owl = ds(v.decode() for name, v in _fields(ours[n]) if name.lower() == "dkim-signature")
        odk = ds(theirs[n])
        if froms[address] is None:
            assert owl == odk, (address, owl, odk)
        else:
            _, owl_s, odk_s = froms[address]
            assert ({s for _, s in owl}, {s for _, s in odk}) == (set(owl_s.split()), set(odk_s.split())), address
        # OpenDKIM verifies every signature Owlery made.
        assert passes(verdicts[n]) == owl, (address, verdicts[n])


def passes(ar_values):
    """(d, s) of each dkim=pass in Authentication-Results values (a comment may hold a ';')."""
    out = set()
    for part in " ".join(ar_values).split("dkim=")[1:]:
        d, s = re.search(r"header\.d=([^\s;]+)", part), re.search(r"header\.s=([^\s;]+)", part)
        if part.startswith("pass") and d and s:
            out.add((d.group(1), s.group(1)))
    return out


def _fields(raw):
    from milters.testing import split_message
    return split_message(raw)[0]
