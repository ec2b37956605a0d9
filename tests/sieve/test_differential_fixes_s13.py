"""Engine fixes from the thirteenth differential session against Pigeonhole's sieve-test (the
mimeactions shape of scripts/sieve-differential: foreverypart, the mime test, extracttext and
relational tests on generated MIME trees, special-use and mailbox tests): each test is a fixed
script and message with the outcome the RFC (and sieve-test 0.5.19) gives, which Owlery got wrong
before the fix."""

from __future__ import annotations

import email.header
import re

import pytest

from owlery.settings import Settings
from sieve.actions import FileInto, Keep
from sieve.api import SieveCompileError, compile_script
from tests.sieve.test_differential_fixes_s12 import _run     # one driver for the fix files


def _stores(result) -> list[str]:
    return sorted(a.mailbox for a in result.effective_actions() if isinstance(a, (Keep, FileInto)))


def _added(result, name: bytes) -> list[bytes]:
    keep = next(a for a in result.effective_actions() if isinstance(a, (Keep, FileInto)))
    head = re.sub(rb"\r?\n[ \t]+", b" ", result.message_for(keep))  # unfolded
    out = []
    for line in head.splitlines():
        if line.lower().startswith(name.lower() + b":"):
            value = line.split(b":", 1)[1].decode("ascii")
            # non-ASCII text is added as RFC 2047 encoded words: read it decoded
            text = str(email.header.make_header(email.header.decode_header(value)))
            out.append(" ".join(text.split()).encode("utf-8"))
    return out


# --- special-use: specialuse_exists [<mailbox: string>] <special-use-attrs: string-list> ---------


def test_specialuse_exists_takes_a_lone_string_list_of_flags():
    # RFC 8579 5: the mailbox is the optional first argument, so a lone argument is the list of
    # special-use attributes, in brackets too (sieve-test compiles these; Owlery refused them)
    for test in ('specialuse_exists ["\\\\Junk"]', 'specialuse_exists ["\\\\Junk", "\\\\Trash"]',
                 'specialuse_exists "\\\\Junk"', 'specialuse_exists "INBOX" ["\\\\Junk"]'):
        result = _run(f'require ["special-use", "fileinto"];\nif not {test} {{ fileinto "Foo"; }}\n',
                      b"From: a@example.com\r\nSubject: t\r\n\r\nbody\r\n")
        assert _stores(result) == ["Foo"], test
    # with two arguments the first is the mailbox: a string list there is still refused (as sieve-test)
    with pytest.raises(SieveCompileError):
        compile_script('require "special-use";\nif specialuse_exists ["Foo"] "\\\\Junk" { stop; }\n',
                       settings=Settings())


# --- extracttext: a multipart without parts has its body as content -------------------------------

_SCRIPT = (
    'require ["foreverypart", "mime", "extracttext", "variables", "editheader"];\n'
    'set "all" "";\n'
    'foreverypart { extracttext "t"; set "all" "${all}|${t}"; }\n'
    'addheader "X-All" "${all}";\n'
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # no boundary parameter (RFC 2046 5.1.1 requires one): the body is not split into parts,
        # so it is the multipart's own content (sieve-test: the whole body, delimiter lines too)
        (b"From: a@b.example\nSubject: x\nContent-Type: multipart/mixed\n\n--b1\nContent-Type: text/plain\n\n"
         b"inner\n--b1--\n", b"|--b1 Content-Type: text/plain inner --b1--"),
        # a boundary the body never uses: no parts either
        (b"From: a@b.example\nSubject: x\nContent-Type: multipart/mixed; boundary=zz\n\npre\n--b1\n\ninner\n"
         b"--b1--\n", b"|pre --b1 inner --b1--"),
        # nested: the inner multipart/alternative has no boundary, its sibling is a text part; the
        # outer one, split into parts, still has no content of its own
        (b"From: a@b.example\nSubject: x\nContent-Type: multipart/mixed; boundary=b1\n\n--b1\n"
         b"Content-Type: multipart/alternative\n\ninner\n--b1\nContent-Type: text/plain\n\nsecond\n--b1--\n",
         b"||inner|second"),
    ],
)
def test_extracttext_of_a_multipart_without_parts_is_its_body(message, expected):
    assert _added(_run(_SCRIPT, message), b"X-All") == [expected]


