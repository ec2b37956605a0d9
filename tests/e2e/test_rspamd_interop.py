"""DKIM and ARC interop with Rspamd 3.4 (Debian package) and OpenDKIM, both directions.

- Rspamd DKIM-signs and ARC-seals; our dkim_verify and arc_verify stages pass them, and fail
  them once the body changed;
- our dkim_sign and arc_seal output gets Rspamd's R_DKIM_ALLOW and ARC_ALLOW, and
  R_DKIM_REJECT / ARC_REJECT after a body change;
- mixed chains: Rspamd seals i=1 and we seal i=2 on top (Rspamd validates it), and the
  other way round (we validate it);
- OpenDKIM's verifier (`opendkim -t`, keys from TestPublicKeys, no DNS) passes our signature.
Our stages run in process through the adapter and a fake libmilter context (milters/testing.py);
keys are published in the session DNS stub, which both sides ask. Rspamd is one per module
(tests/harness/rspamd.py, ~0.5 s to start).
"""

import re
import shutil
import subprocess

import Milter
import pytest

from milters import dkimkeys
from owlery.settings import Settings, import_section
from tests.harness.rspamd import (ARC_FAIL, ARC_PASS, DKIM_FAIL, DKIM_PASS, Rspamd, apply_headers)

for _section in ("milter", "milter_spf", "dkim", "dmarc", "arc"):
    import_section(_section)

AUTHSERV = "mx.owlery.test"
# example.net: the author's domain (signed by us as r1, by Rspamd as rs1);
# example.org: the forwarder's ARC domain (sealed by us as a1, by Rspamd as arc1).
KEYS = (("example.net", "r1"), ("example.net", "rs1"), ("example.org", "a1"), ("example.org", "arc1"))
MSG = (b"From: Alice <alice@example.net>\r\nTo: bob@example.org\r\nSubject: interop  check\r\n"
       b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <interop@example.net>\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
       b"Hello Bob,\r\n\r\n  this went through Rspamd and Owlery.  \r\n\r\n\r\n")
OUTSIDE = dict(sender="<alice@example.net>", client=("relay.example.com", "192.0.2.99"))
AUTHED = dict(sender="<alice@example.net>", mail_macros={"{auth_authen}": "alice"})


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("interop-keys")
    paths, txt = {}, {}
    for domain, sel in KEYS:
        path, _ = dkimkeys.generate(domain, sel, str(d))
        paths[(domain, sel)] = path
        txt[f"{sel}._domainkey.{domain}"] = dkimkeys.public_txt(dkimkeys.load_key(path, domain, sel).key)
    return d, paths, txt


@pytest.fixture(scope="module")
def dns(dns_stub, keys):
    saved = dns_stub.snapshot()
    for name, value in keys[2].items():
        dns_stub.set(name, "TXT", value)
    dns_stub.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    yield dns_stub
    dns_stub.restore(saved)


