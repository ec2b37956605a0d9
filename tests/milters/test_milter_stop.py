"""The milter stops cleanly on Ctrl-C under `owlery run`: SIGINT and SIGTERM together, idle.

libmilter's own signal thread and ours both wait for the stop signals; whichever takes
which, the process must exit 0 without a traceback (it printed `milter.error: cannot run
main` about half the time before). Several rounds, since one round may not interleave badly.
"""

import signal

from tests.harness.owlery_milter import MilterProcess


def test_sigint_plus_sigterm_stop_the_milter_cleanly(tmp_path):
    for round_ in range(6):
        milter = MilterProcess(tmp_path / f"r{round_}").start()
        milter.proc.popen.send_signal(signal.SIGINT)
        milter.proc.popen.send_signal(signal.SIGTERM)
        status = milter.proc.popen.wait(timeout=30)
        log = milter.log()
        assert status == 0, log
        assert "Traceback" not in log and "milter: stopped" in log, log
