"""Directory lookups for policy checks: cache first (no thread hop), else the blocking pool.

`await resolve(ctx, request, address)`, `await list_policy(...)`, `await identities(...)`
answer from the directory cache on the reactor thread when they can, otherwise run the
backend in `ctx.run_blocking` with `directory_lookup_timeout` (timed as backend "directory" in
the metrics). Answers are memoised in `request.memo`, so the recipient, list and quota checks
of one request ask once.
Talks to: owlery.directory through the check context. Tests: tests/policyd/test_checks_*.py
"""

from __future__ import annotations

from typing import Any

from owlery.directory import MISS, ListPolicy, Recipient
from policyd.protocol import PolicyRequest


async def _lookup(ctx: Any, request: PolicyRequest, method: str, address: str) -> Any:
    key = (method, address)
    if key in request.memo:
        return request.memo[key]
    directory = ctx.directory
    peek = getattr(directory, "peek_" + method, None)
    value = peek(address) if peek is not None else MISS
    if value is MISS:
        value = await ctx.run_blocking(getattr(directory, method), address, backend="directory",
                                       timeout=ctx.settings.directory_lookup_timeout)
    request.memo[key] = value
    return value


async def resolve(ctx: Any, request: PolicyRequest, address: str) -> Recipient:
    return await _lookup(ctx, request, "resolve", address)


async def list_policy(ctx: Any, request: PolicyRequest, address: str) -> ListPolicy | None:
    return await _lookup(ctx, request, "list_policy", address)


async def identities(ctx: Any, request: PolicyRequest, address: str) -> frozenset[str]:
    return await _lookup(ctx, request, "identities", address)
