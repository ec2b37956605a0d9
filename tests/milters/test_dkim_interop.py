"""DKIM interop with OpenDKIM (Debian's opendkim, driven by miltertest) in both directions.

- Owlery signs (RSA, relaxed/relaxed, From oversigned) -> OpenDKIM verifies: dkim=pass.
- OpenDKIM signs -> Owlery's dkim_verify stage says dkim=pass.
(Ed25519 signatures are verified with dkimpy in test_auth_stages.py: dkim_verify is dkimpy.)
OpenDKIM refuses files below a world-writable directory, so its files live under
<repo>/build/; it resolves keys through the DNS stub (`Nameservers 127.0.0.1@PORT`).
"""

import os
import shutil
import uuid
from pathlib import Path

import Milter
import pytest

from tests.harness.procs import ManagedProcess, wait_for_unix
from tests.harness.owlery_milter import run_miltertest

from .test_auth_stages import MSG, OUT, signed_copy

ROOT = Path(__file__).resolve().parents[2]
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


def _world_writable_ancestor(path):
    for p in [path, *path.parents]:
        if p.exists() and p.stat().st_mode & 0o002:
            return p
    return None


def safe_base():
    """A directory no ancestor of which is world-writable: OpenDKIM refuses files below /tmp.

    The checkout may itself live under /tmp (CI clones anywhere); then use /var/lib.
    """
    for base in (ROOT / "build", Path("/var/lib/owlery-tests")):
        if _world_writable_ancestor(base) is None:
            return base
    pytest.fail("no directory free of world-writable ancestors for OpenDKIM's files")


@pytest.fixture(scope="module")
def opendkim(key_dir, dns_stub):
    """OpenDKIM in sign+verify mode, signing example.net with selector od1 (our genkey's key)."""
    from milters import dkimkeys
    if not os.path.exists(OPENDKIM):
        pytest.fail("opendkim is not installed (Debian package opendkim)")
    work = safe_base() / f"opendkim-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True, mode=0o755)
    key_path, _ = dkimkeys.generate("example.net", "od1", str(work))
    key = dkimkeys.load_key(key_path, "example.net", "od1")
    sock = work / "opendkim.sock"
    conf = work / "opendkim.conf"
    conf.write_text(f"""Socket local:{sock}
Mode sv
Domain example.net
Selector od1
KeyFile {key_path}
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.1
AuthservID opendkim.test
Nameservers 127.0.0.1@{dns_stub.port}
Background no
Syslog no
PidFile {work}/opendkim.pid
UMask 022
""")
    proc = ManagedProcess([OPENDKIM, "-f", "-x", str(conf)], "opendkim", work / "opendkim.log").start()
    try:
        wait_for_unix(str(sock), timeout=15, proc=proc, what="opendkim")
        yield {"spec": f"unix:{sock}", "txt": dkimkeys.public_txt(key.key), "proc": proc}
    finally:
        proc.kill_group()       # it keeps nothing worth a clean stop; libmilter takes ~4 s on SIGTERM
        proc.stop()             # reaps it
        shutil.rmtree(work, ignore_errors=True)


def lua_string(data):
    """A Lua string literal with exact bytes (long brackets would turn CRLF into LF)."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else "\\%03d" % b for b in data) + '"'


def lua_for(raw, client_ip, expect_header):
    """A miltertest script feeding `raw` (headers + body) and echoing the `expect_header` it adds."""
    from milters.testing import split_message
    fields, body = split_message(raw)
    lines = []
    for name, value in fields:
        # As an MTA without SMFIP_HDR_LEADSPC does: one leading space dropped.
        v = value.decode().removeprefix(" ").replace("\n", "\r\n")
        lines.append(f'assert(mt.header(conn, "{name}", {lua_string(v.encode())}) == nil, "header {name}")')
    headers = "\n  ".join(lines)
    return f"""
local function main()
  local conn = mt.connect(sock, 5, 1)
  if conn == nil then error("connect") end
  mt.macro(conn, SMFIC_CONNECT, "j", "mx.example.com")
  assert(mt.conninfo(conn, "client.example", "{client_ip}") == nil, "conninfo")
  if not mt.test_option(conn, SMFIP_NOHELO) then assert(mt.helo(conn, "client.example") == nil, "helo") end
  assert(mt.mailfrom(conn, "<alice@example.net>") == nil, "mailfrom")
  assert(mt.rcptto(conn, "<bob@example.com>") == nil, "rcptto")
  {headers}
  if not mt.test_option(conn, SMFIP_NOEOH) then assert(mt.eoh(conn) == nil, "eoh") end
  assert(mt.bodystring(conn, {lua_string(body)}) == nil, "body")
  mt.macro(conn, string.byte("E"), "i", "ODQID")
  assert(mt.eom(conn) == nil, "eom")
  local reply = mt.getreply(conn)
  mt.echo("REPLY " .. tostring(reply))
  assert(reply ~= SMFIR_TEMPFAIL, "tempfail")
  if not mt.eom_check(conn, MT_HDRINSERT, "{expect_header}") and not mt.eom_check(conn, MT_HDRADD, "{expect_header}") then
    error("no {expect_header} added")
  end
  mt.echo("HEADER<<" .. mt.getheader(conn, "{expect_header}", 0) .. ">>")
  mt.disconnect(conn)
end
local ok, err = pcall(main)
if not ok then mt.echo("FAIL: " .. tostring(err)); os.exit(1) end
"""


def run_lua(tmp_path, opendkim, raw, client_ip, header):
    script = tmp_path / "interop.lua"
    script.write_text(lua_for(raw, client_ip, header))
    code, out = run_miltertest(script, opendkim["spec"])
    assert code == 0, out + opendkim["proc"].log_tail()
    return out.split("HEADER<<", 1)[1].split(">>", 1)[0]


def test_owlery_signature_verifies_with_opendkim(tmp_path, milter_env, opendkim, dns):
    code, ctx = milter_env(dkim_sign_keys={"example.net": ["r1"]})(MSG, **OUT)
    assert code == Milter.ACCEPT
    ar = run_lua(tmp_path, opendkim, signed_copy(ctx, MSG), "192.0.2.10", "Authentication-Results")
    assert "dkim=pass" in ar and "header.d=example.net" in ar, ar


def test_owlery_signature_tampered_fails_with_opendkim(tmp_path, milter_env, opendkim, dns):
    _, ctx = milter_env(dkim_sign_keys={"example.net": ["r1"]})(MSG, **OUT)
    ar = run_lua(tmp_path, opendkim, signed_copy(ctx, MSG.replace(b"Bob", b"Rob")), "192.0.2.10",
                 "Authentication-Results")
    assert "dkim=fail" in ar, ar


def test_opendkim_signature_verifies_with_owlery(tmp_path, milter_env, opendkim, dns):
    dns.set("od1._domainkey.example.net", "TXT", opendkim["txt"])
    sig = run_lua(tmp_path, opendkim, MSG, "127.0.0.1", "DKIM-Signature")
    signed = b"DKIM-Signature:" + sig.encode().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n" + MSG
    code, ctx = milter_env(milter_spf_source="none")(signed, sender="<alice@example.net>",
                                                   client=("mail.example.net", "192.0.2.10"))
    ar = ctx.header_value("Authentication-Results")
    assert "dkim=pass" in ar and "header.s=od1" in ar, ar
