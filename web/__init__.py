"""`owlery web`: the quarantine in a browser, for recipients (their own) and admins (everybody's).

settings.py (light), http.py, sessions.py, templates.py, mailview.py and app.py form the
sans-I/O core (a Request in, a Response out); backend.py does the blocking work (directory,
store, release); service.py and tls.py are the Twisted Web adapter; cli.py the command.
Reads the quarantine store through owlery.quarantine (the milter writes it), never the milter.
Tests: tests/web/, tests/e2e/test_web_browser.py
"""
