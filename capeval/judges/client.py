"""capeval's judge client: OpenAI-compatible chat completions (``openai.AsyncOpenAI``) behind the cache.

Bounded concurrency, a timeout per attempt, retries with exponential backoff and jitter on 429, 5xx, timeouts,
connection errors and malformed bodies (honouring ``Retry-After``), optional rate limits, token and cost
accounting. The AsyncOpenAI client supplies the endpoint URL, headers and key; by default requests are posted
through its aiohttp session directly (``judge_http=fast``), since the openai package's per-request machinery
costs about four times the client CPU (``judge_http=openai`` uses it anyway). The API key is read from the
environment variable the config names when the client is created; it is never stored in the config, the cache
or any file."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from capeval.errors import CapevalError
from capeval.judges.cache import JudgeCache
from capeval.judges.config import JudgeConfig
from capeval.judges.endpoints import Endpoint, Health
from capeval.judges.prices import load_prices, price_for
from capeval.judges.protocol import (
    JudgeReply,
    JudgeRequest,
    UsageTally,
    body_json,
    key_for_body,
    request_body,
)
from capeval.judges.ratelimit import RateLimiter, estimate_tokens
from capeval.judges.writer import CacheWriter

log = logging.getLogger("capeval")

RETRY_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = {401: "the API key was rejected", 403: "access was denied", 404: "model or URL not found"}
NO_KEY = "no-key-needed"

Progress = Callable[[JudgeReply], None]


class JudgeError(CapevalError):
    """The judge endpoint can't be used at all (bad key, unknown model, wrong URL)."""


class _Malformed(Exception):
    """A 2xx reply whose body is not a usable chat completion."""


