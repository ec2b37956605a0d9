"""Records: what @dataclasses.dataclass gives small value classes, without its start-up cost.

`dataclasses` imports inspect, ast, dis and tokenize (~11 ms) and compiles each class's methods
when its module loads (~0.25 ms a class): paid by every in-process LDA run (one process per
message) for ~40 classes. A record class shares one set of methods instead:

    class Keep(Record, frozen=True):
        mailbox: str = "INBOX"
        flags: tuple[str, ...] = ()
        line: int = field(default=0, kw_only=True, compare=False)
        parts: list = Factory(list)          # = field(default_factory=list)

Fields come from the class's annotations in order, after the base record's (a field named
again keeps its place, as in a dataclass); ClassVar annotations and unannotated class
attributes are not fields. Class options (inherited): frozen (assignment raises
dataclasses.FrozenInstanceError; hashable when eq), eq (== and hash over the compared fields
of records of the very same class; eq=False: identity), slots (__slots__ for the class's own
fields). Each record has __init__ (positional in field order, keyword-only fields by keyword
only; a missing field without a default is a TypeError), __repr__, __match_args__, a
`__post_init__()` hook, `replace(**changes)` (dataclasses.replace) and `record_fields(obj)`.
For code that still calls dataclasses.replace/fields/asdict/is_dataclass on a record, the
class answers `__dataclass_fields__` too (built on first use, importing dataclasses then).
Tests: tests/core/test_record.py
"""

from __future__ import annotations

from _operator import attrgetter   # = operator.attrgetter, without operator.py (LDA start-up)

_MISSING = object()


class Factory:
    """A field default made anew for each record (dataclasses.field(default_factory=...))."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


class Field:
    """A field's options, as `field()` gives them (a bare class attribute is a plain default)."""

    __slots__ = ("default", "compare", "repr", "kw_only")

    def __init__(self, default=_MISSING, compare=True, repr=True, kw_only=False):
        self.default, self.compare, self.repr, self.kw_only = default, compare, repr, kw_only


def field(*, default=_MISSING, default_factory=None, compare=True, repr=True, kw_only=False) -> Field:
    """dataclasses.field's options that records support."""
    if default_factory is not None:
        default = Factory(default_factory)
    return Field(default, compare, repr, kw_only)


def _is_classvar(annotation) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return text.startswith(("ClassVar", "typing.ClassVar"))


class _DataclassFields:
    """`__dataclass_fields__` for dataclasses' own functions, made on first use per class."""

    cache: dict = {}

    def __get__(self, obj, cls):
        made = self.cache.get(cls)
        if made is None:
            import dataclasses

            specs = []
            for name in cls._fields:
                f = cls._specs[name]
                opts = {"compare": f.compare, "repr": f.repr, "kw_only": f.kw_only}
                if isinstance(f.default, Factory):
                    opts["default_factory"] = f.default.make
                elif f.default is not _MISSING:
                    opts["default"] = f.default
                specs.append((name, cls._types.get(name, "object"), dataclasses.field(**opts)))
            made = self.cache[cls] = dataclasses.make_dataclass(cls.__name__, specs).__dataclass_fields__
        return made


class RecordType(type):
    """The metaclass: reads the fields and options when a record class is made."""

    def __new__(mcls, name, bases, ns, frozen=None, eq=None, slots=False, **kw):
        annotations = ns.get("__annotations__", {})
        own = {}
        for fname, annotation in annotations.items():
            if _is_classvar(annotation):
                continue
            value = ns.get(fname, _MISSING)
            spec = value if isinstance(value, Field) else Field(value)
            own[fname] = spec
            if slots or isinstance(value, Field) or isinstance(value, Factory):
                ns.pop(fname, None)
            if (
                not slots
                and isinstance(value, Field)
                and value.default is not _MISSING
                and not isinstance(value.default, Factory)
            ):
                ns[fname] = value.default  # as a dataclass leaves a plain default on the class
        # Everything goes into the namespace before the class is made: each attribute set on a
        # class afterwards invalidates its type caches (and, for __setattr__, __eq__ and __hash__,
        # recomputes its slots), which made a record class cost ~2.5x a plain one to create
        # (paid for ~80 classes by every in-process LDA run).
        base = _record_base(bases)
        if slots:
            inherited = set()
            for b in bases:
                inherited.update(getattr(b, "_fields", ()))
            ns["__slots__"] = tuple(f for f in own if f not in inherited)
        specs = dict(base._specs) if base is not None else {}
        types = dict(base._types) if base is not None else {}
        specs.update(own)
        types.update((f, annotations[f]) for f in own)
        compared = tuple(f for f, s in specs.items() if s.compare)
        positional = tuple(f for f, s in specs.items() if not s.kw_only)
        if frozen is None:
            frozen = getattr(base, "_frozen", False)
        if eq is None:
            eq = getattr(base, "_eq", True)
        ns.update(
            _specs=specs, _types=types, _fields=tuple(specs), _positional=positional, _compared=compared,
            _shown=tuple(f for f, s in specs.items() if s.repr),
            _defaults={f: s.default for f, s in specs.items() if s.default is not _MISSING},
            # n positional arguments and no keywords (the common call): the (name, default, is a
            # Factory) of each field left, or None when one of them has no default; made by
            # _fill_for on the first such call
            _fill={},
            _key=attrgetter(*compared) if compared else _no_key,
            _post_init="__post_init__" in ns or any(hasattr(b, "__post_init__") for b in bases),
            __match_args__=positional, _frozen=frozen, _eq=eq,
        )
        if frozen:
            ns["__setattr__"], ns["__delattr__"] = _frozen_setattr, _frozen_delattr
        if "__eq__" not in ns:
            ns["__eq__"] = _eq if eq else object.__eq__
        if "__hash__" not in ns:
            ns["__hash__"] = (_hash if frozen else None) if eq else object.__hash__
        cls = super().__new__(mcls, name, bases, ns, **kw)
        return cls


