"""A stop signal while a daemon's ports already accept but its application is still being built
is kept and acted on once the reactor runs: a clean exit (0, "stopped"), not death by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.harness.procs import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("daemon_app.py")


def test_sigterm_while_the_application_is_built_stops_cleanly(tmp_path):
    cfg = tmp_path / "app.toml"
    cfg.write_text("daemon_allow_root = true\n" if os.getuid() == 0 else "")
    gate = tmp_path / "gate"
    gate.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COREAPP_BUILD_GATE=str(gate))
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"tcp:127.0.0.1:{free_port()}"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: (gate / "building").exists(), 30, "the application being built")
        proc.send_signal(signal.SIGTERM)
        (gate / "go").touch()
        assert proc.wait(timeout=30) == 0
        assert "coreapp: stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
