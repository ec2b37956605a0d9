"""Loggers that load the `logging` package on first use, for the in-process LDA's start-up.

The LDA starts one Python process per message. Importing `logging` (with the traceback,
linecache, tokenize, textwrap, string and weakref modules it pulls in) costs about a sixth
of that process's instructions, and with Owlery's defaults (log_target = "stderr", no
lda_log_path) the LDA writes no log line at all: pipe(8) turns its stderr into the bounce
text. So the modules on the delivery path take their logger from `get_logger(name)`:

- a call forwards to `logging.getLogger(name)`, importing `logging` on the first call;
  everything else about a logger (handlers, levels, caplog in the tests) is the real one;
- after `silence()` (the LDA when its log lines go nowhere), a call while `logging` is not
  loaded does nothing, and `logging` is never imported for it. When something else loads
  `logging` anyway (a directory or state back end's client library), the root logger gets
  a NullHandler and no last-resort handler the moment it is loaded, so no line from
  anyone reaches stderr ahead of the LDA's status line, as when the LDA set that up itself.

Daemons configure logging at start (owlery.log.setup), so for them this is a thin forward.
Tests: tests/core/test_lazylog.py, tests/delivery/test_lda_imports.py
"""

import sys

_silent = False


def silence() -> None:
    """No log lines in this process: our calls are dropped unless `logging` is loaded, and
    whenever it is loaded, its root gets a NullHandler and no last-resort handler."""
    global _silent
    _silent = True
    logging = sys.modules.get("logging")
    if logging is not None:
        _quiet(logging)
    elif not any(isinstance(f, _QuietOnLoad) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietOnLoad())


def _quiet(logging) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    logging.lastResort = None


class _QuietOnLoad:
    """A meta path finder that finds nothing itself: when `logging` is imported, it lets the
    normal finders find it and runs `_quiet` once the module has run (then it is gone)."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(name, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec

        run = loader.exec_module

        def exec_module(module):
            run(module)
            _quiet(module)
        loader.exec_module = exec_module
        return spec


class LazyLogger:
    """`logging.getLogger(name)`, looked up (and `logging` imported) at the first call."""

    __slots__ = ("name", "_real")

    def __init__(self, name: str):
        self.name = name
        self._real = None

    def _logger(self):
        real = self._real
        if real is None:
            import logging
            real = self._real = logging.getLogger(self.name)
        return real

    def _dropped(self) -> bool:
        return _silent and "logging" not in sys.modules

    def debug(self, msg, *args, **kwargs) -> None:
        if not self._dropped():
            self._logger().debug(msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs) -> None:
        if not self._dropped():
            self._logger().info(msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs) -> None:
        if not self._dropped():
            self._logger().warning(msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs) -> None:
        if not self._dropped():
            self._logger().error(msg, *args, **kwargs)

    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:
        if not self._dropped():
            self._logger().error(msg, *args, exc_info=exc_info, **kwargs)

    def critical(self, msg, *args, **kwargs) -> None:
        if not self._dropped():
            self._logger().critical(msg, *args, **kwargs)

    def log(self, level: int, msg, *args, **kwargs) -> None:
        if not self._dropped():
            self._logger().log(level, msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        return not self._dropped() and self._logger().isEnabledFor(level)

    def __getattr__(self, attr: str):
        return getattr(self._logger(), attr)


_loggers: dict = {}


def get_logger(name: str) -> LazyLogger:
    """The lazy logger for `name` (one per name)."""
    logger = _loggers.get(name)
    if logger is None:
        logger = _loggers[name] = LazyLogger(name)
    return logger
