"""README's "Quarantine in the browser" stays true: its settings parse, its commands exist, its image is there."""

import re

from owlery.settings import parse_text
from tests.core.test_readme import README, ROOT, console_commands


def _subsection():
    m = re.search(r"^Quarantine in the browser\n~+\n(.*?)(?=^\S[^\n]*\n[=~]{3,}\n)", README, re.S | re.M)
    assert m, "README has no subsection 'Quarantine in the browser'"
    return m.group(1)


def test_settings_block_parses_and_names_web_settings():
    [block] = re.findall(r"\.\. code-block:: toml\n\n((?:    .*\n)+)", _subsection())
    text = "\n".join(line[4:] for line in block.splitlines())
    settings = parse_text(text)
    assert list(settings.web_listen) == ["tcp:127.0.0.1:10046"] and list(settings.web_admins) == ["postmaster@example.org"]


def test_commands_are_shown_and_parsed_by_the_readme_test():
    shown = [c for c in console_commands() if c.startswith("owlery web")]
    assert len(shown) == 2


def test_screenshot_and_unit_exist():
    for path in re.findall(r"\.\. image:: (\S+)", _subsection()):
        assert (ROOT / path).is_file() and (ROOT / path).stat().st_size < 200_000, path
    assert "systemd/owlery-web.service" in _subsection() and (ROOT / "systemd/owlery-web.service").is_file()