def _record_base(bases):
    """The nearest record class among `bases` and their ancestors (None for Record itself):
    the first RecordType in the MRO the new class will have, as C3 puts bases' ancestors in
    order for the single and mixin inheritance records use."""
    for b in bases:
        for ancestor in b.__mro__:
            if isinstance(ancestor, RecordType):
                return ancestor
    return None


def _frozen_setattr(self, name, value):
    import dataclasses  # only on this error path

    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    import dataclasses

    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _fill_for(cls, n):
    """What Record.__init__ fills in after n positional arguments (see RecordType.__new__)."""
    if n > len(cls._positional):
        return None
    given = cls._positional[:n]
    defaults = cls._defaults
    rest = [f for f in cls._fields if f not in given]
    if not all(f in defaults for f in rest):
        return None
    return tuple((f, defaults[f], isinstance(defaults[f], Factory)) for f in rest)


def _no_key(obj):
    return ()


def _eq(self, other):
    if other.__class__ is self.__class__:
        return self._key(self) == self._key(other)
    return NotImplemented


def _hash(self):
    return hash(self._key(self))


class Record(metaclass=RecordType):
    """The base of record classes (see the module's doc)."""

    __slots__ = ()
    __dataclass_fields__ = _DataclassFields()

    def __init__(self, *args, **kwargs):
        cls = self.__class__
        setter = object.__setattr__
        fields = cls._fields
        n = len(args)
        fill = None if kwargs else cls._fill.get(n, _MISSING)
        if fill is _MISSING:
            fill = cls._fill[n] = _fill_for(cls, n)
        if fill is not None:
            for name, value in zip(cls._positional, args):
                setter(self, name, value)
            for name, value, factory in fill:
                setter(self, name, value.make() if factory else value)
        else:
            positional = cls._positional
            if n > len(positional):
                raise TypeError(f"{cls.__name__}() takes {len(positional)} positional arguments but {n} were given")
            given = positional[:n]
            for name, value in zip(given, args):
                setter(self, name, value)
            defaults = cls._defaults
            for name in fields:
                if name in kwargs:
                    if name in given:
                        raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
                    setter(self, name, kwargs[name])
                elif name not in given:
                    value = defaults.get(name, _MISSING)
                    if value is _MISSING:
                        raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
                    setter(self, name, value.make() if value.__class__ is Factory else value)
            if len(kwargs) > len(fields) or any(k not in cls._specs for k in kwargs):
                unknown = next(k for k in kwargs if k not in cls._specs)
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {unknown!r}")
        if cls._post_init:
            self.__post_init__()

    def __repr__(self):
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._shown)
        return f"{self.__class__.__qualname__}({inner})"

    def replace(self, **changes):
        """A copy with `changes` (dataclasses.replace)."""
        return self.__class__(**{**{f: getattr(self, f) for f in self._fields}, **changes})

    def __setstate__(self, state):
        # pickle/copy of a frozen or slotted record: (dict, slots dict) or a dict
        for part in state if isinstance(state, tuple) else (state,):
            for name, value in (part or {}).items():
                object.__setattr__(self, name, value)


def record_fields(obj) -> tuple[str, ...]:
    """The field names of a record (class or instance), in order."""
    return obj._fields
