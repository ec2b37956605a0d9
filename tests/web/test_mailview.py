"""web/mailview.py: what the quarantine pages show of a message, with no markup, file or hidden text."""

from __future__ import annotations

from web.mailview import MAX_PARTS, html_to_text, view, visible


def mime(*parts: tuple[str, str, bytes], head: bytes = b"Subject: hi\r\n") -> bytes:
    out = [head + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"]
    for ctype, extra, body in parts:
        out.append(f"--B\r\nContent-Type: {ctype}\r\n{extra}\r\n".encode() + body + b"\r\n")
    out.append(b"--B--\r\n")
    return b"".join(out)


def test_text_html_and_attachments():
    v = view(mime(("text/plain; charset=utf-8", "", "caf\u00e9\r\n".encode()),
                  ("text/html", "", b"<html><head><title>T</title><script>steal()</script></head>"
                                    b"<body><p>Hello <b>you</b></p><img src='http://x/t.gif' alt='logo'></body>"),
                  ("application/pdf", 'Content-Disposition: attachment; filename="r.pdf"\r\n', b"%PDF-1.7"),
                  ("text/plain", 'Content-Disposition: attachment; filename="notes.txt"\r\n', b"kept apart")))
    plain, markup, pdf, attached = v.parts
    assert plain.text == "caf\u00e9\n" and not plain.converted
    assert markup.converted and markup.text == "Hello you\n[image: logo]" and "steal" not in markup.text
    assert (pdf.content_type, pdf.filename, pdf.size, pdf.text) == ("application/pdf", "r.pdf", 8, None)
    assert attached.text is None and attached.filename == "notes.txt"     # an attached text is a file
    assert v.headers.startswith("Subject: hi\n")


def test_controls_and_bidi_overrides_become_visible():
    assert visible("a\x1b[31mb\u202etxt.exe\r\nc\td") == "a\\x1b[31mb\\u202etxt.exe\nc\td"
    v = view(b"Subject: \x1b]0;owned\x07\r\n\r\nbody " + "\u202e".encode())
    assert "\x1b" not in v.headers and "\\x1b]0;owned\\x07" in v.headers
    assert v.parts[0].text == "body \\u202e"


def test_text_is_cut_and_parts_are_bounded():
    v = view(b"Subject: big\r\n\r\n" + b"x" * 5000, text_max=100)
    assert v.parts[0].cut and len(v.parts[0].text) == 100
    many = mime(*[("text/plain", "", b"p")] * (MAX_PARTS + 20))
    parts = view(many).parts
    assert len(parts) <= MAX_PARTS + 1 and parts[-1].text.startswith(f"(more than {MAX_PARTS} parts")


def test_unknown_charset_and_bad_html_do_not_raise():
    v = view(b"Content-Type: text/plain; charset=x-no-such\r\n\r\nplain \xff")
    assert v.parts[0].text.startswith("plain ")
    assert html_to_text("<p>unclosed <b><i>tags <script>x") == "unclosed tags"
