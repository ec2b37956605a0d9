"""Data files shipped with the milter: a fallback copy of the Public Suffix List (MPL-2.0, see its header).

The list normally comes from Debian's `publicsuffix` package (dmarc_public_suffix_list,
default /usr/share/publicsuffix/public_suffix_list.dat, updated by apt); this copy is read
only when that file is missing (milters/psl.py logs it). It is copied unmodified from that
package (version 20230209.2326-1) and is not refreshed automatically.
Tests: tests/milters/test_units.py (the shipped list and its licence header),
tests/milters/test_psl_loading.py (when it is used).
"""