# --- header :mime :type/:subtype/:contenttype of a field with no media type ---------------------

_EMPTY_CT = (b"From: a@b.example\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
             b"--b1\r\nContent-Transfer-Encoding: base64\r\nContent-Type: \r\n\r\nYmV0YQ==\r\n--b1--\r\n")


@pytest.mark.parametrize("opt", [":type", ":subtype", ":contenttype"])
def test_mime_type_of_an_empty_content_type_field_is_empty(opt):
    # the field is there but holds no type: the test reads "" from it, as from "garbage" (as
    # sieve-test); the content is still typed text/plain (RFC 2045 5.2), so extracttext reads it
    src = ('require ["foreverypart", "mime", "extracttext", "variables", "fileinto"];\n'
           'foreverypart {\n'
           f'  if header :mime {opt} :is "Content-Type" "" {{ extracttext "t"; fileinto "Foo"; }}\n'
           f'  if header :mime {opt} :contains "Content-Type" "tex" {{ fileinto "Bar"; }}\n'
           '}\n'
           'if string :is "${t}" "beta" { keep; }\n')
    assert _stores(_run(src, _EMPTY_CT)) == ["Foo", "INBOX"]


# --- header :mime: the type as the field writes it; a parameter named twice ----------------------

_CASED = (b"From: a@b.example\nSubject: x\nContent-Type: Multipart/MIXED; boundary=b1\n\n"
          b"--b1\nContent-Type: TEXT/Plain; CharSet=UTF-8; charset=iso-8859-1\nContent-Disposition: ATTACHMENT; "
          b"FILENAME=x.pdf; filename=y.pdf\nContent-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9fe\n"
          b"--b1\nContent-Type: text/plain; charset=iso-8859-1; charset=utf-8\n\nGr\xfc\xdfe x\n--b1--\n")
_SHOW = ('require ["foreverypart", "mime", "extracttext", "variables", "editheader", "relational"];\n'
         'set "all" "";\n'
         'foreverypart {\n'
         '  set "v" "-"; set "n" "-";\n'
         '  if header :mime %s :matches "%s" "*" { set "v" "${0}"; }\n'
         '  if header :mime %s :count "eq" "%s" "2" { set "n" "2"; }\n'
         '  set "all" "${all}|${v};${n}";\n'
         '}\n'
         'addheader "X-All" "${all}";\n')


@pytest.mark.parametrize(
    ("opt", "field", "expected"),
    [
        # media types have no case (RFC 2045 5.1) and the default comparator ignores it, but the
        # value the test reads is the field's own spelling (match variables, i;octet see it), as
        # sieve-test gives it
        (":type", "Content-Type", b"|Multipart;-|TEXT;-|text;-"),
        (":subtype", "Content-Type", b"|MIXED;-|Plain;-|plain;-"),
        (":contenttype", "Content-Type", b"|Multipart/MIXED;-|TEXT/Plain;-|text/plain;-"),
        (":type", "Content-Disposition", b"|-;-|ATTACHMENT;-|-;-"),
        # a parameter given twice gives both values, the first first (sieve-test: :count is 2)
        (':param "charset"', "Content-Type", b"|-;-|UTF-8;2|iso-8859-1;2"),
        (':param "filename"', "Content-Disposition", b"|-;-|x.pdf;2|-;-"),
    ],
)
def test_mime_options_read_the_field_as_written(opt, field, expected):
    src = _SHOW % (opt, field, opt, field)
    assert _added(_run(src, _CASED), b"X-All") == [expected]


def test_extracttext_decodes_in_the_first_charset_a_part_names():
    # `charset=iso-8859-1; charset=utf-8`: a parameter named twice is read with its first value
    # (as Dovecot's parser reads it), so the second part is Latin-1 text
    src = ('require ["foreverypart", "mime", "extracttext", "variables", "editheader"];\n'
           'set "all" "";\n'
           'foreverypart { extracttext "t"; set "all" "${all}|${t}"; }\n'
           'addheader "X-All" "${all}";\n')
    assert _added(_run(src, _CASED), b"X-All") == ["||Grüße|Grüße x".encode("utf-8")]
