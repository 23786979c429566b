"""A fault-injecting OpenAI-compatible chat server (aiohttp) for reliability tests and benchmarks.

Replies are deterministic functions of (messages, seed): when the request carries a ``json_schema``
response format, the reply is a JSON object that fits it (numbers inside their minimum/maximum, one of an
enum's values); otherwise ``{"score": N, "reason": ...}`` with N in 0..100.

Faults are scripted per request by a marker in the last user message, ``<<fault:429,500,ok>>``: the first
attempt of that exact request gets a 429, the second a 500, the third and later a normal reply. Faults:
``429`` (with ``Retry-After``), ``500``, ``502``, ``503``, ``400``, ``401``, ``404``, ``hang`` (no reply for
``hang_seconds``), ``malformed`` (a 200 whose body is not JSON), ``truncated`` (the connection drops
mid-body), ``slow`` (replies after ``slow_seconds``), ``empty`` (no choices), ``prose`` (a reply text with no
score in it), ``nologprobs`` (a normal reply without the ``logprobs`` a request asked for), ``ok``.
``default_faults`` applies the same script to every request without a marker.

A request with ``"logprobs": true`` gets ``choices[0].logprobs.content`` for its one-token reply: from
``logprobs_responder(payload)`` when set (a list of ``{"token", "logprob", "top_logprobs"}``, as OpenAI's API
and llama.cpp's server return it), else a deterministic distribution over the digits 0-9.

Bounded mode (benchmarks of several endpoints): ``concurrency`` caps the requests answered at once (the rest
queue, as on a GPU server with a fixed batch), ``delay`` is a fixed latency per reply. ``hold_after`` N answers
the first N requests and holds every later one until ``POST /release`` (tests kill a client or the server
at a known point).

``GET /stats`` returns request counters; ``POST /reset`` clears them. Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MARKER = re.compile(r"<<fault:([a-z0-9_,]+)>>")
HOST = "127.0.0.1"


@dataclass
class ServerState:
    """Counters and settings shared by the handlers."""

    retry_after: float = 0.05
    hang_seconds: float = 30.0
    slow_seconds: float = 0.2
    delay: float = 0.0
    default_faults: tuple[str, ...] = ()
    instant: bool = False
    responder: Callable[[dict[str, Any]], str] | None = None  # in-process tests: payload -> reply text
    logprobs_responder: Callable[[dict[str, Any]], list | None] | None = None  # payload -> logprobs.content
    record: bool = False  # keep every payload (tests that compare what was asked)
    concurrency: int = 0  # requests answered at once (0: unbounded)
    hold_after: int | None = None  # answer this many requests, hold later ones until POST /release
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    payloads: list = field(default_factory=list)
    authorization: set = field(default_factory=set)
    completed: int = 0
    attempts: Counter = field(default_factory=Counter)  # request digest -> attempts
    completions: Counter = field(default_factory=Counter)  # request digest -> normal replies sent
    faults: Counter = field(default_factory=Counter)


STATE = web.AppKey("state", ServerState)
SLOTS = web.AppKey("slots", object)
RELEASED = web.AppKey("released", object)


def request_digest(payload: dict[str, Any]) -> str:
    """A digest of what determines a reply: model, messages, seed, temperature."""
    doc = {k: payload.get(k) for k in ("model", "messages", "seed", "temperature")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content or "")
    return ""


def _value_for(schema: dict[str, Any], rng: int, name: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][rng % len(schema["enum"])]
    if kind == "integer":
        lo, hi = int(schema.get("minimum", 0)), int(schema.get("maximum", 100))
        return lo + rng % (hi - lo + 1)
    if kind == "number":
        lo, hi = float(schema.get("minimum", 0)), float(schema.get("maximum", 100))
        return round(lo + (rng % 1001) / 1000 * (hi - lo), 1)
    if kind == "boolean":
        return bool(rng % 2)
    if kind == "object":
        return {k: _value_for(v, rng >> 3, k) for k, v in schema.get("properties", {}).items()}
    return f"deterministic {name} {rng % 997}"


def make_reply_text(payload: dict[str, Any]) -> str:
    """The deterministic reply text for a request."""
    rng = int(request_digest(payload)[:12], 16)
    fmt = payload.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None
    if schema:
        return json.dumps(_value_for(schema, rng, "root"))
    return json.dumps({"score": rng % 101, "reason": f"deterministic reason {rng % 997}"})


def completion_body(payload: dict[str, Any], text: str) -> dict[str, Any]:
    """An OpenAI chat.completion document."""
    prompt_chars = sum(len(json.dumps(m.get("content"))) for m in payload.get("messages", []))
    return {
        "id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": payload.get("model", "x"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_chars // 4 + 1, "completion_tokens": len(text) // 4 + 1,
                  "total_tokens": prompt_chars // 4 + len(text) // 4 + 2},
    }


_INSTANT_TEXT = '{"score": 50, "reason": "ok"}'
_INSTANT = json.dumps(completion_body({"model": "bench", "messages": []}, _INSTANT_TEXT)).encode()


async def _chat(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE]
    state.requests += 1
    if state.hold_after is not None and state.requests > state.hold_after:
        await request.app[RELEASED].wait()
    slots = request.app[SLOTS]
    if slots is None:
        return await _serve(request, state)
    async with slots:
        return await _serve(request, state)


async def _serve(request: web.Request, state: ServerState) -> web.StreamResponse:
    if state.instant:
        await request.read()
        if state.delay:
            await asyncio.sleep(state.delay)
        state.completed += 1
        return web.Response(body=_INSTANT, content_type="application/json")
    state.authorization.add(request.headers.get("Authorization", ""))
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        return await _answer(request, state)
    finally:
        state.in_flight -= 1


async def _answer(request: web.Request, state: ServerState) -> web.StreamResponse:
    try:
        payload = await request.json()
    except ValueError:
        return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
    if state.record:
        state.payloads.append(payload)
    digest = request_digest(payload)
    attempt = state.attempts[digest]
    state.attempts[digest] += 1
    marker = MARKER.search(_last_user_text(payload.get("messages", [])))
    script = tuple(marker.group(1).split(",")) if marker else state.default_faults
    fault = script[attempt] if attempt < len(script) else "ok"
    if state.delay:
        await asyncio.sleep(state.delay)
    if fault != "ok":
        state.faults[fault] += 1
    if fault == "429":
        return web.json_response({"error": {"message": "rate limited", "type": "rate_limit"}}, status=429,
                                 headers={"Retry-After": f"{state.retry_after:g}"})
    if fault in ("500", "502", "503", "400", "401", "404"):
        return web.json_response({"error": {"message": f"injected {fault}"}}, status=int(fault))
    if fault == "hang":
        await asyncio.sleep(state.hang_seconds)
        return web.json_response({"error": {"message": "hung"}}, status=504)
    if fault == "malformed":
        broken = '{"choices": [{"message": {"content": "oops"'
        return web.Response(text=broken, content_type="application/json")
    if fault == "truncated":
        body = json.dumps(completion_body(payload, make_reply_text(payload))).encode()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        request.transport.close()
        return resp
    if fault == "empty":
        return web.json_response({"id": "x", "object": "chat.completion", "choices": []})
    if fault == "slow":
        await asyncio.sleep(state.slow_seconds)
    logprobs = None
    if payload.get("logprobs") and fault != "nologprobs":
        logprobs = (state.logprobs_responder or default_logprobs)(payload)
    if fault == "prose":
        text = "I think this caption is quite good overall."
    elif logprobs:
        text = str(logprobs[0].get("token", ""))
    elif state.responder is not None:
        text = state.responder(payload)
    else:
        text = make_reply_text(payload)
    state.completed += 1
    state.completions[digest] += 1
    body = completion_body(payload, text)
    if logprobs is not None:
        body["choices"][0]["logprobs"] = {"content": logprobs}
    return web.json_response(body)


def default_logprobs(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A deterministic first-token distribution over the digits 0-9 (softmax of digest-derived logits)."""
    import math

    rng = int(request_digest(payload)[:12], 16)
    logits = [((rng >> (4 * d)) % 16) / 4.0 for d in range(10)]
    norm = math.log(sum(math.exp(x) for x in logits))
    tops = sorted(({"token": str(d), "logprob": logits[d] - norm} for d in range(10)),
                  key=lambda t: -t["logprob"])[: int(payload.get("top_logprobs") or 1)]
    return [{"token": tops[0]["token"], "logprob": tops[0]["logprob"], "top_logprobs": tops}]