def _api_key(config: JudgeConfig) -> str:
    key = os.environ.get(config.api_key_env, "")
    if key:
        return key
    if config.base_url is None:
        raise JudgeError(
            f"no API key for the OpenAI API: set the environment variable {config.api_key_env} "
            "(or name another one with --option judge_api_key_env=VAR), or point --judge-base-url at a "
            "local endpoint")
    return NO_KEY


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date); None if absent."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Judge:
    """Runs :class:`JudgeRequest` lists through the cache and the endpoint; replies come back in order.

    Use :meth:`run` from synchronous code (it drives a private event loop in a background thread, so it
    also works inside Jupyter) or ``await`` :meth:`arun`. ``usage`` accumulates over calls;
    :meth:`take_usage` returns and resets it. Close the judge (or use it as a context manager) when done.
    """

    def __init__(self, config: JudgeConfig, cache: JudgeCache | None = None) -> None:
        self.config = config
        self.price = price_for(config.model, load_prices(config.prices))
        if self.price is None:
            log.warning("judge model %r is not in the price table; tokens are counted, cost is not "
                        "(add it with --option judge_prices=FILE)", config.model)
        self.usage = self._new_tally()
        self.cache: JudgeCache | None = None
        if config.cache != "off":
            self.cache = cache or JudgeCache(config.resolved_cache_path, config.cache_timeout)
        self._jitter = random.Random()
        self._conns: dict[int, list[_Connection]] = {}
        pool = config.endpoints
        self._targets: list[tuple[JudgeConfig, Endpoint | None]] = [(config, None)]
        if pool is not None:
            self._targets = [(_endpoint_config(config, ep), ep) for ep in pool.endpoints]
        self._health = Health(len(self._targets))
        self._writer: CacheWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._held: dict[str, tuple[JudgeReply, UsageTally]] = {}  # prefetched, not yet asked

    def _new_tally(self) -> UsageTally:
        return UsageTally(cost_usd=0.0 if self.price is not None else None)

    # -- request building ---------------------------------------------------------------------------------

    def params(self, request: JudgeRequest) -> dict[str, Any]:
        """The sampling parameters actually sent for a request (they are part of its cache key)."""
        cfg = self.config
        params: dict[str, Any] = {
            "temperature": cfg.temperature if request.temperature is None else float(request.temperature),
            "max_tokens": cfg.max_tokens if request.max_tokens is None else int(request.max_tokens),
        }
        if cfg.top_p is not None:
            params["top_p"] = cfg.top_p
        if request.top_logprobs:
            params["logprobs"] = True
            params["top_logprobs"] = int(request.top_logprobs)
        fmt = request.response_format
        if fmt is not None and cfg.response_format != "none":
            as_object = cfg.response_format == "json_object"
            params["response_format"] = {"type": "json_object"} if as_object else fmt
        return params

    def prepare(self, request: JudgeRequest) -> tuple[str, bytes]:
        """(cache key, request body bytes): the key hashes exactly the JSON body that is sent."""
        doc = body_json(request_body(self.config.model, request.messages, self.params(request), request.seed))
        return key_for_body(doc, request.template_hash), doc.encode("utf-8")

    def key(self, request: JudgeRequest) -> str:
        """The request's cache key."""
        return self.prepare(request)[0]

    def _payload(self, request: JudgeRequest) -> dict[str, Any]:
        return request_body(self.config.model, request.messages, self.params(request), request.seed)

    # -- event loop plumbing --------------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise RuntimeError("this Judge is closed")
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="capeval-judge", daemon=True)
            self._thread.start()
        return self._loop

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _writer_for(self) -> CacheWriter:
        if self._writer is None:
            assert self.cache is not None
            self._writer = CacheWriter(self.cache)
        return self._writer

    def _connections(self) -> list[_Connection]:
        """This event loop's connections: one per endpoint (one in all for a single endpoint)."""
        loop = asyncio.get_running_loop()
        conns = self._conns.get(id(loop))
        if conns is None:
            conns = [_Connection(cfg, ep) for cfg, ep in self._targets]
            self._conns[id(loop)] = conns
        return conns

    # -- public API ----------------------------------------------------------------------------------------

    def run(self, requests: Sequence[JudgeRequest], progress: Progress | None = None) -> list[JudgeReply]:
        """Synchronous :meth:`arun`."""
        return self._submit(self.arun(requests, progress))

    def prefetch(self, requests: Sequence[JudgeRequest]) -> int:
        """Send now, in the given order and with each prefix group kept together, the requests that later
        :meth:`run` calls will ask, and hold their replies until then; returns how many were sent.

        Lets a caller issue the requests of several batches as one schedule (e.g. one image's captioners back
        to back, to the same endpoint) while each batch is still scored by its own :meth:`run`. Nothing a run
        reports changes: a held reply is delivered, and its usage (requests, retries, tokens, cost) counted,
        by the :meth:`run` that asks for it, exactly as if it were sent then; requests the cache answers are
        left for that run to read (and count) as cache hits. Replies are committed to the cache as they come,
        so an interrupted prefetch resumes.
        """
        held = len(self._held)
        self._submit(self._answer(requests, None, hold=True))
        return len(self._held) - held

    async def arun(self, requests: Sequence[JudgeRequest],
                   progress: Progress | None = None) -> list[JudgeReply]:
        """Answer every request (cache first, then the endpoint with bounded concurrency), in order.

        Identical requests (same cache key) are sent once. Fatal problems (rejected key, unknown model, an
        unusable cache) raise; every other failure ends as a reply with ``error`` set and is counted.
        """
        return await self._answer(requests, progress, hold=False)

    async def _answer(self, requests: Sequence[JudgeRequest], progress: Progress | None,
                      hold: bool) -> list[JudgeReply]:
        """:meth:`arun`, or with ``hold`` :meth:`prefetch` (replies and their usage kept in ``_held``)."""
        replies: list[JudgeReply | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        first: dict[str, tuple[JudgeRequest, bytes]] = {}
        for i, req in enumerate(requests):
            k, body = self.prepare(req)
            groups.setdefault(k, []).append(i)
            if k not in first:
                first[k] = (req, body)

        def deliver(k: str, reply: JudgeReply) -> None:
            for i in groups[k]:
                replies[i] = reply
                if progress is not None:
                    progress(reply)

        if hold:
            wanted = [k for k in groups if k not in self._held]
        else:  # replies prefetched for this run: delivered, and counted, as if sent now
            for k in [k for k in groups if k in self._held]:
                reply, tally = self._held.pop(k)
                self.usage.add(tally)
                deliver(k, reply)
            wanted = [k for k in groups if replies[groups[k][0]] is None]
        hits = self.cache.get_many({k: groups[k] for k in wanted}) \
            if wanted and self.cache is not None and self.config.cache == "on" else {}
        for k, c in hits.items() if not hold else ():  # a prefetch leaves cache hits for the run to count
            reply = JudgeReply(k, c.text, cached=True, prompt_tokens=c.prompt_tokens,
                               completion_tokens=c.completion_tokens, finish_reason=c.finish_reason,
                               logprobs=c.logprobs)
            for i in groups[k]:
                replies[i] = reply
                self.usage.cache_hits += 1
                if progress is not None:
                    progress(reply)
        todo = [k for k in wanted if k not in hits]
        commits: list[asyncio.Future] = []
        if todo:
            self._connections()  # fail fast (missing key) before starting workers
            # requests of one prefix group (one image's captioners) are sent one after another by one worker,
            # so a prefix-caching server finds the shared prefix in the slot that just evaluated it
            units: dict[str, list[str]] = {}
            for k in todo:
                group = first[k][0].group
                units.setdefault(group or f"\0{k}", []).append(k)
            it = iter(units.values())

            def keep(k: str, reply: JudgeReply, tally: UsageTally) -> None:
                if hold:
                    self._held[k] = (reply, tally)
                else:
                    deliver(k, reply)

            async def worker() -> None:
                for unit in it:
                    for k in unit:
                        tally = self._new_tally() if hold else self.usage
                        reply, committed = await self._call(k, *first[k], tally)
                        if committed is None:
                            keep(k, reply, tally)
                        else:  # handed on once committed; the worker moves on to its next call meanwhile
                            committed.add_done_callback(
                                lambda f, k=k, reply=reply, tally=tally:
                                f.cancelled() or f.exception() or keep(k, reply, tally))
                            commits.append(committed)

            width = self.config.endpoints.concurrency if self.config.endpoints else self.config.concurrency
            tasks = [asyncio.ensure_future(worker()) for _ in range(min(width, len(units)))]
            try:
                done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()
        if commits:
            await asyncio.gather(*commits)  # a failed commit raises CacheError here
        return [r for r in replies if r is not None]

    def take_usage(self) -> UsageTally:
        """The usage accumulated since the last call, and reset it."""
        usage, self.usage = self.usage, self._new_tally()
        return usage

    def close(self) -> None:
        """Close HTTP clients, stop the background loop, close the cache."""
        if self._closed:
            return
        if self._loop is not None:
            async def _close_all() -> None:
                for conns in self._conns.values():
                    for conn in conns:
                        await conn.close()

            try:
                self._submit(_close_all())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._thread is not None:
                    self._thread.join(timeout=10)
                self._loop.close()
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self.cache is not None:
            self.cache.close()

    async def aclose(self) -> None:
        """For :meth:`arun` callers on their own event loop: close this loop's HTTP client."""
        for conn in self._conns.pop(id(asyncio.get_running_loop()), []):
            await conn.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- one call with retries ------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max, self.config.backoff * (2 ** attempt))
        return ceiling / 2 + self._jitter.uniform(0, ceiling / 2)

    async def _call(self, key: str, request: JudgeRequest, body: bytes,
                    tally: UsageTally) -> tuple[JudgeReply, asyncio.Future | None]:
        """One judgment with retries (and, over a pool, failover) -> (reply, its cache commit or None).

        Over an endpoint pool, a failed attempt is re-sent at once to the next endpoint of the key's order that
        has not failed it (a failover, which uses no retry); once every endpoint has failed it, the usual backoff
        and retry follow. One judgment is counted once, however many endpoints it took.
        """
        cfg = self.config
        conns = self._connections()
        pool = cfg.endpoints
        # a prefix group (one image's captioners) is routed as one, so its shared prompt prefix is evaluated once
        order = pool.order(request.group or key) if pool is not None else [0]
        tried: set[int] = set()
        estimate = 0
        if any(c.limiter.active for c in conns):
            estimate = estimate_tokens(request.messages, int(self.params(request)["max_tokens"]))
        last_error = ""
        kind = ""
        attempts = 0
        retries_left = cfg.retries
        while True:
            idx = self._health.pick(order, tried)
            if idx is None:  # every endpoint failed this request or is cooling down: start a new round
                tried.clear()
                idx = self._health.pick(order, tried)
                idx = order[0] if idx is None else idx
            conn = conns[idx]
            if conn.limiter.active:
                await conn.limiter.acquire(estimate)
            attempts += 1
            tally.requests += 1
            if conn.name:
                tally.count_endpoint(conn.name, "requests")
            delay: float | None = None
            outage = False
            try:
                async with conn.slots:
                    raw = await _within(conn.send(conn.body_for(body, request, self), request, self), cfg.timeout)
                text, finish, pt, ct, logprobs, cached_pt = _extract(raw)
            except _Status as exc:
                if exc.status in FATAL_STATUS:
                    where = f"judge endpoint {conn.name} ({conn.base_url})" if conn.name else \
                        f"judge endpoint {cfg.base_url or 'OpenAI'}"
                    raise JudgeError(f"{where} answered HTTP {exc.status} ({FATAL_STATUS[exc.status]}) for model "
                                     f"{conn.model!r}: {_short(exc.message)}") from None
                kind, last_error = f"http_{exc.status}", f"HTTP {exc.status}: {_short(exc.message)}"
                if exc.status not in RETRY_STATUS and exc.status < 500:
                    self._attempt_failed(conn, idx, False, tally)
                    break  # a request the endpoint will never accept (e.g. too long): a counted failure
                delay = retry_after_seconds(exc.headers)
            except (asyncio.TimeoutError, TimeoutError):
                kind, last_error, outage = "timeout", f"no reply within {cfg.timeout:g}s", True
            except _Unreachable as exc:
                kind, last_error, outage = "connection", f"connection error: {_short(str(exc))}", True
            except _Malformed as exc:
                kind, last_error = "malformed", f"malformed reply: {_short(str(exc))}"
            else:
                self._health.succeeded(idx)
                price_cost = self.price.cost(pt, ct) if self.price is not None else 0.0
                tally.prompt_tokens += pt
                tally.completion_tokens += ct
                tally.cached_prompt_tokens += cached_pt
                if tally.cost_usd is not None:
                    tally.cost_usd += price_cost
                if request.top_logprobs and not logprobs:
                    # asked for likelihoods, got none: the endpoint can't do it; retrying would not help and
                    # caching would hide it on the next run. A counted failure, never a score.
                    kind, last_error = "no_logprobs", ("the reply carries no logprobs (does the endpoint "
                                                       "support logprobs/top_logprobs?)")
                    break
                committed = None
                if self.cache is not None:
                    committed = self._writer_for().submit((key, cfg.model, text, pt, ct, finish, logprobs))
                tally.completed += 1
                if conn.name:
                    tally.count_endpoint(conn.name, "completed")
                return JudgeReply(key, text, prompt_tokens=pt, completion_tokens=ct, finish_reason=finish,
                                  attempts=attempts, logprobs=logprobs, cached_tokens=cached_pt), committed
            self._attempt_failed(conn, idx, outage, tally)
            tried.add(idx)
            if pool is not None and self._health.pick(order, tried) is not None:
                tally.failovers += 1
                log.debug("judge call failed on %s (%s); re-sent to another endpoint", conn.name, last_error)
                continue
            if retries_left <= 0:
                break
            retries_left -= 1
            tally.retries += 1
            wait = self._backoff(cfg.retries - retries_left - 1) if delay is None else min(delay, cfg.backoff_max)
            log.debug("judge call failed (%s); retry %d in %.2fs", last_error, cfg.retries - retries_left, wait)
            await asyncio.sleep(wait)
        tally.errors += 1
        tally.by_error[kind] = tally.by_error.get(kind, 0) + 1
        return JudgeReply(key, None, error=f"gave up after {attempts} attempt(s): {last_error}",
                          attempts=attempts, error_kind=kind), None

    def _attempt_failed(self, conn: _Connection, idx: int, outage: bool, tally: UsageTally) -> None:
        if conn.name:
            tally.count_endpoint(conn.name, "errors")
            self._health.failed(idx, outage)


