"""owlery.record: a dataclass's behaviour for value classes without importing dataclasses
(the in-process LDA's start-up: tests/delivery/test_lda_imports.py)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from owlery.record import Factory, Record, field, record_fields

ROOT = Path(__file__).resolve().parents[2]


class Base(Record, frozen=True):
    kind = "base"  # not annotated: a class attribute, not a field
    line: int = field(default=0, kw_only=True, compare=False)


class Item(Base):
    name: str
    flags: tuple = ()
    head: bytes | None = field(default=None, kw_only=True, compare=False, repr=False)


class Node(Record, slots=True, eq=False):
    name: str
    tags: dict = Factory(dict)
    data: list = field(default_factory=list)


class Checked(Record, frozen=True, slots=True):
    code: int

    def __post_init__(self):
        if self.code < 0:
            raise ValueError("negative")


@dataclasses.dataclass(frozen=True)
class DBase:
    line: int = dataclasses.field(default=0, kw_only=True, compare=False)


@dataclasses.dataclass(frozen=True)
class DItem(DBase):
    name: str
    flags: tuple = ()
    head: bytes | None = dataclasses.field(default=None, kw_only=True, compare=False, repr=False)


def test_behaves_as_the_dataclass_it_replaces():
    ours, theirs = Item("a", ("f",), line=3, head=b"h"), DItem("a", ("f",), line=3, head=b"h")
    assert repr(ours) == repr(theirs).replace("DItem", "Item")
    assert Item.__match_args__ == DItem.__match_args__ == ("name", "flags")
    assert record_fields(ours) == tuple(f.name for f in dataclasses.fields(theirs)) == ("line", "name", "flags", "head")
    assert ours == Item("a", ("f",), line=9) and hash(ours) == hash(Item("a", ("f",)))  # line, head not compared
    assert ours != Item("a") and ours != DItem("a", ("f",)) and Item.kind == "base"
    assert (Item.line, Item.flags, Item.head) == (DItem.line, DItem.flags, DItem.head)  # class-level defaults
    assert ours.replace(flags=()) == Item("a") and ours.replace(line=5).line == 5
    for make in (lambda: Item(), lambda: Item("a", (), 1), lambda: Item("a", name="b"), lambda: Item("a", nope=1)):
        with pytest.raises(TypeError):
            make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours.name = "b"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ours.name


def test_mutable_slotted_identity_records():
    a, b = Node("n"), Node("n")
    assert a != b and a == a and hash(a) != hash(b) and a.tags == {} and a.tags is not b.tags and a.data == []
    a.name = "m"
    assert a.name == "m" and Node.__slots__ == ("name", "tags", "data")
    with pytest.raises(AttributeError):
        a.other = 1
    with pytest.raises(ValueError):
        Checked(-1)


def test_pickle_copy_and_dataclasses_functions_still_work():
    item = Item("a", ("f",), line=2)
    for clone in (pickle.loads(pickle.dumps(item)), copy.copy(item), copy.deepcopy(item)):
        assert clone == item and clone.line == 2
    assert pickle.loads(pickle.dumps(Checked(1))) == Checked(1)
    # code that still calls dataclasses' functions on a record (outside the LDA's path)
    assert dataclasses.is_dataclass(item) and dataclasses.replace(item, name="b") == Item("b", ("f",))
    assert dataclasses.asdict(item) == {"line": 2, "name": "a", "flags": ("f",), "head": None}
    assert [f.compare for f in dataclasses.fields(Item)] == [False, True, True, False]


def test_importing_it_imports_no_dataclasses():
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import owlery.record; "
        "assert 'dataclasses' not in sys.modules and 'typing' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
