"""The composition root: the `owlery` command, `owlery run`'s supervisor and `owlery postfix`.

The one package that knows every product (policyd, milters, sieve) and imports them to
register their subcommands; nothing imports it (checked by tests/core/test_import_contracts.py).
"""
