"""Reading a setting imports no adapter: Twisted, pymilter and dkimpy stay unloaded.

A child process blocks those packages (a `sys.meta_path` finder that refuses them and
records who asked), then does what `owlery config check/show` and `owlery postfix` do: loads
a settings file that sets one key of every section, reads every declared setting (each
read imports its section's modules, owlery.sections), runs `owlery config show` and
`owlery postfix`, and imports every module owlery.sections lists. Nothing may even try to
import a blocked package: a setting declared in an adapter module (milters/adapter.py,
policyd/service.py, sieve/delivery/lmtpd.py) fails this test; declare it in the product's
light settings module (milters/settings.py, policyd/settings.py,
sieve/delivery/lmtpd_settings.py) instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from owlery import settings as S
from owlery.sections import SECTION_MODULES

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("owlery", "policyd", "milters", "sieve", "socketmap", "web")
# pymilter is the package `Milter` around the C module `milter`.
BLOCKED = ("twisted", "zope", "Milter", "milter", "dkim")

CHILD = textwrap.dedent("""
    import contextlib, io, json, sys

    BLOCKED = set(sys.argv[2].split(","))
    attempts = []

    class Refuse:
        '''Refuses the blocked packages and notes which project module asked.'''
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] not in BLOCKED:
                return None
            frame, asker = sys._getframe(1), "?"
            while frame is not None:
                module = frame.f_globals.get("__name__", "")
                if module.split(".")[0] in ("owlery", "policyd", "milters", "sieve", "socketmap"):
                    asker = module
                    break
                frame = frame.f_back
            attempts.append([name, asker, phase])
            raise ImportError(f"{name} is blocked by test_settings_light")

    sys.meta_path.insert(0, Refuse())
    job = json.loads(sys.argv[1])
    phase = "start"
    out = {}

    from owlery import settings as S
    phase = "load the file"
    settings = S.load(job["path"], missing_ok=False)
    for name in job["names"]:
        phase = "read " + name
        getattr(settings, name)

    from owlery.app.cli import main
    for argv in (["config", "show", "-c", job["path"]],
                 ["postfix", "-c", job["path"], "--domain", "example.org"]):
        phase = "owlery " + " ".join(argv[:2])
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            out[argv[0]] = [main(argv), text.getvalue()]

    import importlib
    from owlery.sections import SECTION_MODULES
    for modules in SECTION_MODULES.values():
        for module in modules:
            phase = "import " + module
            importlib.import_module(module)

    out["attempts"] = attempts
    out["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps(out))
""")


def _settings_file(tmp_path: Path) -> tuple[Path, list[str]]:
    """A file setting one key (at its default) of every section, and every setting's name."""
    S.import_all_sections()
    decls = [d for d in S.declared().values() if d.module.split(".")[0] in PROJECT]
    lines = []
    for section in SECTION_MODULES:
        given = sorted((d for d in decls if d.section == section and d.default is not None),
                       key=lambda d: d.name)
        assert given, f"section {section} declares no setting with a default to put in the file"
        lines.append(f"{given[0].name} = {S.render_toml_value(given[0], given[0].default)}")
    path = tmp_path / "owlery.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, sorted(d.name for d in decls)


def _run_child(path: Path, names: list[str]) -> dict:
    job = json.dumps({"path": str(path), "names": names})
    proc = subprocess.run([sys.executable, "-c", CHILD, job, ",".join(BLOCKED)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_reading_every_setting_imports_no_adapter(tmp_path):
    path, names = _settings_file(tmp_path)
    assert {"milter_listen", "policyd_listen", "lmtpd_listen", "socketmap_listen"} <= set(names)
    out = _run_child(path, names)
    assert out["attempts"] == [], "\n".join(
        f"{asker} imported {name} (while: {phase})" for name, asker, phase in out["attempts"])
    assert out["loaded"] == []
    rc, shown = out["config"]
    assert rc == 0
    for line in path.read_text().splitlines():
        assert line in shown.splitlines(), line        # config show printed what the file set
    rc, postfix = out["postfix"]
    assert rc == 0 and "smtpd_milters" in postfix and "check_policy_service" in postfix


def test_the_blocker_catches_an_adapter_import(tmp_path):
    # The check above must be able to fail: reading the adapter module itself is refused.
    path = tmp_path / "owlery.toml"
    path.write_text("")
    probe = CHILD.replace('out["attempts"] = attempts',
                          'importlib.import_module("milters.adapter")\n' + 'out["attempts"] = attempts')
    job = json.dumps({"path": str(path), "names": []})
    proc = subprocess.run([sys.executable, "-c", probe, job, ",".join(BLOCKED)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Milter is blocked by test_settings_light" in proc.stderr