async def _stats(request: web.Request) -> web.Response:
    s: ServerState = request.app[STATE]
    return web.json_response({
        "requests": s.requests, "completed": s.completed, "faults": dict(s.faults),
        "distinct": len(s.attempts), "repeated_completions": sum(1 for v in s.completions.values() if v > 1),
        "max_in_flight": s.max_in_flight,
    })


async def _release(request: web.Request) -> web.Response:
    request.app[STATE].hold_after = None
    request.app[RELEASED].set()
    return web.json_response({"ok": True})


async def _reset(request: web.Request) -> web.Response:
    s: ServerState = request.app[STATE]
    s.requests = s.completed = s.max_in_flight = 0
    s.payloads.clear()
    s.attempts.clear()
    s.completions.clear()
    s.faults.clear()
    return web.json_response({"ok": True})


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "fault", "object": "model"}]})


def make_app(state: ServerState) -> web.Application:
    """The aiohttp application."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    app[SLOTS] = asyncio.Semaphore(state.concurrency) if state.concurrency else None
    app[RELEASED] = asyncio.Event()
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/reset", _reset)
    app.router.add_post("/release", _release)
    return app


class FaultServer:
    """Runs the server on 127.0.0.1 in a background thread: ``with FaultServer() as s: s.base_url``."""

    def __init__(self, port: int = 0, **settings: Any) -> None:
        self.state = ServerState(**settings)
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> FaultServer:
        """Start serving; returns once the port is bound."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def boot() -> None:
            self._runner = web.AppRunner(make_app(self.state), access_log=None, handler_cancellation=True,
                                         shutdown_timeout=0.5)
            await self._runner.setup()
            site = web.TCPSite(self._runner, HOST, self.port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(boot())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="capeval-faultserver", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m capeval.judges.faultserver --port P [--instant] [--delay S] [--faults 429,ok]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--instant", action="store_true", help="one fixed reply, no parsing (benchmarks)")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before every reply")
    ap.add_argument("--faults", default="", help="fault script for requests without a marker")
    ap.add_argument("--concurrency", type=int, default=0, help="requests answered at once (0: unbounded)")
    ap.add_argument("--hold-after", type=int, default=None, help="hold requests after the first N (POST /release)")
    args = ap.parse_args(argv)
    state = ServerState(instant=args.instant, delay=args.delay, concurrency=args.concurrency,
                        hold_after=args.hold_after, default_faults=tuple(f for f in args.faults.split(",") if f))

    async def serve() -> None:
        runner = web.AppRunner(make_app(state), access_log=None, handler_cancellation=True,
                               shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, HOST, args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if args.port_file:
            with open(args.port_file + ".tmp", "w") as f:
                f.write(str(port))
            import os

            os.replace(args.port_file + ".tmp", args.port_file)
        print(f"fault server on http://{HOST}:{port}/v1", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
