"""Group commit for the judge cache: replies are committed from a background thread, many per transaction.

A reply is handed on only once its commit has landed (the caller gets a future per row), so the crash guarantee is the
same as one commit per reply (what is in the cache is never asked again; what is not was never handed on),
while under load one transaction carries every reply that arrived during the previous commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from capeval.judges.cache import CacheError, JudgeCache

Row = tuple  # (key, model, text, prompt_tokens, completion_tokens, finish_reason, logprobs)
MAX_BATCH = 512


def _settle(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class CacheWriter:
    """One writer thread per cache; :meth:`put` returns once the row is committed."""

    def __init__(self, cache: JudgeCache) -> None:
        self.cache = cache
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="capeval-judge-cache", daemon=True)
        self._thread.start()

    def submit(self, row: Row) -> asyncio.Future:
        """Queue a row; the returned future (of the running loop) resolves once the row is committed.

        The judge hands a reply on only when its future resolves, but its worker is free to send the next
        request meanwhile, so a commit never holds a concurrency slot.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((row, future, loop))
        return future

    async def put(self, row: Row) -> None:
        """Queue a row and wait for its commit (raises :class:`CacheError` if the commit fails)."""
        await self.submit(row)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            error: BaseException | None = None
            try:
                self.cache.put_many([row for row, _, _ in batch])
            except CacheError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - handed to the waiting caller, never lost
                error = CacheError(f"judge cache {self.cache.path}: write failed ({exc})")
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
            for _, future, loop in batch:
                by_loop.setdefault(loop, []).append(future)
            for loop, futures in by_loop.items():  # one wake-up per loop and batch
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, futures, error)

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)
