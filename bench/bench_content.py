"""Benchmark: the content milter's own time per message, beyond what clamd and spamd take.

Starts a private clamd and spamd (tests/harness), builds the milter exactly as `owlery milter`
does (adapter + session + stages antivirus, banned, spam, quarantine) and drives messages
through it with the fake libmilter context. Each scanner call is timed where the client
makes it; the milter's own time is the end-of-message time minus those. Also measures
a quarantined message (the durable store write, fsync included) and the stages with instant
fake scanners. Prints figures; asserts nothing.

Run: .venv/bin/python bench/bench_content.py [--messages 200]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from milters.adapter import make_factory  # noqa: E402
from milters.clients.clamav import ScanResult  # noqa: E402
from milters.clients.spamd import SpamResult  # noqa: E402
from milters.stages import StagePipeline, Services  # noqa: E402
from milters.testing import FakeMilterContext, drive  # noqa: E402
from owlery.settings import Settings  # noqa: E402
from tests.harness.clamd import Clamd  # noqa: E402
from tests.harness.spamd import Spamd  # noqa: E402


class Timed:
    """Wrap a scanner client, summing the wall time of its scan() calls."""

    def __init__(self, inner):
        self.inner, self.spent = inner, 0.0

    def scan(self, data):
        t = time.perf_counter()
        try:
            return self.inner.scan(data)
        finally:
            self.spent += time.perf_counter() - t


class Instant:
    def __init__(self, result):
        self.result = result

    def scan(self, data):
        return self.result


def small_message(i: int) -> bytes:
    return (f"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: note {i}\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <{i}@sender.test>\r\n\r\n"
            f"Hello Bob, here is note number {i}.\r\n" * 1).encode()


def attachment_message(i: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("report.txt", ("line %d of the report\n" % i) * 2000)
    payload = base64.encodebytes(buf.getvalue() + bytes(range(256)) * 200).decode().replace("\n", "\r\n")
    return (f"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: report {i}\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <a{i}@sender.test>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
            "See the attached report.\r\n--b\r\nContent-Type: application/zip; name=report.zip\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{payload}\r\n--b--\r\n").encode()


def run(cls, pipeline, messages, scanners):
    rows = []
    for raw in messages:
        for s in scanners:
            s.spent = 0.0
        ctx = FakeMilterContext()
        t = time.perf_counter()
        drive(cls(), ctx, raw, client=("mx.sender.test", "81.2.69.142"))
        total = time.perf_counter() - t
        scan = sum(s.spent for s in scanners)
        rows.append((total, scan))
    return rows


def ms(values):
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values) * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms"


def report(title, rows, size):
    total = [t for t, _ in rows]
    scan = [s for _, s in rows]
    own = [t - s for t, s in rows]
    print(f"{title} ({size} bytes, {len(rows)} messages)")
    print(f"  end-of-message total : {ms(total)}")
    print(f"  clamd + spamd        : {ms(scan)}")
    print(f"  milter's own time    : {ms(own)}   (= {len(rows) / sum(own):.0f} msg/s if only this counted)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="owlery-bench-content-"))
    work.chmod(0o755)
    print("starting clamd and spamd ...", file=sys.stderr)
    clamd = Clamd(work / "clamd").start()
    spamd = Spamd(work / "spamd").start()
    try:
        settings = Settings().replace(
            milter_inbound_stages=["antivirus", "banned", "spam", "quarantine"], milter_internal_networks=[],
            clamd_endpoint=f"unix:{clamd.socket_path}", spamd_endpoint=f"tcp:127.0.0.1:{spamd.port}",
            quarantine_directory=str(work / "quarantine"), spam_quarantine_level=6.9)
        pipeline = StagePipeline(settings, Services(resolver=None))
        av, spam = pipeline.stages["antivirus"], pipeline.stages["spam"]
        av.client, spam.client = Timed(av.client), Timed(spam.client)
        cls = make_factory(settings, pipeline)
        scanners = [av.client, spam.client]
        n = args.messages
        run(cls, pipeline, [small_message(i) for i in range(5)], scanners)     # warm up spamd children
        small = [small_message(i) for i in range(n)]
        report("Small clean message, real clamd + spamd", run(cls, pipeline, small, scanners), len(small[0]))
        big = [attachment_message(i) for i in range(max(n // 4, 10))]
        report("Message with a zip attachment, real clamd + spamd", run(cls, pipeline, big, scanners), len(big[0]))
        gtube = [small_message(i).replace(b"Hello Bob", b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-"
                                                       b"TEST-EMAIL*C.34X") for i in range(max(n // 4, 10))]
        report("GTUBE, quarantined (store write + fsync counted as the milter's own)",
               run(cls, pipeline, gtube, scanners), len(gtube[0]))
        av.client = Timed(Instant(ScanResult(False)))
        spam.client = Timed(Instant(SpamResult(0.5, 5.0, False, ())))
        report("Small clean message, instant fake scanners", run(cls, pipeline, small, [av.client, spam.client]),
               len(small[0]))
        report("Zip attachment, instant fake scanners", run(cls, pipeline, big, [av.client, spam.client]),
               len(big[0]))
    finally:
        spamd.stop()
        clamd.stop()


if __name__ == "__main__":
    main()
