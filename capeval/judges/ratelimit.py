"""Optional client-side rate limits for judge calls: token buckets for requests/min and tokens/min."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """A bucket refilled at ``per_minute / 60`` units per second, holding at most one second's worth.

    ``acquire(n)`` waits until ``n`` units are available and takes them; a request larger than the bucket
    waits for a full bucket and then drives the level negative, so long-run throughput stays at the limit.
    """

    def __init__(self, per_minute: float, clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 60.0)
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, amount: float = 1.0) -> None:
        """Take ``amount`` units, sleeping as long as needed."""
        async with self._lock:
            need = min(amount, self.capacity)
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= amount
                    return
                await asyncio.sleep((need - self.level) / self.rate)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits (either may be None: unlimited)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return self.requests is not None or self.tokens is not None

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait until one more request of about ``estimated_tokens`` tokens fits both limits."""
        if self.requests is not None:
            await self.requests.acquire(1.0)
        if self.tokens is not None:
            await self.tokens.acquire(float(max(1, estimated_tokens)))


def estimate_tokens(messages: list[dict], max_tokens: int) -> int:
    """Rough token count of a request (4 characters per token, 765 per image) plus its completion budget."""
    chars = 0
    images = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    chars += len(part.get("text", ""))
                elif part.get("type") == "image_url":
                    images += 1
    return chars // 4 + 765 * images + int(max_tokens)
