"""Benchmark: parse+validate and execute time of a typical 30-rule user Sieve script,
uncached (compile every time) and cached (ScriptCache hit), printing figures.

Run: .venv/bin/python bench/bench_sieve.py [ITERATIONS]
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, ScriptCache, compile_script, run

RULES = []
for i in range(10):
    RULES.append(f'if address :is :domain "from" "list{i}.example.com" {{ fileinto "INBOX.Lists.l{i}"; stop; }}')
for i in range(8):
    RULES.append(f'if header :contains "subject" ["[topic{i}]", "topic-{i}:"] {{ addflag "\\\\Flagged"; '
                 f'fileinto "INBOX.Topics.t{i}"; }}')
for i in range(4):
    RULES.append(f'if envelope :detail "to" "tag{i}" {{ fileinto :create "INBOX.Tags.${{1}}x{i}"; }}')
RULES += [
    'if header :matches "subject" "*invoice*" { set "subj" "${1}"; fileinto "INBOX.Invoices"; }',
    'if header :regex "x-mailer" "^(Outlook|Thunderbird) [0-9]+" { addflag "mua"; }',
    'if allof (header :contains "x-spam-flag" "YES", not address :is "from" "boss@example.com") '
    '{ fileinto "INBOX.Junk"; stop; }',
    'if spamtest :value "ge" :comparator "i;ascii-numeric" "7" { fileinto "INBOX.Junk"; stop; }',
    'if size :over 10M { fileinto "INBOX.Big"; }',
    'if body :text :contains ["unsubscribe", "opt out"] { addflag "bulk"; }',
    'if date :is "date" "weekday" ["0", "6"] { addflag "weekend"; }',
    'if header :contains "subject" "out of office" { discard; stop; }',
]
SCRIPT = ('require ["fileinto", "imap4flags", "envelope", "subaddress", "variables", "regex", "body", '
          '"date", "relational", "comparator-i;ascii-numeric", "spamtest", "mailbox"];\n'
          + "\n".join(RULES) + "\nkeep;\n")
MESSAGE = (b"Return-Path: <alice@example.com>\r\nReceived: from mx.example.com by mx.example.org; "
           b"Mon, 6 May 2024 07:08:09 +0000\r\nFrom: Alice <alice@example.com>\r\n"
           b"To: Bob <bob@example.org>\r\nSubject: Re: your invoice for May\r\n"
           b"Date: Mon, 6 May 2024 07:08:09 +0000\r\nMessage-ID: <1234@example.com>\r\n"
           b"X-Mailer: Thunderbird 115\r\nX-Spam-Score: 1.5\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"Hello Bob, see the invoice.\r\n" * 40)


def timeit(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    settings = Settings()
    rules = SCRIPT.count("\nif ") + 1
    env = Envelope("alice@example.com", "bob+tag1@example.org", "bob@example.org")
    host = MemoryHost()
    now = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "user.sieve")
        with open(path, "w") as f:
            f.write(SCRIPT)
        compile_t = timeit(lambda: compile_script(SCRIPT, settings=settings), n)
        cache = ScriptCache(settings)
        cache.load(path)
        cached_t = timeit(lambda: cache.load(path), n * 10)
        script = cache.load(path)
        exec_t = timeit(lambda: run(script, MESSAGE, env, host=host, settings=settings, now=now), n)
        uncached_total = timeit(lambda: run(compile_script(SCRIPT, settings=settings), MESSAGE, env,
                                            host=host, settings=settings, now=now), n)
        cached_total = timeit(lambda: run(cache.load(path), MESSAGE, env, host=host, settings=settings,
                                          now=now), n)
    r = run(script, MESSAGE, env, host=host, settings=settings, now=now)
    print(f"script: {rules} rules, {len(SCRIPT)} bytes; message {len(MESSAGE)} bytes; {n} iterations")
    print(f"result: {r.status}; {'; '.join(r.describe())}")
    print(f"parse+validate (uncached):  {compile_t * 1e3:8.3f} ms")
    print(f"cache lookup (stat + hit):  {cached_t * 1e3:8.3f} ms")
    print(f"execute:                    {exec_t * 1e3:8.3f} ms")
    print(f"delivery, uncached:         {uncached_total * 1e3:8.3f} ms  ({1 / uncached_total:7.0f} runs/s)")
    print(f"delivery, cached:           {cached_total * 1e3:8.3f} ms  ({1 / cached_total:7.0f} runs/s)")


if __name__ == "__main__":
    main()
