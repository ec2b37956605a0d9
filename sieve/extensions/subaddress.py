"""subaddress (RFC 5233): the :user and :detail address parts (done in sieve.address),
with the delimiters of sieve_recipient_delimiter.

Tests: conformance extensions/subaddress/.
"""

from sieve.extensions.base import Extension

EXTENSION = Extension(name="subaddress", address_parts=("user", "detail"))
