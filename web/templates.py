"""HTML of the web application: string.Template pages whose every value is escaped unless it is Markup.

No template engine: `fill(template, **values)` substitutes with html.escape (quotes too)
for every value that is not already Markup (a fragment built by this module from escaped
parts). So text from a quarantined message (subject, addresses, headers, bodies) can only
ever appear as text. Pages have no script; the style sheet is /static/style.css
(the CSP allows style from 'self' only).
Every page: a skip link, visible keyboard focus, lang; at 40em and narrower a list row stacks its
cells, each named by its data-label, so nothing scrolls sideways on a phone.
Talks to: nothing. Tests: tests/web/test_app.py (hostile subjects and bodies),
tests/web/test_people_s21.py, tests/e2e/test_web_people_s21.py (360 px, keyboard, no JavaScript)
"""

from __future__ import annotations

import html
import string
import time
from collections.abc import Iterable


class Markup(str):
    """HTML this module built from escaped parts: inserted as it is."""


def esc(value: object) -> Markup:
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


def fill(template: string.Template, **values: object) -> Markup:
    return Markup(template.substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[object]) -> Markup:
    return Markup("".join(esc(p) for p in parts))


def when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


T = string.Template

LAYOUT = T("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title - Owlery quarantine</title>
<link rel="stylesheet" href="/static/style.css">
</head><body>
<a class="skip" href="#main">Skip to the content</a>
<header><span class="brand">Owlery quarantine</span>$nav</header>
<main id="main">
<h1>$title</h1>
$notes$content
</main></body></html>
""")

NAV = T("""<nav><a href="/list">Messages</a>$admin_links
<span class="who">$user</span>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="$csrf">
<button type="submit">Log out</button></form></nav>""")

LOGIN = T("""<form method="post" action="/login" class="login">
<input type="hidden" name="csrf" value="$csrf">
<label>Address <input type="email" name="username" value="$username" autocomplete="username" required autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button>
</form>""")

SEARCH = T("""<form method="get" action="/list" class="search">
<label>Recipient <input name="recipient" value="$recipient"></label>
<label>Sender <input name="sender" value="$sender"></label>
<label>Subject <input name="subject" value="$subject"></label>
<label>Reason <select name="reason">$reasons</select></label>
<label>Held since <input type="date" name="since" value="$since"></label>
<label>Held until <input type="date" name="until" value="$until"></label>
<button type="submit">Search</button>
</form>""")

LIST = T("""$search<p class="count" role="status">$count</p>
<form method="post" action="/action">
<input type="hidden" name="csrf" value="$csrf"><input type="hidden" name="next" value="$next">
<div class="actions">$buttons</div>
<table class="messages"><thead><tr><th><span class="hidden">Select</span></th><th>Date</th><th>From</th><th>To</th>
<th>Subject</th><th>Reason</th><th>Score</th><th>Status</th></tr></thead>
<tbody>$rows</tbody></table>
<div class="actions">$buttons_end</div>
</form>$pages""")

# data-label: the column's name, shown beside each value where a narrow screen stacks a row's cells;
# bdi: a right-to-left subject takes its own direction and cannot reorder the text around it
ROW = T("""<tr><td data-label="Select"><input type="checkbox" name="id" value="$mail_id" aria-label="Select: $subject"></td>
<td data-label="Date" class="short">$date</td><td data-label="From" class="long">$sender</td>
<td data-label="To" class="long">$recipients</td>
<td data-label="Subject" class="long"><a href="/m/$mail_id"><bdi>$subject</bdi></a></td>
<td data-label="Reason" class="short">$reason</td><td data-label="Score" class="short">$score</td>
<td data-label="Status" class="short">$status</td></tr>""")

PAGES = T("""<nav class="pages" aria-label="Pages">$newer <span>Page $page</span> $older</nav>""")

USER_BUTTONS = Markup('<button type="submit" name="action" value="release">Release selected</button>')
ADMIN_BUTTONS = Markup(
    '<button type="submit" name="action" value="release">Release selected</button>'
    '<label>to <input type="email" name="to" placeholder="another address (optional)"></label>'
    '<button type="submit" name="action" value="delete" class="danger">Delete selected</button>')
# below a long list, the same buttons again; the form's one "to" field stays above (two would
# send two values, and the first, maybe empty, would count)
ADMIN_BUTTONS_END = Markup(
    '<button type="submit" name="action" value="release">Release selected</button>'
    '<button type="submit" name="action" value="delete" class="danger">Delete selected</button>')

SUMMARY = T("""<dl class="summary">
<dt>Date</dt><dd>$date</dd><dt>From</dt><dd>$sender</dd><dt>Header From</dt><dd>$header_from</dd>
<dt>To</dt><dd>$recipients</dd><dt>Subject</dt><dd><bdi>$subject</bdi></dd><dt>Reason</dt><dd>$reason</dd>
<dt>Score</dt><dd>$score</dd><dt>Quarantine ID</dt><dd>$mail_id</dd>$extra</dl>""")

MESSAGE = T("""$summary$actions
<h2>Headers</h2><pre class="headers">$headers</pre>
<h2>Content</h2>$parts""")

PART = T("""<section class="part"><h3>$label</h3>$text</section>""")

ONE_ACTION = T("""<form method="post" action="/action" class="actions">
<input type="hidden" name="csrf" value="$csrf"><input type="hidden" name="id" value="$mail_id">
<input type="hidden" name="next" value="/m/$mail_id">$buttons</form>""")

USER_ONE = Markup('<button type="submit" name="action" value="release">Release to my mailbox</button>')
ADMIN_ONE = Markup(
    '<button type="submit" name="action" value="release">Release</button>'
    '<label>to <input type="email" name="to" placeholder="another address (optional)"></label>'
    '<button type="submit" name="action" value="delete" class="danger">Delete</button>')

CONFIRM = T("""<p>Release this message to <strong>$recipient</strong>? It will be delivered to your
mailbox as it arrived.</p>$summary
<form method="post" action="$action"><input type="hidden" name="csrf" value="$csrf">
<button type="submit">Release to my mailbox</button></form>""")

AUDIT_SEARCH = T("""<form method="get" action="/audit" class="search">
<label>Message <input name="mail_id" value="$mail_id" placeholder="quarantine id"></label>
<button type="submit">Show</button>
</form>""")

AUDIT = T("""$search<p class="count">$count</p>$pages<table class="audit"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Message</th>
<th>Details</th><th>Host</th></tr></thead><tbody>$rows</tbody></table>$pages""")

AUDIT_ROW = T("""<tr><td data-label="When" class="short">$when</td><td data-label="Who" class="long">$by</td>
<td data-label="Action">$action</td><td data-label="Message"><a href="$mail_link">$mail_id</a></td><td data-label="Details" class="long">$detail</td>
<td data-label="Host">$host</td></tr>""")

RESULTS = T("""<ul class="results">$items</ul><p><a href="$back">Back</a></p>""")

ERROR = T("""<p class="error">$message</p>$more""")

NOTE = T("""<p class="note">$message</p>""")

STYLE = b"""body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa;overflow-wrap:break-word}
header{background:#2c3e50;color:#fff;padding:.6em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
header a{color:#fff}.brand{font-weight:bold}nav{display:flex;gap:1em;align-items:center;flex:1;flex-wrap:wrap}
.who{margin-left:auto;opacity:.8}main{padding:1em 1.5em;max-width:80em}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}
header a:focus-visible,header button:focus-visible{outline-color:#fff}
.skip{position:absolute;left:-100em;top:.3em;background:#fff;color:#1a5fb4;padding:.4em .8em;z-index:1}.skip:focus{left:.5em}
.hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
form.inline{display:inline}form.login,form.search{display:flex;flex-wrap:wrap;gap:.8em;align-items:end}
form.login{flex-direction:column;align-items:start;max-width:22em}label{display:flex;flex-direction:column;font-size:.9em}
input,select,button{font:inherit;padding:.3em;max-width:100%;box-sizing:border-box}button{cursor:pointer}button.danger{color:#a00}
table{border-collapse:collapse;width:100%;margin:.8em 0;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;font-size:.92em;vertical-align:top}
td.short{white-space:nowrap}td.long,h1,h3,dd{overflow-wrap:anywhere}td.long{min-width:11em}
.actions{display:flex;flex-wrap:wrap;gap:.8em;align-items:end;margin:.8em 0}
.pages{display:flex;gap:1.5em;align-items:center;margin:1em 0}
pre{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid #ddd;padding:.6em;max-height:40em;overflow:auto}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:bold}dd{margin:0;min-width:0}
.note{background:#e8f4e8;border:1px solid #9c9;padding:.5em}.error{background:#fbeaea;border:1px solid #d99;padding:.5em}
@media (max-width:40em){main{padding:.8em}
table.messages,table.messages tbody,table.messages tr,table.messages td,
table.audit,table.audit tbody,table.audit tr,table.audit td{display:block}
table.messages thead,table.audit thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}
table.messages tr,table.audit tr{border-bottom:2px solid #bbb;padding:.4em 0}
table.messages td,table.audit td{border:0;padding:.1em .5em}
table.messages td::before,table.audit td::before{content:attr(data-label) ": ";font-weight:bold}
table.messages td:first-child::before{content:""}td.short{white-space:normal}td.long{min-width:0}
dl.summary{grid-template-columns:1fr}dd{margin-bottom:.4em}}
"""


EMPTY = Markup("")


def page(title: str, content: Markup, *, nav: Markup = EMPTY, notes: Iterable[str] = ()) -> bytes:
    notes_html = join(fill(T('<p class="note">$n</p>'), n=n) for n in notes)
    return fill(LAYOUT, title=title, nav=nav, notes=notes_html, content=content).encode("utf-8")


def nav(user: str, admin: bool, csrf: str) -> Markup:
    admin_links = Markup(' <a href="/audit">Audit log</a>') if admin else Markup("")
    return fill(NAV, user=user + (" (admin)" if admin else ""), admin_links=admin_links, csrf=csrf)


def pages(newer: str | None, older: str | None, page: int, what: str = "messages") -> Markup:
    """Links to the newer and the older page of a list (either may be None: there is none)."""
    if newer is None and older is None:
        return EMPTY
    return fill(PAGES, page=page,
                newer=fill(T('<a href="$u" rel="prev">Newer $what</a>'), u=newer, what=what) if newer else EMPTY,
                older=fill(T('<a href="$u" rel="next">Older $what</a>'), u=older, what=what) if older else EMPTY)


def options(values: Iterable[str], selected: str) -> Markup:
    return join(fill(T('<option value="$v"$sel>$label</option>'), v=v, label=v or "any",
                     sel=Markup(" selected") if v == selected else Markup("")) for v in values)
