"""Fixtures for the milter tests: settings, DKIM keys published in the DNS stub, a driver.

`milter_env(**settings)` builds a configured milter class over the DNS stub's resolver
and returns a `run(raw, **drive_kwargs) -> (code, ctx)` helper (FakeMilterContext).
"""

import pytest

from owlery.settings import Settings, import_section

for _section in ("milter", "milter_spf", "dkim", "dmarc", "arc"):
    import_section(_section)

DOMAIN = "example.net"


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory):
    """RSA (r1, 2048) and Ed25519 (e1) keys for example.net, ARC key a1 for example.org."""
    from milters import dkimkeys
    d = tmp_path_factory.mktemp("dkimkeys")
    records = {}
    for domain, sel, alg in ((DOMAIN, "r1", "rsa"), (DOMAIN, "e1", "ed25519"), ("example.org", "a1", "rsa"),
                             ("example.org", "r1", "rsa")):
        path, _ = dkimkeys.generate(domain, sel, str(d), algorithm=alg)
        key = dkimkeys.load_key(path, domain, sel)
        records[f"{sel}._domainkey.{domain}"] = dkimkeys.public_txt(key.key)
    return d, records


@pytest.fixture
def dns(dns_zone, key_dir):
    """The DNS stub with our public keys published (restored after the test)."""
    for name, txt in key_dir[1].items():
        dns_zone.set(name, "TXT", txt)
    return dns_zone


def make_settings(key_dir=None, **values):
    base = dict(milter_authserv_id="mx.owlery.test", milter_internal_networks=[])
    if key_dir is not None:
        base["dkim_key_directory"] = str(key_dir)
    base.update(values)
    return Settings().replace(**base)


@pytest.fixture
def milter_env(dns, key_dir):
    from milters.adapter import make_factory
    from milters.stages import StagePipeline, Services
    from milters.testing import FakeMilterContext, drive

    def build(**values):
        settings = make_settings(key_dir[0], dns_nameservers=["127.0.0.1"],
                                 dns_port=dns.port, dns_timeout=2, **values)
        from owlery.dns import build_resolver
        pipeline = StagePipeline(settings, Services(resolver=build_resolver(settings)))
        cls = make_factory(settings, pipeline)

        def run(raw, **kw):
            ctx = FakeMilterContext()
            code = drive(cls(), ctx, raw, **kw)
            return code, ctx
        run.settings = settings
        run.pipeline = pipeline
        return run
    return build
