"""HTML of the web application: string.Template pages whose every value is escaped unless it is Markup.

No template engine: `fill(template, **values)` substitutes with html.escape (quotes too)
for every value that is not already Markup (a fragment built by this module from escaped
parts). So text from a quarantined message (subject, addresses, headers, bodies) can only
ever appear as text. Pages have no script; the style sheet is /static/style.css
(the CSP allows style from 'self' only).
Talks to: nothing. Tests: tests/web/test_app.py (hostile subjects and bodies)
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
<header><span class="brand">Owlery quarantine</span>$nav</header>
<main>
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
<label>From <input type="date" name="since" value="$since"></label>
<label>To <input type="date" name="until" value="$until"></label>
<button type="submit">Search</button>
</form>""")

LIST = T("""$search<p class="count">$count</p>
<form method="post" action="/action">
<input type="hidden" name="csrf" value="$csrf">
<table class="messages"><thead><tr><th></th><th>Date</th><th>From</th><th>To</th><th>Subject</th>
<th>Reason</th><th>Score</th><th>Status</th></tr></thead>
<tbody>$rows</tbody></table>
<div class="actions">$buttons</div>
</form>""")

ROW = T("""<tr><td><input type="checkbox" name="id" value="$mail_id" aria-label="select $mail_id"></td>
<td>$date</td><td>$sender</td><td>$recipients</td><td><a href="/m/$mail_id">$subject</a></td>
<td>$reason</td><td>$score</td><td>$status</td></tr>""")

USER_BUTTONS = Markup('<button type="submit" name="action" value="release">Release selected</button>')
ADMIN_BUTTONS = Markup(
    '<button type="submit" name="action" value="release">Release selected</button>'
    '<label>to <input type="email" name="to" placeholder="another address (optional)"></label>'
    '<button type="submit" name="action" value="delete" class="danger">Delete selected</button>')

SUMMARY = T("""<dl class="summary">
<dt>Date</dt><dd>$date</dd><dt>From</dt><dd>$sender</dd><dt>Header From</dt><dd>$header_from</dd>
<dt>To</dt><dd>$recipients</dd><dt>Subject</dt><dd>$subject</dd><dt>Reason</dt><dd>$reason</dd>
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

AUDIT = T("""<table class="audit"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Message</th>
<th>Details</th><th>Host</th></tr></thead><tbody>$rows</tbody></table>""")

AUDIT_ROW = T("""<tr><td>$when</td><td>$by</td><td>$action</td><td>$mail_id</td><td>$detail</td><td>$host</td></tr>""")

RESULTS = T("""<ul class="results">$items</ul><p><a href="$back">Back</a></p>""")

ERROR = T("""<p class="error">$message</p>$more""")

NOTE = T("""<p class="note">$message</p>""")

STYLE = b"""body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#2c3e50;color:#fff;padding:.6em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
header a{color:#fff}.brand{font-weight:bold}nav{display:flex;gap:1em;align-items:center;flex:1}
.who{margin-left:auto;opacity:.8}main{padding:1em 1.5em;max-width:80em}
form.inline{display:inline}form.login,form.search{display:flex;flex-wrap:wrap;gap:.8em;align-items:end}
form.login{flex-direction:column;align-items:start;max-width:22em}label{display:flex;flex-direction:column;font-size:.9em}
input,select,button{font:inherit;padding:.3em}button{cursor:pointer}button.danger{color:#a00}
table{border-collapse:collapse;width:100%;margin:.8em 0;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;font-size:.92em;vertical-align:top}
.actions{display:flex;gap:.8em;align-items:end;margin:.8em 0}
pre{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid #ddd;padding:.6em;max-height:40em;overflow:auto}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}
.note{background:#e8f4e8;border:1px solid #9c9;padding:.5em}.error{background:#fbeaea;border:1px solid #d99;padding:.5em}
"""


EMPTY = Markup("")


def page(title: str, content: Markup, *, nav: Markup = EMPTY, notes: Iterable[str] = ()) -> bytes:
    notes_html = join(fill(T('<p class="note">$n</p>'), n=n) for n in notes)
    return fill(LAYOUT, title=title, nav=nav, notes=notes_html, content=content).encode("utf-8")


def nav(user: str, admin: bool, csrf: str) -> Markup:
    admin_links = Markup(' <a href="/audit">Audit log</a>') if admin else Markup("")
    return fill(NAV, user=user + (" (admin)" if admin else ""), admin_links=admin_links, csrf=csrf)


def options(values: Iterable[str], selected: str) -> Markup:
    return join(fill(T('<option value="$v"$sel>$label</option>'), v=v, label=v or "any",
                     sel=Markup(" selected") if v == selected else Markup("")) for v in values)
