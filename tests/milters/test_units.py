"""Tables for the small pure parts: PSL, A-R parse/render, DKIM canonicalisation, DMARC records,
key files and `owlery dkim genkey`."""

import os
import stat

import pytest

from milters import dkimkeys, psl
from milters.effects import AuthResult
from milters.stages import authres
from milters.stages.dmarc import parse_record


@pytest.mark.parametrize("domain,org", [
    ("example.com", "example.com"),
    ("a.b.example.com", "example.com"),
    ("mail.example.co.uk", "example.co.uk"),
    ("co.uk", "co.uk"),
    ("foo.bar.github.io", "bar.github.io"),          # private section counts
    ("www.ck", "www.ck"),                            # exception rule !www.ck
    ("a.b.ck", "a.b.ck"),                            # wildcard *.ck
    ("x.example.test", "example.test"),              # unknown TLD: default rule *
    ("EXAMPLE.NET.", "example.net"),
])
def test_organizational_domain(domain, org):
    assert psl.shared().organizational_domain(domain) == org


def test_psl_shipped_with_licence_header():
    with open(psl.PACKAGED_LIST, encoding="utf-8") as f:
        head = f.read(300)
    assert "Mozilla Public" in head and "2.0" in head


@pytest.mark.parametrize("value,authserv", [
    ("mx.example.org; dkim=pass", "mx.example.org"),
    (" mx.example.org 1; none", "mx.example.org"),
    ("(comment) mx.example.org (c2); spf=pass", "mx.example.org"),
    ("mx.example.org", "mx.example.org"),
    ("", ""),
])
def test_parse_authserv_id(value, authserv):
    assert authres.parse_authserv_id(value) == authserv


def test_parse_resinfos():
    got = authres.parse_resinfos('mx; spf=pass (good) smtp.mailfrom=a@b.example; dkim=fail reason="bad; sig" header.d=b.example')
    assert got == [("spf", "pass", {"smtp.mailfrom": "a@b.example"}),
                   ("dkim", "fail", {"reason": "bad; sig", "header.d": "b.example"})]


def test_render_quotes_values_that_are_not_tokens():
    r = AuthResult("dkim", "pass", None, (("header.d", "example.net"), ("header.b", "ab/c+d")), "2048-bit key")
    assert authres.render_resinfo(r) == 'dkim=pass (2048-bit key) header.d=example.net header.b="ab/c+d"'
    assert authres.render("mx", []) == "mx; none"
    assert authres.render("mx", [r, AuthResult("spf", "none")]).startswith("mx;\n\tdkim=pass")


@pytest.mark.parametrize("name,value,canon", [
    (b"Subject", b" hello  \r\n\t world ", b"subject:hello world"),
    (b"FROM ", b"\tA  <a@x>", b"from:A <a@x>"),
    (b"X", b"", b"x:"),
])
def test_relaxed_header(name, value, canon):
    assert dkimkeys.relaxed_header(name, value) == canon


@pytest.mark.parametrize("body,canon", [
    (b"", b""),
    (b"\r\n\r\n", b""),
    (b"a  b \t\r\n\r\n\r\n", b"a b\r\n"),
    (b"a\r\n\r\nb", b"a\r\n\r\nb\r\n"),
    (b" C \r\nD \t E\r\n\r\n\r\n", b" C\r\nD E\r\n"),      # RFC 6376 3.4.5 example
    (b"lf only\n\nnext\n", b"lf only\r\n\r\nnext\r\n"),
])
def test_relaxed_body(body, canon):
    for split in range(0, len(body) + 1, max(1, len(body) // 3 or 1)):
        assert b"".join(dkimkeys.relaxed_body_chunks([body[:split], body[split:]])) == canon


def test_select_headers_oversigns():
    headers = [(b"From", b" a"), (b"To", b" b"), (b"To", b" c"), (b"Subject", b" s")]
    assert dkimkeys.select_headers(headers, ["from", "to", "cc", "subject"], ["from", "cc"]) == \
        [b"from", b"from", b"to", b"to", b"cc", b"subject"]


@pytest.mark.parametrize("txt,tags", [
    (b"v=DMARC1; p=reject; adkim=s", {"v": "DMARC1", "p": "reject", "adkim": "s"}),
    (b"v=DMARC1;p=none", {"v": "DMARC1", "p": "none"}),
    (b"v=spf1 -all", None),
    (b"p=reject; v=DMARC1", None),
    (b"\xff", None),
])
def test_parse_dmarc_record(txt, tags):
    assert parse_record(txt) == tags


def test_genkey_cli_writes_0600_key_and_prints_txt(tmp_path, capsys):
    from owlery.app.cli import main
    assert main(["dkim", "genkey", "example.org", "sel1", "--directory", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "example.org.sel1.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert out.startswith("sel1._domainkey.example.org. IN TXT (") and "v=DMARC1" not in out
    key = dkimkeys.load_key(str(path), "example.org", "sel1")
    assert key.bits == 2048 and key.algorithm == "rsa-sha256"
    txt = "".join(part.split('"')[1] for part in out.split("\n")[1:] if '"' in part)
    assert txt == dkimkeys.public_txt(key.key)
    # refuses to overwrite, accepts --force; ed25519 too
    assert main(["dkim", "genkey", "example.org", "sel1", "--directory", str(tmp_path)]) == 1
    assert main(["dkim", "genkey", "example.org", "sel2", "--type", "ed25519", "--directory", str(tmp_path)]) == 0
    assert "k=ed25519" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["bad domain", "s"], ["example.org", "bad/sel"], ["example.org", "s", "--bits", "512"]])
def test_genkey_refuses_bad_input(tmp_path, args):
    from owlery.app.cli import main
    assert main(["dkim", "genkey", *args, "--directory", str(tmp_path)]) == 1


def test_small_rsa_key_refused(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    path = tmp_path / "k.key"
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path.write_bytes(small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    with pytest.raises(ValueError, match="at least 2048"):
        dkimkeys.load_key(str(path), "example.org", "s", min_rsa_bits=2048)


def test_missing_key_stops_the_milter_at_start(tmp_path):
    from milters.stages import ConfigError, Services
    from milters.stages.dkim_sign import DkimSign
    from .conftest import make_settings
    with pytest.raises(ConfigError, match="cannot read"):
        DkimSign(make_settings(tmp_path, dkim_sign_keys={"example.org": ["nope"]}), Services(None))
