"""Redis state engine: each key is a hash {v: value, e: expiry}; each operation is one Lua script.

Scripts make every read-modify-write atomic across all MX hosts sharing the Redis (a rate
limit's buckets are all taken in one script; a greylist write-behind batch is one script).
Batches of script runs (rate-limit takes from policyd's state thread) go out pipelined in
one round trip. Declares `Capability.SHARED` only: no transactions (several steps at once
go through one script), and every read is a network round trip. The
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
from owlery.state.base import Capability, Entry, StateStore, Take, bucket_ttl

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

# All-or-nothing take of several buckets (StateStore.take_all; take() is a take_all of one),
# the same arithmetic as owlery.state.bucket_math: KEYS are the buckets, ARGV is now then
# (cost, rate, burst, ttl) per key. Every bucket is decided first (a key listed twice sees
# its earlier take); only when all have room are they written. Returns one
# {allowed, tokens, retry} per key, as strings because Redis truncates Lua numbers. The keys are all passed as KEYS, so Redis Cluster can
# route it (it needs them in one slot, e.g. a {hash tag} in state_key_prefix).
_TAKE_ALL = _LUA_HEAD + """
local now = tonumber(ARGV[1])
local state, charged, order = {}, {}, {}
local out, all_ok = {}, true
for i, k in ipairs(KEYS) do
  local a = 1 + (i - 1) * 4
  local cost, rate, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local s = state[k]
  if s == nil then
    s = {false, false}
    local old = live(k, now)
    if old then
      local sep = string.find(old, ',', 1, true)
      s = {tonumber(string.sub(old, 1, sep - 1)), tonumber(string.sub(old, sep + 1))}
    end
    state[k] = s
  end
  local tokens, stamp = s[1], s[2]
  if not tokens then tokens, stamp = burst, now end
  local elapsed = now - stamp
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate)
  local allowed, retry = 0, '0'
  if cost <= tokens then
    allowed = 1
    tokens = tokens - cost
    state[k] = {tokens, now}
    if not charged[k] then order[#order + 1] = k end
    charged[k] = tonumber(ARGV[a + 4])
  elseif cost > burst or rate <= 0 then
    retry = 'never'
    all_ok = false
  else
    retry = string.format('%.17g', (cost - tokens) / rate)
    all_ok = false
  end
  out[i] = {allowed, string.format('%.17g', tokens), retry}
end
if all_ok then
  for _, k in ipairs(order) do
    put(k, string.format('%.17g', state[k][1]) .. ',' .. string.format('%.6f', now), now, charged[k])
  end
end
return out
"""


# A batch of writes (StateStore.write_many; its Python twin is the base class's): KEYS are
# (key, gate) per write (the gate slot repeats the key when there is none), ARGV is
# (op, value, ttl, now, gated 1/0, gate ttl) per write. Returns one string per write:
# '1'/'0' (add), '1' (set), the new count (incr) or '-' (the gate was already there).
_WRITE_MANY = _LUA_HEAD + """
local out = {}
for i = 1, #KEYS / 2 do
  local k, g, a = KEYS[2 * i - 1], KEYS[2 * i], (i - 1) * 6
  local op, v, ttl, now = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local gated = ARGV[a + 5] == '1'
  if gated and live(g, now) then
    out[i] = '-'
  else
    if gated then put(g, '1', now, tonumber(ARGV[a + 6])) end
    if op == 'add' then
      if live(k, now) then out[i] = '0' else put(k, v, now, ttl) out[i] = '1' end
    elseif op == 'set' then
      put(k, v, now, ttl)
      out[i] = '1'
    else
      local old = live(k, now)
      local c = tonumber(v)
      if old then c = c + tonumber(old) end
      put(k, string.format('%d', c), now, ttl)
      out[i] = string.format('%d', c)
    end
  end
end
return out
"""
_WRITES_PER_SCRIPT = 500     # one script run stays short: Redis serves nobody else meanwhile
_WRITE_OPS = ("add", "set", "incr")


def write_many_calls(writes: list, prefix: str) -> list[tuple[list[str], list[str]]]:
    """(KEYS, ARGV) of each `_WRITE_MANY` script run for a batch (at most _WRITES_PER_SCRIPT
    writes each), keys prefixed. Shared by RedisStore and the reactor client (redis_reactor)."""
    calls = []
    for start in range(0, len(writes), _WRITES_PER_SCRIPT):
        keys: list[str] = []
        args: list[str] = []
        for w in writes[start:start + _WRITES_PER_SCRIPT]:
            if w.op not in _WRITE_OPS:
                raise ValueError(f"unknown write op {w.op!r}")
            keys += [prefix + w.key, prefix + (w.gate if w.gate is not None else w.key)]
            args += [w.op, w.value if w.op != "incr" else str(int(w.value)), repr(float(w.ttl)),
                     repr(float(w.now)), "1" if w.gate is not None else "0", repr(float(w.gate_ttl))]
        calls.append((keys, args))
    return calls


def write_many_results(writes: list, replies: list) -> list[bool | int | None]:
    """The per-write results (see StateStore.write_many) from the scripts' replies; ValueError
    when they do not fit the batch (a reply out of step)."""
    out: list = []
    for r in replies:
        out += r
    if len(out) != len(writes) or not all(type(r) is str for r in out):
        raise ValueError(f"{str(out)[:40]} for {len(writes)} writes")
    return [None if r == "-" else (int(r) if w.op == "incr" else r == "1") for w, r in zip(writes, out)]


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisStore(StateStore):
    name = "redis"
    capabilities = frozenset({Capability.SHARED})

    def __init__(self, url: str, *, prefix: str = "owlery:", timeout: float = 2.0):
        from owlery.secrets import redact
        self.url = redact(url)          # only ever shown in errors and logs
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
        self._take_all = self._redis.register_script(_TAKE_ALL)
        self._write_many = self._redis.register_script(_WRITE_MANY)

    def _pipelined(self, script, calls: list[tuple[list[str], list[str]]]) -> list:
        """EVALSHA of one script per call, all in one pipelined round trip; keys already prefixed.

        Not through redis-py's script pipelining, which sends SCRIPT EXISTS first (a second
        round trip every batch). A server that does not know the script (restarted, flushed)
        answers NOSCRIPT without running it, so those calls are loaded and sent again.
        """
        def send(batch):
            pipe = self._redis.pipeline(transaction=False)
            for keys, args in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return pipe.execute(raise_on_error=False)

        def op():
            results = send(calls)
            missing = [i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)]
            if missing:
                script.sha = self._redis.script_load(script.script)
                for i, r in zip(missing, send([calls[i] for i in missing])):
                    results[i] = r
            return results
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

    def take_all(self, takes, now):
        takes = list(takes)
        if not takes:
            return []
        keys, args = self._take_all_call(takes, now)
        return self._takes(self._call(self._take_all, keys=keys, args=args))

    def take_all_many(self, batch):
        calls = [self._take_all_call(list(takes), now) for takes, now in batch if takes]
        results = iter(self._pipelined(self._take_all, calls) if calls else [])
        out: list = []
        for takes, _ in batch:
            if not takes:
                out.append([])
                continue
            r = next(results)
            out.append(r if isinstance(r, Exception) else self._takes(r))
        return out

    def write_many(self, writes):
        """The batch in scripts of at most _WRITES_PER_SCRIPT writes, pipelined in one round
        trip; each script is atomic (a batch longer than one script is not, as a whole)."""
        writes = list(writes)
        if not writes:
            return []
        calls = write_many_calls(writes, self.prefix)
        replies = self._pipelined(self._write_many, calls)
        for r in replies:
            if isinstance(r, Exception):
                raise r
        try:
            return write_many_results(writes, replies)
        except ValueError as e:
            raise StateUnavailable(f"Redis {self.url}: {e}") from None

    def _take_all_call(self, takes, now) -> tuple[list[str], list[str]]:
        args = [repr(float(now))]
        for _, cost, rate, burst in takes:
            args += [repr(float(cost)), repr(float(rate)), repr(float(burst)), repr(bucket_ttl(rate, burst))]
        return [self._k(key) for key, *_ in takes], args

    @staticmethod
    def _takes(res) -> list[Take]:
        return [Take(bool(int(a)), float(t), None if r == "never" else float(r)) for a, t, r in res]

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
