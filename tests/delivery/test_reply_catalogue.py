"""Delivery's replies live in one catalogue, sieve/delivery/replies.py: no other module of
sieve/delivery writes a reply code, enhanced status code and text of its own (lda_lmtp.py is
left out on purpose: it is stdlib-only to start fast, and keeps its few literals)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from owlery.reply import Reply
from sieve.delivery import replies

DELIVERY = Path(__file__).resolve().parents[2] / "sieve" / "delivery"
CATALOGUE = {"replies.py"}
EXEMPT = {"lda_lmtp.py"}

# A reply line in a literal: "451 4.3.0 ..." (also b"..."), as the grep has it.
SOURCE_LINE = re.compile(r"""[bf]?["'][245]\d\d [245]\.\d""")
# A string that starts like a reply or an LDA status line: "550 5.1.1 x", "4.3.5 owlery lda: ..."
LEADING = re.compile(r"^(?:[245]\d\d[ -])?[245]\.\d{1,3}\.\d{1,3} ")


def reply_literals(source: str) -> list[str]:
    """Where `source` writes a reply of its own: literal reply lines, strings (f-strings too)
    that start with a status code, and Reply(...) built from a literal code."""
    found = [f"line {source.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in SOURCE_LINE.finditer(source)]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            first = node.values[0].value
            if isinstance(first, str) and LEADING.match(first):
                found.append(f"line {node.lineno}: f-string {first!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if LEADING.match(text):
                found.append(f"line {node.lineno}: {text[:40]!r}")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name == "Reply" and node.args and isinstance(node.args[0], ast.Constant):
                found.append(f"line {node.lineno}: Reply({node.args[0].value!r}, ...)")
    return sorted(set(found))


@pytest.mark.parametrize("path", sorted(p.name for p in DELIVERY.glob("*.py") if p.name not in CATALOGUE | EXEMPT))
def test_no_reply_outside_the_catalogue(path):
    assert reply_literals((DELIVERY / path).read_text()) == [], f"sieve/delivery/{path}: use sieve/delivery/replies.py"


@pytest.mark.parametrize("source", [
    'x = "452 4.2.2 Mailbox full"',
    'w(b"421 4.4.2 Idle timeout, closing connection\\r\\n")',
    'fail(75, f"4.3.5 owlery lda: {e}")',
    'fail(67, "5.1.1 <x> User unknown")',
    'r = Reply(451, "4.3.0", text)',
    'r = owlery.reply.Reply(550, dsn, text)',
])
def test_the_scan_finds_each_kind_of_literal(source):
    assert reply_literals(source)


@pytest.mark.parametrize("source", [
    '"""gets 451 4.3.0 for this one"""',
    'doc = "refused with 550 " "5.1.1 / exit 67"',
    'r = Reply(code, dsn, text)',
    'r = replies.temporary(address)',
])
def test_the_scan_leaves_prose_and_catalogue_use_alone(source):
    assert reply_literals(source) == []


def test_the_catalogue_is_valid_replies():
    named = {n: v for n, v in vars(replies).items() if n.startswith("R_") and n != "R_DATA_GO"}
    assert named and all(isinstance(v, Reply) for v in named.values())
    assert str(replies.mailbox_full("a@b", temporary=True)) == "452 4.2.2 <a@b> Mailbox full"
    assert str(replies.mailbox_full("a@b", temporary=False)) == "552 5.2.2 <a@b> Mailbox full"
    assert str(replies.temporary("a@b", "4.2.2", "x")).startswith("452 4.2.2")
    assert str(replies.rejected("a@b", "  \n")) == "550 5.7.1 <a@b> Message rejected"
    assert replies.dsn_line(replies.R_LDA_CONFIG, "bad\nline é") == "4.3.5 owlery lda: configuration error: bad?line ?"
