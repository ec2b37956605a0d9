"""Data files shipped with the milter: the Public Suffix List (MPL-2.0, see its header).

public_suffix_list.dat is copied unmodified from Debian's `publicsuffix` package
(version 20230209.2326-1); refresh it from https://publicsuffix.org/list/.
Tests: tests/milters/test_units.py (the shipped list and its licence header).
"""
