"""The socketmap table server: Postfix's virtual, transport and relay tables answered from the directory.

protocol.py (sans-I/O netstring codec) · maps.py (the tables, pure) · settings.py · service.py
(Twisted adapter) · cli.py (`owlery socketmap`).
Talks to: Postfix (socketmap_table(5)), the directory. Tests: tests/socketmap/
"""
