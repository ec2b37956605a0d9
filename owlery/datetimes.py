"""datetime's classes, taken from the C module that `datetime` re-exports.

`import datetime` first runs datetime.py's whole pure-Python implementation, then replaces it
with the C classes of `_datetime` (about 4% of an in-process LDA run, which starts a Python
process per message). The classes are the very same objects (datetime.datetime is
_datetime.datetime), so modules on the delivery path write `from owlery import datetimes as _dt`
and use `_dt.datetime`, `_dt.timezone`, `_dt.timedelta` as they would datetime's.
Tests: tests/delivery/test_lda_imports.py
"""

try:
    from _datetime import date, datetime, time, timedelta, timezone
except ImportError:      # an interpreter without the C module
    from datetime import date, datetime, time, timedelta, timezone

__all__ = ["date", "datetime", "time", "timedelta", "timezone"]