def _endpoint_config(config: JudgeConfig, ep: Endpoint) -> JudgeConfig:
    """The settings of one pool endpoint: its URL, key variable, limits; everything else from the run."""
    return config.replace(base_url=ep.base_url, api_key_env=ep.api_key_env or "", concurrency=ep.concurrency,
                          rpm=ep.rpm, tpm=ep.tpm, endpoints=None)


class _Status(Exception):
    """A non-2xx answer."""

    def __init__(self, status: int, headers: Any, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.headers, self.message = status, headers, message


class _Unreachable(Exception):
    """The connection failed or dropped (refused, reset, truncated body)."""


class _Connection:
    """One event loop's AsyncOpenAI client (its URL, headers and key) and the way requests are sent.

    ``http="fast"`` (default): the POST goes straight through the aiohttp session with the URL and headers the
    AsyncOpenAI client built; ``http="openai"``: every request goes through ``AsyncOpenAI.post`` (the openai
    package's full request path, over the same aiohttp transport; about 4x the client CPU per request).
    """

    def __init__(self, config: JudgeConfig, endpoint: Endpoint | None = None) -> None:
        import httpx
        from openai import AsyncOpenAI

        from capeval.judges.transport import AiohttpTransport

        self.name = endpoint.name if endpoint is not None else ""
        self.base_url = config.base_url
        self.model = endpoint.model if endpoint is not None else config.model
        self.pool_model = config.model
        # a pool endpoint has its own concurrency cap; a single endpoint's is the number of workers
        self.slots: Any = asyncio.Semaphore(config.concurrency) if endpoint is not None else _NoLimit()
        if endpoint is not None and endpoint.api_key_env and not os.environ.get(endpoint.api_key_env):
            raise JudgeError(f"judge endpoint {endpoint.name} ({endpoint.base_url}): the environment variable "
                             f"{endpoint.api_key_env} holding its API key is not set")
        self.mode = config.http
        self.transport = AiohttpTransport(limit=max(100, 2 * config.concurrency))
        http = httpx.AsyncClient(transport=self.transport, follow_redirects=True,
                                 timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)))
        self.client = AsyncOpenAI(api_key=_api_key(config), base_url=config.base_url, max_retries=0,
                                  timeout=config.timeout, http_client=http,
                                  default_headers=config.header_dict() or None)
        self.url = str(self.client.base_url).rstrip("/") + "/chat/completions"
        query = dict(self.client.default_query)
        if query:
            self.url += "?" + urllib.parse.urlencode(query)
        merged = {**self.client.default_headers, **self.client.auth_headers, "Content-Type": "application/json"}
        # the client's telemetry headers (X-Stainless-*) are left out of the fast path
        self.headers = {k: v for k, v in merged.items() if isinstance(v, str) and not k.startswith("X-Stainless")}
        self.limiter = RateLimiter(config.rpm, config.tpm)

    def body_for(self, body: bytes, request: JudgeRequest, judge: Judge) -> bytes:
        """The request body for this endpoint: the pool's body, with the endpoint's own model name if it differs."""
        if self.model == self.pool_model:
            return body
        return body_json({**judge._payload(request), "model": self.model}).encode("utf-8")

    async def send(self, body: bytes, request: JudgeRequest, judge: Judge) -> bytes:
        """POST one chat completion; the raw 2xx body, or _Status / _Unreachable."""
        if self.mode == "openai":
            return await self._send_openai({**judge._payload(request), "model": self.model})
        import aiohttp

        try:
            async with self.transport.session().post(self.url, data=body, headers=self.headers,
                                                     allow_redirects=True) as resp:
                content = await resp.read()
                if resp.status >= 300:
                    raise _Status(resp.status, resp.headers, _error_message(content))
                return content
        except aiohttp.ClientError as exc:
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from None

    async def _send_openai(self, payload: dict[str, Any]) -> bytes:
        import httpx
        import openai

        try:
            resp = await self.client.post("/chat/completions", cast_to=httpx.Response, body=payload)
            return resp.content
        except openai.APIStatusError as exc:
            raise _Status(exc.status_code, exc.response.headers, exc.message) from None
        except openai.APITimeoutError:
            raise TimeoutError from None
        except openai.APIConnectionError as exc:
            raise _Unreachable(str(exc.__cause__ or exc)) from None

    async def close(self) -> None:
        """Close the client and its aiohttp session."""
        await self.client.close()
        await self.transport.aclose()


