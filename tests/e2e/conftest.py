"""Fixtures shared by the end-to-end modules."""

import pytest


@pytest.fixture
def pf(stack):
    """The Postfix of the module's `stack` fixture (its first item), with its sink emptied."""
    postfix = stack[0]
    postfix.clear_sent()
    return postfix
