"""owlery.lazylog: loggers that import `logging` only when a line is written somewhere.

Each case runs in a fresh interpreter (python -I -S, as the LDA starts): whether `logging` gets
imported is a property of a whole process, and pytest itself has loaded it here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child(code: str) -> tuple[dict, str]:
    """Run `code` (it fills the dict `out`) in a fresh interpreter: (out, stderr)."""
    prelude = f"import json, sys\nsys.path.insert(0, {str(ROOT)!r})\nout = {{}}\n"
    epilogue = "\nsys.stdout.write(json.dumps(out))\n"
    r = subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code + epilogue],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def test_silenced_calls_import_nothing_and_write_nothing():
    out, err = child("""
from owlery.lazylog import get_logger, silence
silence()
log = get_logger("owlery.delivery")
log.warning("dropped %s", 1)
log.error("dropped")
log.exception("dropped")
log.log(40, "dropped")
out["enabled"] = log.isEnabledFor(50)
out["logging"] = "logging" in sys.modules
""")
    assert out == {"enabled": False, "logging": False}
    assert err == ""


def test_logging_loaded_later_by_someone_else_stays_quiet():
    # a back end's client library importing logging after the LDA silenced it: neither its
    # lines nor ours reach stderr (pipe(8) makes stderr the bounce text)
    out, err = child("""
from owlery.lazylog import get_logger, silence
silence()
import logging
logging.getLogger("some.library").warning("library warning")
get_logger("owlery.delivery").error("our error")
out["lastResort"] = logging.lastResort is None
out["null"] = [type(h).__name__ for h in logging.getLogger().handlers]
""")
    assert out == {"lastResort": True, "null": ["NullHandler"]}
    assert err == ""


def test_silence_when_logging_is_already_loaded():
    out, err = child("""
import logging
from owlery.lazylog import get_logger, silence
silence()
get_logger("owlery.delivery").warning("ours")
logging.getLogger("x").warning("theirs")
out["handlers"] = [type(h).__name__ for h in logging.getLogger().handlers]
""")
    assert out == {"handlers": ["NullHandler"]}
    assert err == ""


def test_not_silenced_the_first_call_loads_logging_and_writes_through_it():
    out, err = child("""
from owlery.lazylog import get_logger
log = get_logger("owlery.delivery")
out["before"] = "logging" in sys.modules
log.warning("hello %s", "world")
out["after"] = "logging" in sys.modules
import logging
out["same"] = log._logger() is logging.getLogger("owlery.delivery")
out["level"] = log.getEffectiveLevel()      # anything else is the real logger's
""")
    assert out == {"before": False, "after": True, "same": True, "level": 30}
    assert err == "hello world\n"          # logging's last-resort handler, as for any logger


def test_records_reach_the_handlers_of_the_real_logger(caplog):
    from owlery.lazylog import get_logger
    log = get_logger("owlery.test-lazylog")
    assert get_logger("owlery.test-lazylog") is log
    with caplog.at_level("INFO", logger="owlery.test-lazylog"):
        log.info("one %d", 1)
        log.debug("not at INFO")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("INFO", "one 1"), ("ERROR", "failed")]
    assert caplog.records[1].exc_info[0] is ValueError
