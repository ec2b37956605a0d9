"""Runs Debian's pypolicyd-spf (/usr/bin/policyd-spf) with its DNS pointed at the suite's DNS stub.

Started by tests/policyd/test_spf_policyd_differential.py as
`/usr/bin/python3 tests/harness/policyd_spf_peer.py HOST PORT CONFIG` (the interpreter the
program's #! names, so it runs on Debian's pyspf and py3dns exactly as Postfix would start
it); it speaks the Postfix policy protocol on stdin/stdout. Standalone: imports nothing from
the suite (the system python has no venv). No real DNS: pyspf's DNS path is redirected before
the program runs. pyspf prefers dnspython when it is importable and falls back to py3dns
(module DNS, Debian's python3-dns), which reads /etc/resolv.conf at import; both are
pointed at the stub.
"""

import runpy
import sys

PROGRAM = "/usr/bin/policyd-spf"


def point_dns_at(host: str, port: int) -> None:
    import spf                       # imports dnspython or py3dns and reads resolv.conf
    try:
        import dns.resolver
    except ImportError:
        pass
    else:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [host]
        r.port = port
        dns.resolver.default_resolver = r
    try:
        import DNS
    except ImportError:
        DNS = None
    if DNS is not None:
        DNS.defaults["server"] = [host]
        DNS.defaults["port"] = port
    if spf.DNSLookup.__name__ == "DNSLookup_pydns" and DNS is None:
        raise SystemExit("policyd_spf_peer: pyspf uses py3dns but it cannot be imported")


def main() -> None:
    host, port, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    point_dns_at(host, port)
    sys.argv = [PROGRAM, config]
    runpy.run_path(PROGRAM, run_name="__main__")


if __name__ == "__main__":
    main()
