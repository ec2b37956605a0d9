"""`owlery sieve extensions`: every extension a script may require, with the RFC (or other
specification) it comes from and a one-line description, generated from the registry
(sieve.extensions.REGISTRY; specifications in sieve/extensions/specs.py or declared by an
extension's own Extension(rfc=..., summary=...))."""

from __future__ import annotations

import re

import pytest

from owlery.app.cli import main
from sieve.extensions import REGISTRY, capabilities
from owlery.settings import Settings

SPEC = re.compile(r"(RFC \d{4}( section [\d.]+)?)(, RFC \d{4}( section [\d.]+)?)*|draft-[a-z0-9-]+|vendor \(.+\)")


def test_every_registered_extension_declares_its_specification():
    missing = [n for n, e in REGISTRY.items() if not SPEC.fullmatch(e.rfc or "")]
    assert not missing, (f"extensions without a specification: {missing}; declare rfc=... and summary=... "
                         f"on their Extension(...) or add them to sieve/extensions/specs.py")
    no_summary = [n for n, e in REGISTRY.items() if not (e.summary or "").strip()]
    assert not no_summary, f"extensions without a one-line description: {no_summary}"


def test_specifications_name_real_registered_extensions():
    from sieve.extensions.specs import SPECS
    assert set(SPECS) <= set(REGISTRY), f"specs for unknown extensions: {set(SPECS) - set(REGISTRY)}"
    # spot checks against the RFCs themselves
    assert REGISTRY["fileinto"].rfc.startswith("RFC 5228")
    assert REGISTRY["variables"].rfc == "RFC 5229"
    assert REGISTRY["imap4flags"].rfc == "RFC 5232"
    assert REGISTRY["include"].rfc == "RFC 6609"
    assert REGISTRY["comparator-i;unicode-casemap"].rfc == "RFC 5051"


def test_owlery_sieve_extensions_lists_every_capability(capsys):
    assert main(["sieve", "extensions"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    # off by default, as in Pigeonhole (vnd.dovecot.report and the deprecated imapflags and
    # notify): listed, marked, not a capability
    off = set(Settings().sieve_extensions_disabled)
    assert {"vnd.dovecot.report", "imapflags", "notify"} <= off
    for name in off:
        assert lines.pop(name).endswith("(disabled)"), name
    caps = capabilities(Settings())
    assert caps and set(caps) == set(lines), set(caps) ^ set(lines)
    for name in caps:
        e = REGISTRY[name]
        assert e.rfc in lines[name] and e.summary in lines[name], lines[name]
    assert "vnd.dovecot.testsuite" not in lines          # hidden: harness only
    assert "RFC 5173" in lines["body"] and "RFC 5230" in lines["vacation"]


def test_disabled_extensions_are_marked(tmp_path, capsys):
    conf = tmp_path / "owlery.toml"
    conf.write_text('sieve_extensions_disabled = ["vacation"]\n')
    assert main(["sieve", "extensions", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    vac = [line for line in out.splitlines() if line.split()[:1] == ["vacation"]]
    assert vac and vac[0].endswith("(disabled)")
    assert not any(line.endswith("(disabled)") for line in out.splitlines() if "fileinto" in line)


def test_sieve_help_points_to_the_list(capsys):
    with pytest.raises(SystemExit):
        main(["sieve", "--help"])
    out = capsys.readouterr().out
    assert "extensions" in out and "RFC" in out
