"""`owlery config check` warns when settings of different products disagree about one fact
of the site (owlery/app/consistency.py): the recipient delimiter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from owlery.app.consistency import disagreements
from owlery.settings import import_all_sections, parse_text

ROOT = Path(__file__).resolve().parents[2]


def _settings(text: str):
    import_all_sections()
    return parse_text(text)


def test_the_defaults_agree():
    assert disagreements(_settings("")) == []


def test_the_same_characters_in_another_order_agree():
    text = ('directory_recipient_delimiter = "+-"\ndelivery_recipient_delimiter = "-+"\n'
            'sieve_recipient_delimiter = "+-"\n')
    assert disagreements(_settings(text)) == []


def test_a_delimiter_set_for_one_product_only_is_named(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('log_level = "info"\ndirectory_recipient_delimiter = "+-"\n')
    out = subprocess.run([sys.executable, "-m", "owlery.app.cli", "config", "check", "-c", str(cfg)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "warning: the recipient delimiters differ" in out.stderr
    assert f"directory_recipient_delimiter = '+-' ({cfg}:2)" in out.stderr
    assert "delivery_recipient_delimiter = '+' (default)" in out.stderr
