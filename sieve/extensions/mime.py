"""mime, foreverypart and extracttext (RFC 5703): :mime/:anychild on header, address and
exists; the foreverypart loop with break; extracttext into a variable.

MIME structure comes from sieve.message (bounded). Tests: conformance extensions/mime/,
tests/sieve/test_rfc_fixes.py, tests/sieve/test_differential_fixes_s11.py,
tests/sieve/test_differential_fixes_s12.py (break :name), tests/sieve/test_differential_fixes_s13.py,
tests/sieve/test_mime_differential.py (against sieve-test, on generated MIME trees).
"""

from __future__ import annotations

from sieve.errors import SieveError, SieveRuntimeError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.message import parse_content_type_all, strip_comments


class BreakLoop(SieveError):
    def __init__(self, name):
        super().__init__("break")
        self.name = name


def _parts(rt):
    return rt.msg.mime_parts(rt.settings.sieve_max_mime_parts, rt.settings.sieve_max_mime_depth)


def _descendants(part):
    out = []
    stack = list(reversed(part.children))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(reversed(p.children))
    return out


def current_part_headers(rt, node, h: str, raw: bool) -> list[str]:
    cur = rt.ext.get("mime_part")
    if cur is None:
        parts = _parts(rt)
        cur = parts[0] if parts else None
    if cur is None:
        return []
    targets = [cur] + (_descendants(cur) if node.tags.get("anychild") else [])
    out = []
    # :param stores its list under "mimeopt" and its name under "mimeopt:tag"; the tags
    # without a parameter (:type, :subtype, :contenttype) store their name under "mimeopt"
    opt = node.tags.get("mimeopt:tag") or node.tags.get("mimeopt")
    for p in targets:
        rt.step(1)
        vals = p.header_raw(h) if raw else p.header_values(h)
        if opt and h.lower() == "content-type":
            for v in vals:
                # A field with no media type in it (empty, "text", "garbage") gives the empty
                # string, as Pigeonhole: the default of RFC 2045 5.2 types the content (body,
                # extracttext), but the test reads the field, and there is no type in it. The
                # type and subtype are read as the field writes them ("Text/PLAIN"): media types
                # have no case (RFC 2045 5.1), which the default comparator i;ascii-casemap
                # ignores, but i;octet and the match variables see it (as Pigeonhole). :param
                # gives each value of a parameter named twice, in order (as Pigeonhole).
                mtype, params = parse_content_type_all(v)
                if mtype:
                    # as written, less comments and the white space around "/" (RFC 2045 5.1)
                    mtype = "".join(strip_comments(v).split(";", 1)[0].split())
                if opt == "type":
                    out.append(mtype.split("/", 1)[0] if mtype else "")
                elif opt == "subtype":
                    out.append(mtype.split("/", 1)[1] if "/" in mtype else "")
                elif opt == "contenttype":
                    out.append(mtype)
                elif opt == "param":
                    names = [n.lower() for n in rt.sl(node.tags["mimeopt"])]
                    for n in names:
                        out.extend(pv for pn, pv in params if pn == n)
            # a part without a Content-Type field has nothing for the header test to read (its
            # type defaults to text/plain, RFC 2045 5.2, but there is no field), as Pigeonhole
        elif opt == "param" and h.lower() == "content-disposition":
            names = [n.lower() for n in rt.sl(node.tags["mimeopt"])]
            for v in vals:
                _, params = parse_content_type_all("x/x;" + v.split(";", 1)[1] if ";" in v else "x/x")
                for n in names:
                    out.extend(pv for pn, pv in params if pn == n)
        elif opt and h.lower() == "content-disposition":
            # the disposition type ("attachment") stands for :type and :contenttype, as written
            out.extend(v.split(";", 1)[0].strip() if opt != "subtype" else "" for v in vals)
        elif opt:
            # RFC 5703 4.2 defines the options for Content-Type (and :param for
            # Content-Disposition); another field is no content type: each reads as "" (as
            # Pigeonhole: `:type :is "Subject" ""` matches a message with a Subject)
            out.extend("" for _ in vals)
        else:
            out.extend(vals)
    return out


def _check_mime_tags(v, node, what):
    """The tags mime adds to header, address and exists, checked once their arguments bound."""
    from sieve.parser import Tag
    if any(k in node.tags for k in ("anychild", "mimeopt")) and "mime" not in node.tags:
        first = next(a.name for a in node.args if isinstance(a, Tag)
                     and a.name in ("anychild", "type", "subtype", "contenttype", "param"))
        v.error(node, f"the :{first} tag for the {node.name} {what} cannot be specified without the :mime tag")
    if "mimeopt" in node.tags and node.name != "header":
        # (Pigeonhole knows these tags on header only: an unknown tag elsewhere)
        v.error(node, f"unknown tagged argument ':{node.tags.get('mimeopt:tag', node.tags['mimeopt'])}' for the "
                      f"{node.name} {what} (reported only once at first occurrence)")


def _loop_name(node) -> str | None:
    """A foreverypart's or break's :name, as written: loops are named in the script's text (a
    break names a loop around it there), so no variable is expanded in it, as Pigeonhole."""
    arg = node.tags.get("name")
    return None if arg is None else arg.items[0].value


