"""Profile: CPU per message of the inbound milter path, in process, without network or real DNS.

Drives the same message bench/bench_milter.py sends (DKIM-signed by example.net, RSA 2048,
relaxed/relaxed; its generator and key functions are reused) through the inbound stage set
(spf, dkim_verify, arc_verify, dmarc, authres) with the settings bench_milter gives Owlery,
one new connection per message as smtp-source makes them. DNS is the milter's own resolver
(milters.adapter.stage_resolver: dnspython with its answer cache) whose nameserver queries
are answered from memory (SPF, DKIM key and DMARC records, TTL 300, NXDOMAIN otherwise).
Two layers:
- `session`: milters.session.MilterSession driven directly (connect .. end_of_message);
- `adapter`: milters.adapter's OwleryMilter (pymilter callbacks, macros, effects applied)
  over milters.testing's fake libmilter context (no libmilter thread, no socket), after the
  protocol negotiation Postfix would have (no-reply steps, P_HDR_LEADSPC, macro lists).
Prints CPU microseconds per message (process time, median of --repeat runs) for each layer,
then a cProfile of --messages messages with the top functions by own and cumulative time.

Usage: .venv/bin/python bench/profile_milter.py [--messages 2000] [--repeat 3]
       [--layer session|adapter|both] [--top 30] [--no-profile] [--size 4000] [--stages spf,...]
(`--stages ""`: no stage, what the session and the adapter cost by themselves.)
Talks to: nothing (a temporary directory for the key).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_milter import DOMAIN, RCPT, SELECTOR, SENDER, signed_message  # noqa: E402

from milters import dkimkeys  # noqa: E402
from milters.testing import split_message  # noqa: E402

CLIENT = ("mx.example.net", "127.0.0.1")


INBOUND = ["spf", "dkim_verify", "arc_verify", "dmarc", "authres"]
POSTFIX_OFFER = (0x1FF, 0x1FFFFF, 0, 0)     # actions, protocol options Postfix 3 offers (SMFIC_OPTNEG)


def make_settings(stages=INBOUND):
    """The settings bench_milter's start_owlery_inbound gives Owlery."""
    from owlery.settings import Settings, import_section
    for section in ("milter", "milter_spf", "dkim", "dmarc", "arc"):
        import_section(section)
    return Settings().replace(
        milter_inbound_stages=list(stages),
        milter_internal_networks=[], milter_authserv_id="mx.example.test",
        dns_nameservers=["127.0.0.1"], dns_port=53, dns_timeout=5, log_level="warning")


def memory_dns(records: dict[str, list[str]]) -> None:
    """Answer every nameserver query of dnspython from `records` (name -> TXT strings)."""
    import dns.flags
    import dns.message
    import dns.nameserver
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset

    def answer(request):
        response = dns.message.make_response(request)
        response.flags |= dns.flags.AA
        q = request.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        if name in records and q.rdtype == dns.rdatatype.TXT:
            texts = [" ".join('"' + t[i:i + 255] + '"' for i in range(0, len(t), 255)) for t in records[name]]
            response.answer.append(dns.rrset.from_text_list(q.name, 300, dns.rdataclass.IN, dns.rdatatype.TXT,
                                                            texts))
        elif name not in records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return dns.message.from_wire(response.to_wire())     # as a server's answer is read

    def query(self, request, timeout, source, source_port, max_size, one_rr_per_rrset=False,
              ignore_trailing=False):
        return answer(request)

    dns.nameserver.Do53Nameserver.query = query


def build(size: int, tmp: Path, stages=INBOUND):
    key_path, _ = dkimkeys.generate(DOMAIN, SELECTOR, str(tmp))
    key = dkimkeys.load_key(str(key_path), DOMAIN, SELECTOR)
    memory_dns({f"{SELECTOR}._domainkey.{DOMAIN}": [dkimkeys.public_txt(key.key)],
                DOMAIN: ["v=spf1 ip4:127.0.0.1 -all"],
                f"_dmarc.{DOMAIN}": ["v=DMARC1; p=none"]})
    # As Postfix hands it over: LF line ends in the file, CRLF on the wire.
    raw = signed_message(Path(key_path), size)
    settings = make_settings(stages)
    from owlery import log as owlery_log
    owlery_log.setup(settings, "milter")
    from milters.adapter import stage_resolver
    from milters.stages import Services, StagePipeline
    pipeline = StagePipeline(settings, Services(resolver=stage_resolver(settings)))
    return settings, pipeline, raw


