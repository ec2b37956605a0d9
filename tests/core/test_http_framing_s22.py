"""HTTP/1.0 requests with Transfer-Encoding are refused (owlery/bounded_http.py).

RFC 9112 6.1: a server that receives an HTTP/1.0 message containing Transfer-Encoding MUST treat
its framing as faulty, even beside a Content-Length. HTTP/1.0 has no chunked coding, so a 1.0
proxy in front frames such a request by its Content-Length or by the connection's close, while
Twisted decoded it as chunked: two readings of one byte stream, the shape of request smuggling.
Checked with the fuzz target's harness (tests/fuzz/test_bounded_http.py `check`: a BoundedSite
on an in-memory transport, every answer counted).
"""

from __future__ import annotations

import pytest

from tests.fuzz import test_bounded_http as fh


@pytest.mark.parametrize("framing", [b"Transfer-Encoding: chunked",
                                     b"Transfer-Encoding: chunked\r\nContent-Length: 3",
                                     b"Content-Length: 3\r\nTransfer-Encoding: chunked"])
def test_http_1_0_with_transfer_encoding_is_refused_and_smuggles_nothing(framing):
    data = b"POST / HTTP/1.0\r\nHost: a.test\r\n" + framing + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + fh.SMUGGLED
    responses = fh.check(data, [])
    assert [status for status, _, _ in responses] == [400]


def test_http_1_1_chunked_is_still_read():
    data = b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    responses = fh.check(data, [])
    assert [status for status, _, _ in responses] != [400] and len(responses) == 1