@pytest.fixture(scope="module")
def rspamd(harness_dirs, dns, keys):
    paths = keys[1]
    server = Rspamd(harness_dirs("rspamd-interop"), dns.port,
                    dkim_keys={"example.net": ("rs1", paths[("example.net", "rs1")])},
                    arc_keys={"example.org": ("arc1", paths[("example.org", "arc1")])}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def owlery(dns, keys):
    """build(**settings) -> run(raw, **drive kwargs) -> (code, FakeMilterContext)."""
    from milters.adapter import make_factory
    from milters.stages import StagePipeline, Services
    from milters.testing import FakeMilterContext, drive
    from owlery.dns import build_resolver

    def build(**values):
        settings = Settings().replace(milter_authserv_id=AUTHSERV, milter_internal_networks=[],
                                      dkim_key_directory=str(keys[0]), dns_nameservers=["127.0.0.1"],
                                      dns_port=dns.port, dns_timeout=2, **values)
        cls = make_factory(settings, StagePipeline(settings, Services(resolver=build_resolver(settings))))

        def run(raw, **kw):
            ctx = FakeMilterContext()
            return drive(cls(), ctx, raw, **kw), ctx
        return run
    return build


@pytest.fixture(scope="module")
def verifier(owlery):
    return owlery(milter_inbound_stages=["dkim_verify", "arc_verify", "authres"])


@pytest.fixture(scope="module")
def signer(owlery):
    return owlery(dkim_sign_keys={"example.net": ["r1"]})


@pytest.fixture(scope="module")
def sealer(owlery):
    return owlery(milter_inbound_stages=["dkim_verify", "arc_verify", "authres", "arc_seal"],
                  arc_seal_domain="example.org", arc_seal_selector="a1")


def with_our_headers(ctx, raw):
    """The message as the next hop sees it: the headers our milter added on top (LF folds -> CRLF)."""
    added = [(n, v) for n, v, idx in ctx.added if idx == 0]
    top = b"".join(f"{n}:{v}".replace("\r\n", "\n").replace("\n", "\r\n").encode() + b"\r\n"
                   for n, v in reversed(added))
    return top + raw


def results(ctx):
    """Our Authentication-Results, unfolded."""
    return " ".join(ctx.header_value("Authentication-Results").split())


def tamper(raw):
    out = raw.replace(b"went through", b"went around")
    assert out != raw
    return out


def rspamd_signed(rspamd):
    """MSG DKIM-signed by Rspamd for an authenticated user (d=example.net s=rs1)."""
    reply = rspamd.check(MSG, ip="192.0.2.44", sender="alice@example.net", rcpts=["bob@example.org"], user="alice")
    assert "DKIM_SIGNED" in reply["symbols"], reply
    return apply_headers(MSG, reply)


def rspamd_sealed(rspamd, raw):
    """raw ARC-sealed by Rspamd as a forwarder would (d=example.org s=arc1)."""
    reply = rspamd.check(raw, ip="192.0.2.10", sender="alice@example.net", rcpts=["bob@example.org"])
    assert "ARC_SIGNED" in reply["symbols"], reply
    return apply_headers(raw, reply)


def rspamd_verdict(rspamd, raw):
    return rspamd.symbols(raw, ip="192.0.2.77", sender="alice@example.net", rcpts=["bob@example.org"])


# ---- Rspamd signs and seals, Owlery verifies -------------------------------------------------
def test_rspamd_dkim_signature_and_arc_set_pass_our_stages(rspamd, verifier):
    raw = rspamd_sealed(rspamd, rspamd_signed(rspamd))
    assert b"s=rs1" in raw and b"ARC-Seal: i=1; s=arc1; d=example.org" in raw
    code, ctx = verifier(raw, **OUTSIDE)
    assert code == Milter.ACCEPT
    ar = results(ctx)
    assert "dkim=pass" in ar and "header.s=rs1" in ar and "arc=pass" in ar, ar


def test_rspamd_signed_then_body_changed_fails_our_stages(rspamd, verifier):
    raw = tamper(rspamd_sealed(rspamd, rspamd_signed(rspamd)))
    _, ctx = verifier(raw, **OUTSIDE)
    ar = results(ctx)
    assert "dkim=fail" in ar and "arc=fail" in ar and "pass" not in ar, ar


# ---- Owlery signs and seals, Rspamd verifies -------------------------------------------------
def our_signed_and_sealed(signer, sealer):
    code, ctx = signer(MSG, **AUTHED)
    assert code == Milter.ACCEPT
    signed = with_our_headers(ctx, MSG)
    code, ctx = sealer(signed, **OUTSIDE)
    assert code == Milter.ACCEPT
    sealed = with_our_headers(ctx, signed)
    assert re.search(rb"ARC-Seal: i=1;[^:]*s=a1", sealed), sealed[:3000]
    return sealed


def test_our_dkim_signature_and_arc_set_pass_rspamd(rspamd, signer, sealer):
    symbols = rspamd_verdict(rspamd, our_signed_and_sealed(signer, sealer))
    assert {DKIM_PASS, ARC_PASS} <= symbols, symbols
    assert not {DKIM_FAIL, ARC_FAIL} & symbols


def test_our_signature_with_changed_body_fails_in_rspamd(rspamd, signer, sealer):
    symbols = rspamd_verdict(rspamd, tamper(our_signed_and_sealed(signer, sealer)))
    assert {DKIM_FAIL, ARC_FAIL} <= symbols, symbols
    assert not {DKIM_PASS, ARC_PASS} & symbols


# ---- mixed chains: each side adds the second hop to the other's first ---------------------------
def test_rspamd_first_hop_then_ours_validates_in_rspamd(rspamd, sealer):
    first = rspamd_sealed(rspamd, rspamd_signed(rspamd))
    code, ctx = sealer(first, **OUTSIDE)
    assert code == Milter.ACCEPT
    second = with_our_headers(ctx, first)
    # our seal records Rspamd's set as valid (cv=pass at i=2)
    assert re.search(rb"ARC-Seal: i=2;[^:]*cv=pass", second), second[:3000]
    symbols = rspamd_verdict(rspamd, second)
    assert ARC_PASS in symbols and DKIM_PASS in symbols, symbols


def test_our_first_hop_then_rspamd_validates_in_ours(rspamd, signer, sealer, verifier):
    first = our_signed_and_sealed(signer, sealer)
    second = rspamd_sealed(rspamd, first)
    assert b"i=2" in second.split(b"From: Alice")[0]
    _, ctx = verifier(second, **OUTSIDE)
    ar = results(ctx)
    assert "arc=pass" in ar and "dkim=pass" in ar, ar


# ---- OpenDKIM ------------------------------------------------------------------------------
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


def opendkim_verify(tmp_path, raw, keys_txt):
    """`opendkim -t FILE`: its verifier over one message, keys from TestPublicKeys (no DNS);
    returns (exit status, output). OpenDKIM logs its verdict to stderr with -v."""
    (tmp_path / "keys").write_text("".join(f"{name} {value}\n" for name, value in keys_txt.items()))
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Mode v\nTestPublicKeys {tmp_path / 'keys'}\nSyslog no\nAlwaysAddARHeader yes\n"
                    f"AuthservID {AUTHSERV}\nMinimumKeyBits 1024\n")
    msg = tmp_path / "msg.eml"
    msg.write_bytes(raw)
    done = subprocess.run([OPENDKIM, "-x", str(conf), "-vvv", "-t", str(msg)], capture_output=True, text=True,
                          timeout=30)
    return done.returncode, done.stdout + done.stderr


def test_opendkim_verifies_our_signature(tmp_path, signer, keys):
    code, ctx = signer(MSG, **AUTHED)
    signed = with_our_headers(ctx, MSG)
    status, out = opendkim_verify(tmp_path, signed, keys[2])
    assert status == 0 and "verification (s=r1, d=example.net, 2048-bit key) succeeded" in out, out
    status, out = opendkim_verify(tmp_path, tamper(signed), keys[2])
    assert re.search(r"verification \(s=r1 d=example\.net.*\) failed", out) and "succeeded" not in out, out
