"""index (RFC 5260 6): :last without :index is a compile error (Pigeonhole's sievec agrees), on
header, address and date alike; an extension's rule for tags it adds to other commands runs
through Extension.tag_checks."""

import pytest

from sieve.api import SieveCompileError, compile_script


@pytest.mark.parametrize("test", ['header :last "subject" "x"', 'address :last "from" "a@b.c"',
                                  'date :last "date" "year" "2026"'])
def test_last_without_index_is_refused(test):
    with pytest.raises(SieveCompileError, match="cannot be specified without the :index tag"):
        compile_script(f'require ["index", "date"];\nif {test} {{ keep; }}\n'.encode())


def test_last_with_index_compiles():
    compile_script(b'require ["index"];\nif header :index 1 :last "subject" "x" { keep; }\n')
