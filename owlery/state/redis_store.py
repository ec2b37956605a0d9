"""Redis state engine: each key is a hash {v: value, e: expiry}; each operation is one Lua script.

Scripts make every read-modify-write atomic across all MX hosts sharing the Redis. The
expiry stored in the hash is judged against the caller's `now` (so a fake clock works
against a real Redis); Redis's own key TTL (set from the same ttl) removes dead keys, so
no sweep ever runs. Every key carries `prefix`. Errors and timeouts raise StateUnavailable.
Talks to: Redis (redis-py, blocking; policyd calls it from its thread pool).
Tests: tests/state/test_contract.py (against the machine's Redis, a unique prefix per test).
"""

from __future__ import annotations

import re

import redis

from owlery.errors import StateUnavailable
from owlery.state import Entry, StateStore, Take, bucket_ttl

# Shared Lua helpers: live(k, now) returns the value or nil (deleting a dead key);
# put(k, v, exp, ttl) writes value + logical expiry + Redis TTL (ms, rounded up, +1 s slack).
_LUA_HEAD = """
local function live(k, now)
  local r = redis.call('HMGET', k, 'v', 'e')
  if not r[1] then return nil end
  if tonumber(r[2]) <= now then redis.call('DEL', k) return nil end
  return r[1]
end
local function put(k, v, now, ttl)
  if ttl <= 0 then redis.call('DEL', k) return end
  redis.call('HSET', k, 'v', v, 'e', string.format('%.6f', now + ttl))
  redis.call('PEXPIRE', k, math.ceil(ttl * 1000) + 1000)
end
"""

_GET_MANY = _LUA_HEAD + """
local now = tonumber(ARGV[1])
local out = {}
for i, k in ipairs(KEYS) do
  local v = live(k, now)
  if v then out[i] = v else out[i] = false end
end
return out
"""

_SET = _LUA_HEAD + """
put(KEYS[1], ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[2]))
return 1
"""

_ADD = _LUA_HEAD + """
local now = tonumber(ARGV[3])
if live(KEYS[1], now) then return 0 end
put(KEYS[1], ARGV[1], now, tonumber(ARGV[2]))
return 1
"""

_INCR = _LUA_HEAD + """
local now = tonumber(ARGV[3])
local old = live(KEYS[1], now)
local v = tonumber(ARGV[1])
if old then v = v + tonumber(old) end
put(KEYS[1], string.format('%d', v), now, tonumber(ARGV[2]))
return v
"""

# Same arithmetic as owlery.state.bucket_math; returns {allowed, tokens, retry} as strings
# because Redis truncates Lua numbers to integers.
_TAKE = _LUA_HEAD + """
local cost, rate, burst, now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                                    tonumber(ARGV[4]), tonumber(ARGV[5])
local old = live(KEYS[1], now)
local tokens, stamp = burst, now
if old then
  local sep = string.find(old, ',', 1, true)
  tokens = tonumber(string.sub(old, 1, sep - 1))
  stamp = tonumber(string.sub(old, sep + 1))
end
local elapsed = now - stamp
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed, retry = 0, '0'
if cost <= tokens then
  allowed = 1
  tokens = tokens - cost
elseif cost > burst or rate <= 0 then
  retry = 'never'
else
  retry = string.format('%.17g', (cost - tokens) / rate)
end
if allowed == 1 or not old then
  put(KEYS[1], string.format('%.17g', tokens) .. ',' .. string.format('%.6f', now), now, ttl)
end
return {allowed, string.format('%.17g', tokens), retry}
"""


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisStore(StateStore):
    name = "redis"

    def __init__(self, url: str, *, prefix: str = "owlery:", timeout: float = 2.0):
        self.url = url
        self.prefix = prefix
        try:
            self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                               decode_responses=True, health_check_interval=30)
        except ValueError as e:
            raise StateUnavailable(f"bad Redis URL {url!r}: {e}") from e
        self._get_many = self._redis.register_script(_GET_MANY)
        self._set = self._redis.register_script(_SET)
        self._add = self._redis.register_script(_ADD)
        self._incr = self._redis.register_script(_INCR)
        self._take = self._redis.register_script(_TAKE)
        self._scripts: dict[str, object] = {}

    def run_lua(self, source: str, keys: list[str], args: list[str]):
        """Run a caller's Lua script atomically (one round trip); keys get the prefix.

        The script body can use this engine's helpers `live(k, now)` and
        `put(k, v, now, ttl)`, so it reads and writes the same {v, e} hashes as get/set.
        """
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._redis.register_script(_LUA_HEAD + source)
        return self._call(script, keys=[self._k(k) for k in keys], args=args)

    def run_lua_many(self, source: str, calls: list[tuple[list[str], list[str]]]) -> list:
        """Several runs of one script in one round trip (a pipeline, not a MULTI: each run is
        atomic on its own). One result per call, or a StateUnavailable in its place."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._redis.register_script(_LUA_HEAD + source)

        def op():
            pipe = self._redis.pipeline(transaction=False)
            for keys, args in calls:
                script(keys=[self._k(k) for k in keys], args=args, client=pipe)
            return pipe.execute(raise_on_error=False)
        results = self._call(op)
        return [StateUnavailable(f"Redis {self.url}: {r}") if isinstance(r, Exception) else r for r in results]

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as e:
            raise StateUnavailable(f"Redis {self.url}: {e}") from e

    def ping(self) -> None:
        self._call(self._redis.ping)

    def get(self, key, now):
        return self.get_many([key], now)[0]

    def get_many(self, keys, now):
        keys = list(keys)
        if not keys:
            return []
        out = self._call(self._get_many, keys=[self._k(k) for k in keys], args=[repr(float(now))])
        return list(out)

    def set(self, key, value, ttl, now):
        self._call(self._set, keys=[self._k(key)], args=[value, repr(float(ttl)), repr(float(now))])

    def add(self, key, value, ttl, now):
        return bool(self._call(self._add, keys=[self._k(key)], args=[value, repr(float(ttl)), repr(float(now))]))

    def delete(self, key):
        return bool(self._call(self._redis.delete, self._k(key)))

    def incr(self, key, amount, ttl, now):
        return int(self._call(self._incr, keys=[self._k(key)],
                              args=[str(int(amount)), repr(float(ttl)), repr(float(now))]))

    def take(self, key, cost, rate, burst, now):
        allowed, tokens, retry = self._call(
            self._take, keys=[self._k(key)],
            args=[repr(float(cost)), repr(float(rate)), repr(float(burst)), repr(float(now)),
                  repr(bucket_ttl(rate, burst))])
        return Take(bool(int(allowed)), float(tokens), None if retry == "never" else float(retry))

    def scan(self, prefix, now, limit=1000):
        full = self._k(prefix)
        out: list[Entry] = []

        def op():
            for k in self._redis.scan_iter(match=_glob_escape(full) + "*", count=1000):
                v, e = self._redis.hmget(k, "v", "e")
                if v is None or e is None or float(e) <= now:
                    continue
                out.append(Entry(k[len(self.prefix):], v, float(e)))
                if len(out) >= limit:
                    break
        self._call(op)
        return out

    def expire(self, now, limit):
        return 0  # Redis drops keys at their TTL by itself

    def close(self):
        try:
            self._redis.close()
        except redis.RedisError:
            pass  # nothing to release on a dead connection
