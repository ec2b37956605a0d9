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