class _NoLimit:
    """An async context manager that never waits (the single-endpoint path: workers are the limit)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: Any) -> None:
        return None


def _error_message(content: bytes) -> str:
    try:
        doc = json.loads(content)
        err = doc.get("error", doc) if isinstance(doc, dict) else doc
        return str(err.get("message", err)) if isinstance(err, dict) else str(err)
    except ValueError:
        return content[:200].decode("utf-8", "replace")


async def _within(coro: Coroutine[Any, Any, Any], seconds: float) -> Any:
    """Await ``coro`` with a deadline (asyncio.timeout where available: no extra task per call)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _extract(body: bytes) -> tuple[str, str | None, int, int, list[dict[str, Any]] | None, int]:
    """(text, finish_reason, prompt_tokens, completion_tokens, logprobs, cached prompt tokens) of a chat
    completion; else _Malformed. ``logprobs`` is ``choices[0].logprobs.content`` reduced to token, logprob and
    top_logprobs (None when absent); cached tokens come from ``usage.prompt_tokens_details.cached_tokens``
    (OpenAI, llama.cpp) or llama.cpp's ``timings.cache_n``."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Malformed(f"body is not JSON ({exc}): {body[:80]!r}") from None
    try:
        choice = doc["choices"][0]
        message = choice["message"]
        text = message.get("content")
        if text is None:
            text = message.get("refusal")
        if not isinstance(text, str):
            raise _Malformed("the reply has no message content")
        usage = doc.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        if cached is None:
            cached = (doc.get("timings") or {}).get("cache_n")
        return (text, choice.get("finish_reason"), int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0), _logprobs(choice.get("logprobs")), int(cached or 0))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _Malformed(f"not a chat completion ({type(exc).__name__}: {exc})") from None


def _logprobs(value: Any) -> list[dict[str, Any]] | None:
    """The per-token log-probabilities of a choice, kept small: token, logprob, top_logprobs [token, logprob]."""
    if not isinstance(value, dict) or not isinstance(value.get("content"), list):
        return None
    out = []
    for item in value["content"]:
        if not isinstance(item, dict):
            return None
        tops = item.get("top_logprobs") or []
        out.append({"token": item.get("token"), "logprob": item.get("logprob"),
                    "top_logprobs": [{"token": t.get("token"), "logprob": t.get("logprob")}
                                     for t in tops if isinstance(t, dict)]})
    return out or None


def run_requests(requests: Sequence[JudgeRequest], config: JudgeConfig,
                 progress: Progress | None = None) -> tuple[list[JudgeReply], UsageTally]:
    """One-shot helper: open a :class:`Judge`, answer ``requests`` in order, close it -> (replies, usage)."""
    with Judge(config) as judge:
        replies = judge.run(requests, progress)
        return replies, judge.take_usage()
