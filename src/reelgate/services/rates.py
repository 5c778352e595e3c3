"""Per-key request rates: a token bucket per key and kind of request (creates, reads).

With ``REELGATE_REDIS_URL`` the buckets live in Redis, taken by one Lua script each time (the
script runs atomically, so processes sharing the server never race on a bucket, and it reads
the server's clock, so their clocks need not agree). Without it they live in this process's
memory: right for one process, and for several each allows the whole rate.

A Redis that cannot be reached lets requests through, logged: the rate is protection against
floods, while money (budgets, reservations) and tasks in flight are counted in the database.
"""

from __future__ import annotations

import logging
import time
from typing import Final, Protocol

import redis.asyncio as aioredis
from cachetools import LRUCache
from redis.exceptions import RedisError

from reelgate.domain.limits import Bucket, Rate, retry_after_s, take
from reelgate.errors import RateLimited

log = logging.getLogger(__name__)

CREATES: Final = "creates"
READS: Final = "reads"

# KEYS[1]: the bucket; ARGV: tokens per second, burst. Returns the wait in seconds (0: go),
# as a string, since Redis would cut a Lua number to an integer.
_TAKE: Final = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class Buckets(Protocol):
    async def take(self, name: str, rate: Rate) -> float:
        """Take a token from bucket ``name``: 0 when the request may go, else the wait."""

    async def aclose(self) -> None: ...


class MemoryBuckets:
    """This process's buckets, the least recently used forgotten past ``size``."""

    def __init__(self, size: int = 100_000) -> None:
        self._buckets: LRUCache[str, Bucket] = LRUCache(maxsize=size)

    async def take(self, name: str, rate: Rate) -> float:
        bucket, wait = take(self._buckets.get(name), rate, time.monotonic())
        self._buckets[name] = bucket
        return wait

    async def aclose(self) -> None:
        self._buckets.clear()


class RedisBuckets:
    """Buckets in Redis, shared by every process that names the same server."""

    def __init__(self, url: str, prefix: str = "reelgate:rate:") -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._script = self._redis.register_script(_TAKE)
        self._prefix = prefix

    async def take(self, name: str, rate: Rate) -> float:
        try:
            wait = await self._script(keys=[self._prefix + name], args=[rate.per_s, rate.burst])
        except (RedisError, OSError) as exc:
            log.warning("rate limits not applied: Redis is unavailable (%s)", exc)
            return 0.0
        return float(wait)

    async def aclose(self) -> None:
        await self._redis.aclose()


def buckets(redis_url: str | None) -> Buckets:
    return MemoryBuckets() if redis_url is None else RedisBuckets(redis_url)


class Rates:
    """Applies keys' rates, refusing with a 429 that says when to try again."""

    def __init__(self, store: Buckets) -> None:
        self.store = store

    async def check(self, key_id: str, rate: Rate | None, kind: str) -> None:
        if rate is None:
            return
        wait = await self.store.take(f"{key_id}:{kind}", rate)
        if wait <= 0:
            return
        retry = retry_after_s(wait)
        raise RateLimited(
            f"{kind} with this API key are limited to {rate} (bursts of {rate.burst}); "
            f"retry in {retry} s",
            retry_after_s=retry,
            headers={
                # draft-ietf-httpapi-ratelimit-headers: the policy, and what is left of it now.
                "ratelimit-policy": f'"{kind}";q={rate.count};w={rate.period_s}',
                "ratelimit": f'"{kind}";r=0;t={retry}',
            },
        )