def _check_in_loop(v, node, what):
    if v.loop_depth == 0:
        v.error(node, f"the {node.name} command is not placed inside a foreverypart loop")
        return
    # RFC 5703 3.2: break :name ends the closest enclosing loop of that name; with none
    # around it the script is in error (known when it is compiled, as Pigeonhole reports it)
    name = _loop_name(node)
    if name is not None and not any(_loop_name(loop) == name for loop in v.loops):
        v.error(node, f"the {node.name} command is not placed inside a foreverypart loop named `{name}'")


def _run_foreverypart(rt, node):
    name = _loop_name(node)
    parent = rt.ext.get("mime_part")
    if parent is None:
        # the outermost loop visits the message itself first, then every part
        children = list(_parts(rt))
    else:
        children = _descendants(parent)
    depth = rt.ext.get("fep_depth", 0)
    if depth + 1 > rt.settings.sieve_max_loop_nesting:
        raise SieveRuntimeError("foreverypart loops nested too deeply (sieve_max_loop_nesting)")
    rt.ext["fep_depth"] = depth + 1
    try:
        for p in children:
            rt.step()
            rt.ext["mime_part"] = p
            try:
                rt.run_block(node.block)
            except BreakLoop as b:
                if b.name is None or b.name == name:
                    break
                raise
    finally:
        rt.ext["mime_part"] = parent
        rt.ext["fep_depth"] = depth


def _run_break(rt, node):
    raise BreakLoop(_loop_name(node))


def _validate_extract(v, node):
    if node.pos:
        from sieve.extensions.variables import check_name

        check_name(v, node.pos[0], node.pos[0].items[0].value)
        from sieve.parser import Tag
        from sieve.extensions.variables import check_modifiers

        # (two of one precedence are an error, as for set: RFC 5703 7 takes set's modifiers)
        node.data["mods"] = check_modifiers(v, [a for a in node.args if isinstance(a, Tag)])


def _extract_modifiers_first(v, node, args) -> bool:
    from sieve.extensions.variables import modifiers_first
    return modifiers_first(v, node, args)


def _run_extract(rt, node):
    from sieve.extensions.variables import MODIFIERS, assign

    p = rt.ext.get("mime_part")
    if p is None:
        raise SieveRuntimeError("extracttext used outside foreverypart")
    # RFC 5703 7 stores "the whole content of the current MIME body part", transfer and
    # charset decoding undone; unlike the body test's :text (RFC 5173 5.2) it names no types,
    # so a leaf of any type (application/octet-stream too) gives its content, as sieve-test
    # does; a multipart or message/rfc822 part has no content of its own (its parts do). A
    # multipart that has no parts (no boundary parameter, or a boundary its body never uses:
    # RFC 2046 5.1.1 makes it required, so the body is not split) is read as a leaf, its body
    # being all the content there is (as Dovecot's parser reads it, checked with sieve-test);
    # one whose body holds a delimiter line, if only its close, is split: the text around it is read.
    # HTML reads as plain text, as for the body test's :text (sieve.html_text).
    multipart = p.mtype.startswith("multipart/")
    container = bool(p.children) if multipart else p.mtype == "message/rfc822"
    if multipart and not container and p.delimited:
        # delimiter lines but no part (only a close): its content is the text around them, its
        # prologue and epilogue (as sieve-test reads it)
        from sieve.message import decode_charset
        text = decode_charset((p.prologue or b"") + (p.epilogue or b""),
                              p.params.get("charset", "us-ascii") or "us-ascii")
    else:
        text = "" if container else p.readable_text()
    if "first" in node.tags:
        text = text[: node.tags["first"].value]
    for m in node.data.get("mods", ()):
        text = MODIFIERS[m][1](text)
    assign(rt, node.pos[0].items[0].value, text)


_MIME_TAGS = []
_MIMEOPT_TWICE = ("the :type, :subtype, :contenttype, and :param arguments for the {cmd} {what} are mutually "
                  "exclusive, but more than one was specified")
for _c in ("header", "address", "exists"):
    _MIME_TAGS += [(_c, TagDef("mime")), (_c, TagDef("anychild", repeat=True))]
for _t in ("type", "subtype", "contenttype"):
    for _c in ("header", "address", "exists"):
        _MIME_TAGS.append((_c, TagDef(_t, group="mimeopt", conflict=_MIMEOPT_TWICE)))
for _c in ("header", "address", "exists"):
    _MIME_TAGS.append((_c, TagDef("param", STRINGLIST, group="mimeopt", conflict=_MIMEOPT_TWICE)))

_EXTRACT_TAGS = tuple(
    TagDef(m, key="mod:" + m) for m in ("lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "length")
) + (TagDef("first", NUMBER),)

EXTENSIONS = (
    Extension(
        name="foreverypart",
        commands=(
            CommandDef(
                "foreverypart", tags=(TagDef("name", STRING, repeat=True),), block="required", loop=True, run=_run_foreverypart
            ),
            CommandDef("break", tags=(TagDef("name", STRING, repeat=True),), run=_run_break),
        ),
        argument_checks=(("break", _check_in_loop),),
    ),
    Extension(
        name="mime",
        extra_tags=tuple(_MIME_TAGS),
        argument_checks=tuple((c, _check_mime_tags) for c in ("header", "address", "exists")),
    ),
    Extension(
        name="extracttext",
        commands=(
            CommandDef(
                "extracttext",
                positional=(STRING,),
                tags=_EXTRACT_TAGS,
                validate=_validate_extract,
                run=_run_extract,
                arg_names=("varname",),
                arguments_first=_extract_modifiers_first,
            ),
        ),
        requires=("foreverypart", "variables"),
        argument_checks=(("extracttext", _check_in_loop),),
    ),
)
