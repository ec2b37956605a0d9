"""The running `owlery milter` process driven by Debian's miltertest (an independent milter client)."""

from pathlib import Path

import pytest

from tests.harness.owlery_milter import MilterProcess, run_miltertest

LUA = Path(__file__).parent / "lua"


@pytest.fixture(scope="module")
def running_milter(tmp_path_factory, key_dir):
    workdir = tmp_path_factory.mktemp("miltertest")
    config = (f'milter_authserv_id = "mx.owlery.test"\nmilter_spf_source = "none"\n'
              f'milter_inbound_stages = ["dkim_verify", "authres"]\n'
              f'milter_internal_networks = []\n'
              f'dkim_key_directory = "{key_dir[0]}"\n'
              f'dkim_sign_keys = {{ "example.net" = ["r1"] }}\n')
    with MilterProcess(workdir, config, listen="unix") as proc:
        yield proc


@pytest.mark.parametrize("script", ["inbound.lua", "sign.lua"])
def test_miltertest_script(running_milter, script):
    code, out = run_miltertest(LUA / script, running_milter.miltertest_spec, authserv="mx.owlery.test")
    assert code == 0 and "PASS" in out, out + "\n" + running_milter.log()[-2000:]


def test_decision_lines_logged(running_milter):
    run_miltertest(LUA / "inbound.lua", running_milter.miltertest_spec, authserv="mx.owlery.test")
    running_milter.wait_log("milter: MTQID1: accept: END-OF-MESSAGE from mail.example.net[192.0.2.10]")


def test_sigterm_stops_cleanly(tmp_path):
    proc = MilterProcess(tmp_path, 'milter_inbound_stages = ["authres"]', listen="unix").start()
    assert proc.stop() == 0, proc.log()          # SIGTERM, not the harness's SIGKILL fallback
    assert "milter: stopped" in proc.log()
    assert not (tmp_path / "milter.sock").exists()


def test_bad_configuration_exits_1_with_a_clear_message(tmp_path):
    import subprocess
    import sys
    cfg = tmp_path / "bad.toml"
    cfg.write_text('dkim_sign_keys = { "example.org" = ["missing"] }\ndkim_key_directory = "/nonexistent"\n'
                   'daemon_allow_root = true\n')
    done = subprocess.run([sys.executable, "-m", "owlery.app.cli", "milter", "--config", str(cfg),
                           "--listen", f"unix:{tmp_path}/m.sock"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cannot read /nonexistent/example.org.missing.key" in done.stderr


# Protocol option bits (libmilter's mfdef.h): what Postfix 3 offers in its negotiation.
SMFIP_NOEOH, SMFIP_NR_HDR, SMFIP_NOUNKNOWN = 0x40, 0x80, 0x100
SMFIP_NR_STEPS = 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x80000   # connect helo mail rcpt body
SMFIP_NR_DATA = 0x10000
SMFIP_HDR_LEADSPC = 0x100000
POSTFIX_OFFER = 0x1FFFFF


def negotiate_as_postfix(path):
    """Send Postfix's SMFIC_OPTNEG (version 6, every action and protocol option) over the unix
    socket at `path`; return the milter's answer (actions, protocol, {stage: macro list})."""
    import socket
    import struct

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(struct.pack("!IcIII", 13, b"O", 6, 0x1FF, POSTFIX_OFFER))
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
            chunk = s.recv(4096)
            assert chunk, "the milter closed the connection while negotiating"
            data += chunk
        s.sendall(struct.pack("!Ic", 1, b"Q"))
    size, = struct.unpack("!I", data[:4])
    body = data[4:4 + size]
    assert body[:1] == b"O", body
    _, actions, protocol = struct.unpack("!III", body[1:13])
    lists, rest = {}, body[13:]
    while rest:
        stage, = struct.unpack("!I", rest[:4])
        names, _, rest = rest[4:].partition(b"\0")
        lists[stage] = names.decode()
    return actions, protocol, lists


def test_negotiation_asks_for_no_replies_leading_spaces_and_macro_lists(running_milter):
    """Before, pymilter's Base.setsymlist failed inside the negotiation and libmilter answered
    with no option at all: Postfix then waited for an answer to every step and every header."""
    actions, protocol, lists = negotiate_as_postfix(running_milter.path)
    assert protocol & SMFIP_NR_STEPS == SMFIP_NR_STEPS and protocol & SMFIP_NR_HDR, hex(protocol)
    assert protocol & (SMFIP_NOEOH | SMFIP_NOUNKNOWN) == SMFIP_NOEOH | SMFIP_NOUNKNOWN, hex(protocol)
    assert protocol & SMFIP_HDR_LEADSPC, hex(protocol)
    assert not protocol & SMFIP_NR_DATA, hex(protocol)      # see OwleryMilter.data
    assert lists == {0: "j {daemon_name} {client_addr} {client_name} {daemon_addr}",
                     2: "i {auth_authen} {auth_type} {mail_addr} {auth_author}", 5: "i"}
    assert actions & 0x100      # SMFIF_SETSYMLIST, which the lists need
    assert "negotiation failed" not in running_milter.log()
