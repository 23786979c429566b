"""Several OpenAI-compatible endpoints serving one judge model: the ``--judge-endpoints`` YAML, routing, health.

File format (one line per field; ``endpoints`` may also be the whole document as a list)::

    model: qwen2.5-7b-instruct        # the judge model as signatures and the cache know it
                                      # (default: the first endpoint's model)
    endpoints:
      - name: gpu-a                   # default: a1, a2, ... in file order
        base_url: http://10.0.0.5:8000/v1
        model: Qwen/Qwen2.5-7B-Instruct   # the name this endpoint serves it under (default: model above)
        api_key_env: GPU_A_KEY        # name of the environment variable with its key (default: none needed)
        concurrency: 32               # requests in flight at once on this endpoint (default 16)
        rpm: 600                      # optional requests / tokens per minute limits
        tpm: 200000

Routing is deterministic: a request goes first to the endpoint that wins weighted rendezvous hashing on its
prefix group when it has one (the requests sharing a prompt prefix, e.g. one image's captioners, so that
prefix is evaluated on one server) and else on its cache key (which covers the metric's prompt template, the
sample's captions and the seed), with each endpoint's concurrency as its weight, so a rerun sends the same
request to the same place and load follows capacity. When that endpoint fails or stops answering, the
request is re-sent to the next endpoint in the same order, and the failing endpoint is skipped for a
cooldown. Every endpoint must serve the same
model: the cache key and the signature use the pool's ``model``, so where a judgment was made never moves
a score or a cache entry.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError

FIELDS = ("name", "base_url", "model", "api_key_env", "concurrency", "rpm", "tpm")
DEFAULT_CONCURRENCY = 16
COOLDOWN_SECONDS = 10.0
FAILURES_BEFORE_COOLDOWN = 3


class EndpointsError(CapevalError):
    """The endpoints file can't be used; the message names the file, the endpoint and the problem."""


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible endpoint of a pool (holds the *name* of its key variable, never the key)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    rpm: float | None = None
    tpm: float | None = None


@dataclass(frozen=True)
class EndpointPool:
    """The endpoints of one judge model, read from a ``--judge-endpoints`` file."""

    model: str
    endpoints: tuple[Endpoint, ...]
    path: str = ""

    def order(self, key: str) -> list[int]:
        """Endpoint indexes in the order a request with this cache key tries them (weighted rendezvous).

        Example:
            >>> pool = EndpointPool("m", (Endpoint("a", "http://127.0.0.1:1/v1", "m"),
            ...                           Endpoint("b", "http://127.0.0.1:2/v1", "m")))
            >>> sorted(pool.order("k1")) == [0, 1] and pool.order("k1") == pool.order("k1")
            True
        """
        scores = []
        for i, ep in enumerate(self.endpoints):
            digest = hashlib.sha256(f"{ep.name}\x00{key}".encode()).digest()
            u = (int.from_bytes(digest[:8], "big") + 0.5) / 2.0 ** 64
            scores.append((-ep.concurrency / math.log(u), i))
        return [i for _, i in sorted(scores, reverse=True)]

    @property
    def concurrency(self) -> int:
        """Requests in flight at once over the whole pool."""
        return sum(ep.concurrency for ep in self.endpoints)


def _number(value: Any, what: str, where: str, integer: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        kind = "a positive integer" if integer else "a positive number"
        raise EndpointsError(f"{where}: {what} must be {kind}, got {value!r}")
    if value <= 0:
        raise EndpointsError(f"{where}: {what} must be > 0, got {value!r}")
    return int(value) if integer else float(value)


def parse_endpoints(doc: Any, path: str = "<endpoints>") -> EndpointPool:
    """Validate a parsed endpoints document (see the module doc) into an :class:`EndpointPool`."""
    model = None
    if isinstance(doc, dict):
        unknown = sorted(set(doc) - {"model", "endpoints"})
        if unknown:
            raise EndpointsError(f"judge endpoints {path}: unknown top-level field(s) {unknown}; "
                                 "expected model, endpoints")
        model = doc.get("model")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise EndpointsError(f"judge endpoints {path}: model must be a non-empty string, got {model!r}")
        doc = doc.get("endpoints")
    if not isinstance(doc, list) or not doc:
        raise EndpointsError(f"judge endpoints {path}: expected a non-empty list of endpoints under 'endpoints'")
    endpoints: list[Endpoint] = []
    for n, item in enumerate(doc, 1):
        where = f"judge endpoints {path}: endpoint {n}"
        if not isinstance(item, dict):
            raise EndpointsError(f"{where}: expected a mapping with base_url, got {type(item).__name__}")
        if item.get("name"):
            where += f" ({item['name']})"
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            raise EndpointsError(f"{where}: unknown field(s) {unknown}; expected {', '.join(FIELDS)}")
        url = item.get("base_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise EndpointsError(f"{where}: base_url must be an http(s) URL, got {url!r}")
        ep_model = item.get("model", model)
        if not isinstance(ep_model, str) or not ep_model.strip():
            raise EndpointsError(f"{where}: no model (set model on the endpoint or at the top of the file)")
        key_env = item.get("api_key_env")
        if key_env is not None and (not isinstance(key_env, str) or not key_env.isidentifier()):
            raise EndpointsError(f"{where}: api_key_env must name an environment variable, got {key_env!r}")
        name = str(item.get("name") or f"a{n}")
        endpoints.append(Endpoint(
            name=name, base_url=url.rstrip("/"), model=ep_model, api_key_env=key_env,
            concurrency=_number(item.get("concurrency", DEFAULT_CONCURRENCY), "concurrency", where, True),
            rpm=_number(item.get("rpm"), "rpm", where, False), tpm=_number(item.get("tpm"), "tpm", where, False)))
    names = [ep.name for ep in endpoints]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise EndpointsError(f"judge endpoints {path}: endpoint name(s) {dup} given twice")
    return EndpointPool(model=model or endpoints[0].model, endpoints=tuple(endpoints), path=path)


def load_endpoints(path: str | Path) -> EndpointPool:
    """Read a ``--judge-endpoints`` YAML file."""
    import yaml

    p = Path(path).expanduser()
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EndpointsError(f"judge endpoints {p}: can't read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise EndpointsError(f"judge endpoints {p}: not valid YAML{at} ({getattr(exc, 'problem', exc)})") from None
    return parse_endpoints(doc, str(p))


class Health:
    """Per-endpoint health seen by one judge: consecutive failures and a cooldown after an outage."""

    def __init__(self, n: int, clock=time.monotonic) -> None:
        self.failures = [0] * n
        self.down_until = [0.0] * n
        self._clock = clock

    def usable(self, i: int) -> bool:
        """Whether endpoint ``i`` is outside its cooldown."""
        return self.down_until[i] <= self._clock()

    def pick(self, order: list[int], tried: set[int]) -> int | None:
        """The first usable endpoint of ``order`` not yet tried for this request (None when none is left)."""
        for i in order:
            if i not in tried and self.usable(i):
                return i
        return None

    def failed(self, i: int, outage: bool) -> None:
        """Record a failed attempt; an outage (refused, dropped, timed out) starts the cooldown at once."""
        self.failures[i] += 1
        if outage or self.failures[i] >= FAILURES_BEFORE_COOLDOWN:
            self.down_until[i] = self._clock() + COOLDOWN_SECONDS

    def succeeded(self, i: int) -> None:
        """Record a reply: the endpoint is healthy again."""
        self.failures[i] = 0
        self.down_until[i] = 0.0
