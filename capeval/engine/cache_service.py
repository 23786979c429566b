"""One writer for the judge cache of a Ray run: an actor on the driver's machine owns the SQLite file.

Workers (on any machine of the cluster) read and write the cache through :class:`RemoteCache`, which has the
:class:`capeval.judges.cache.JudgeCache` methods the judge uses. Writes arrive already batched by each
worker's :class:`capeval.judges.writer.CacheWriter` and are committed by the actor before the worker hands
the replies on, so a worker or the driver killed with SIGKILL loses no completed call: what is committed is
never asked again, and the file has a single writer whatever the number of workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capeval.judges.cache import CachedReply, JudgeCache


class CacheService:
    """The actor's body: a :class:`JudgeCache` behind remote calls."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.cache = JudgeCache(path, busy_timeout)

    def get_many(self, keys: list[str]) -> dict[str, tuple]:
        """Cached replies as plain tuples (text, prompt_tokens, completion_tokens, finish_reason)."""
        return {k: (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason)
                for k, c in self.cache.get_many(keys).items()}

    def put_many(self, rows: list[tuple]) -> int:
        """Commit rows; returns how many."""
        self.cache.put_many(rows)
        return len(rows)

    def size(self) -> int:
        """Number of cached judgments."""
        return len(self.cache)

    def close(self) -> None:
        """Close the SQLite connection."""
        self.cache.close()


class RemoteCache:
    """A worker's view of the cache actor, with the JudgeCache methods the judge and its writer call."""

    def __init__(self, actor: Any, path: str) -> None:
        self.actor = actor
        self.path = Path(path)

    def get_many(self, keys) -> dict[str, CachedReply]:
        """Cached replies for those keys that are present."""
        import ray

        found = ray.get(self.actor.get_many.remote(list(dict.fromkeys(keys))))
        return {k: CachedReply(*v) for k, v in found.items()}

    def get(self, key: str) -> CachedReply | None:
        """One cached reply, or None."""
        return self.get_many([key]).get(key)

    def put_many(self, rows: list[tuple]) -> None:
        """Commit rows through the actor (returns once they are committed)."""
        import ray

        ray.get(self.actor.put_many.remote(list(rows)))

    def put(self, key: str, model: str, text: str, prompt_tokens: int, completion_tokens: int,
            finish_reason: str | None) -> None:
        """Store one reply."""
        self.put_many([(key, model, text, prompt_tokens, completion_tokens, finish_reason)])

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        import ray

        return int(ray.get(self.actor.size.remote()))

    def close(self) -> None:
        """The actor owns the file; the driver closes it."""