def session_runner(settings, pipeline, raw, stage_times=None):
    from milters.session import MilterSession
    fields, body = split_message(raw)

    def one(n: int) -> str:
        session = MilterSession(settings, pipeline)
        if stage_times is not None:
            session.timer = time.process_time
        session.connect(CLIENT[0], CLIENT[1], {"j": "mx.example.test", "{daemon_name}": "smtpd",
                                               "{client_addr}": CLIENT[1], "{client_name}": CLIENT[0]})
        session.helo(CLIENT[0], {})
        session.mail_from(f"<{SENDER}>", (), {})
        session.rcpt(f"<{RCPT}>", (), {"{rcpt_addr}": RCPT})
        session.data({"i": f"Q{n}"})
        for name, value in fields:
            session.header(name, value)
        session.end_of_headers({})
        session.body(body)
        outcome = session.end_of_message({"i": f"Q{n}"})
        session.close()
        if stage_times is not None:
            for stage, seconds in session.last_timings:
                stage_times[stage] = stage_times.get(stage, 0.0) + seconds
        return outcome.action
    return one


def adapter_runner(settings, pipeline, raw):
    import Milter

    from milters.adapter import make_factory
    from milters.testing import FakeMilterContext
    factory = make_factory(settings, pipeline)
    fields, body = split_message(raw)
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    check_dkim = "dkim_verify" in settings.milter_inbound_stages and "authres" in settings.milter_inbound_stages
    connect_macros = {"j": "mx.example.test", "{daemon_name}": "smtpd", "{client_addr}": CLIENT[1],
                      "{client_name}": CLIENT[0], "{daemon_addr}": "127.0.0.1"}

    def one(n: int) -> str:
        ctx = FakeMilterContext(macros=dict(connect_macros))
        milter = factory()
        milter._setctx(ctx)
        opts = list(POSTFIX_OFFER)
        if milter.negotiate(opts) != Milter.CONTINUE or not opts[1] & Milter.P_NR_HDR:
            raise SystemExit(f"negotiation failed: {opts}")      # every step would answer Postfix
        milter.connect(CLIENT[0], socket.AF_INET, (CLIENT[1], 40000))
        milter.hello(CLIENT[0])
        milter.envfrom(f"<{SENDER}>")
        ctx.macros["i"] = f"Q{n}"
        milter.envrcpt(f"<{RCPT}>")
        milter.data()
        for name, value in fields:
            milter.header(name, value)
        milter.eoh()
        for chunk in chunks:
            milter.body(chunk)
        code = milter.eom()
        milter.close()
        if code != Milter.ACCEPT or (check_dkim and not any("dkim=pass" in v for n_, v, _ in ctx.added)):
            raise SystemExit(f"unexpected result {code}: {ctx.added} {ctx.replies}")
        return "accept"
    return one


def cpu_per_message(one, messages: int) -> float:
    started = time.process_time()
    for n in range(messages):
        one(n)
    return (time.process_time() - started) * 1e6 / messages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per layer (the median is printed)")
    ap.add_argument("--layer", choices=("session", "adapter", "both"), default="both")
    ap.add_argument("--top", type=int, default=30, help="functions listed per profile ordering")
    ap.add_argument("--size", type=int, default=4000, help="message body size (bytes), as bench_milter")
    ap.add_argument("--no-profile", action="store_true", help="only the timed runs")
    ap.add_argument("--stages", default=",".join(INBOUND),
                    help='comma-separated inbound stages; "" measures the session and adapter alone')
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="owlery-profile-") as tmp:
        settings, pipeline, raw = build(args.size, Path(tmp), [s for s in args.stages.split(",") if s])
        layers = ["session", "adapter"] if args.layer == "both" else [args.layer]
        runners = {"session": session_runner, "adapter": adapter_runner}
        print(f"# {args.messages} messages of {len(raw)} bytes, stages {','.join(settings.milter_inbound_stages)}, "
              f"median of {args.repeat}")
        try:
            for layer in layers:
                one = runners[layer](settings, pipeline, raw)
                if one(0) != "accept":
                    raise SystemExit(f"{layer}: the message was not accepted")
                cpu_per_message(one, min(200, args.messages))        # warm-up: caches, imports
                runs = [cpu_per_message(one, args.messages) for _ in range(args.repeat)]
                print(f"{layer:8s} CPU {statistics.median(runs):8.1f} us/message  "
                      f"(runs: {', '.join(f'{r:.1f}' for r in runs)})", flush=True)
            stage_times: dict[str, float] = {}
            one = session_runner(settings, pipeline, raw, stage_times)
            cpu_per_message(one, args.messages)
            print("stages   CPU " + ", ".join(f"{stage} {seconds * 1e6 / args.messages:.1f}"
                                          for stage, seconds in stage_times.items())
                  + f" us/message (total {sum(stage_times.values()) * 1e6 / args.messages:.1f})", flush=True)
            if not args.no_profile:
                for layer in layers:
                    one = runners[layer](settings, pipeline, raw)
                    profiler = cProfile.Profile()
                    profiler.enable()
                    for n in range(args.messages):
                        one(n)
                    profiler.disable()
                    for order in ("tottime", "cumulative"):
                        out = io.StringIO()
                        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
                        text = out.getvalue()
                        print(f"\n## {layer}: top {args.top} by {order}\n" + text[text.find("   ncalls"):].rstrip())
        finally:
            pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
