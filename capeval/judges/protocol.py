"""Request, reply and usage types of capeval's OpenAI-compatible judge client."""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capeval.errors import InputError

# Bump whenever the way a request is built or sent changes in a way that can change a reply: it is part of
# every cache key, so old cached replies are not reused for a request that would now be different.
JUDGE_VERSION = "1"


@dataclass
class JudgeRequest:
    """One chat-completion call.

    ``messages`` are OpenAI chat messages; a user message's ``content`` may be a list of parts such as
    ``{"type": "text", "text": ...}`` and ``{"type": "image_url", "image_url": {"url": "data:..."}}``
    (see :func:`image_data_url`). ``temperature`` and ``max_tokens`` default to the :class:`JudgeConfig`'s.
    ``response_format`` is an OpenAI ``response_format`` dict (usually a ``json_schema``; the config decides
    whether it is sent as is, downgraded to ``json_object`` or dropped). ``template_hash`` identifies the
    prompt template; ``tag`` is a free label (e.g. the sample id) that is not part of the cache key.
    ``top_logprobs`` asks for ``logprobs`` with that many alternatives per token (likelihood scoring); a
    reply without them is a counted failure. ``group`` (not in the cache key) names requests that share a
    prompt prefix (one image's captioners): the client sends a group's requests one after another on one
    connection so a prefix-caching server evaluates the shared prefix once.
    """

    messages: list[dict[str, Any]]
    seed: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    template_hash: str = ""
    tag: str = ""
    top_logprobs: int | None = None
    group: str = ""


@dataclass
class JudgeReply:
    """What came back for one :class:`JudgeRequest` (from the endpoint or the cache).

    ``text`` is the message content (None when the call failed); ``error`` says why it failed after all
    retries; ``cached`` is True when the reply came from the cache (then no tokens were spent in this run);
    ``attempts`` counts HTTP attempts in this run (0 when cached). ``logprobs`` is the reply's
    ``choices[0].logprobs.content`` (a list of ``{"token", "logprob", "top_logprobs": [...]}``) when it was
    asked for; ``cached_tokens`` the prompt tokens the server took from its prefix cache.
    """

    key: str
    text: str | None
    cached: bool = False
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    attempts: int = 0
    error_kind: str | None = None  # with ``error``: connection, timeout, http_<status> or malformed
    logprobs: list[dict[str, Any]] | None = None
    cached_tokens: int = 0

    @property
    def ok(self) -> bool:
        """True when a reply text exists."""
        return self.text is not None and self.error is None


@dataclass
class UsageTally:
    """Running totals of one judge: HTTP requests, cache hits, retries, failures, tokens and cost.

    Tokens and cost count only calls made in this run (a cached reply costs nothing again).
    ``cost_usd`` is None when the model has no entry in the price table.
    """

    requests: int = 0
    completed: int = 0
    cache_hits: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    by_error: dict[str, int] = field(default_factory=dict)
    failovers: int = 0  # attempts re-sent to another endpoint of a pool after one failed
    by_endpoint: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> requests/completed/errors

    def count_endpoint(self, name: str, what: str) -> None:
        """Count one ``what`` (requests, completed, errors) for a pool endpoint."""
        counts = self.by_endpoint.setdefault(name, {"requests": 0, "completed": 0, "errors": 0})
        counts[what] += 1
    cached_prompt_tokens: int = 0

    def add(self, other: UsageTally) -> None:
        """Add another tally into this one."""
        for name in ("requests", "completed", "cache_hits", "retries", "errors", "prompt_tokens",
                     "completion_tokens", "cached_prompt_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if self.cost_usd is None or other.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += other.cost_usd
        for k, v in other.by_error.items():
            self.by_error[k] = self.by_error.get(k, 0) + v
        self.failovers += other.failovers
        for name, counts in other.by_endpoint.items():
            mine = self.by_endpoint.setdefault(name, {"requests": 0, "completed": 0, "errors": 0})
            for k, v in counts.items():
                mine[k] = mine.get(k, 0) + v

    def as_usage(self) -> dict[str, float]:
        """Flat counters for :attr:`MetricOutput.usage` (the runner sums them into summary and manifest)."""
        out: dict[str, float] = {
            "judge_requests": float(self.requests),
            "judge_calls": float(self.completed),
            "judge_cache_hits": float(self.cache_hits),
            "judge_retries": float(self.retries),
            "judge_errors": float(self.errors),
            "prompt_tokens": float(self.prompt_tokens),
            "completion_tokens": float(self.completion_tokens),
        }
        if self.cached_prompt_tokens:
            out["cached_prompt_tokens"] = float(self.cached_prompt_tokens)
        if self.cost_usd is not None:
            out["cost_usd"] = float(self.cost_usd)
        if self.by_endpoint:
            out["judge_failovers"] = float(self.failovers)
            for name, counts in self.by_endpoint.items():
                for k, v in counts.items():
                    out[f"endpoint:{name}:{k}"] = float(v)
        return out


_BODY = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def body_json(obj: Any) -> str:
    """Compact JSON in the objects' own key order: the request body as sent, and the text the cache key hashes.

    Keys are not sorted: the order of a JSON schema's properties is part of the request (grammar-constrained
    and structured-output decoders generate the fields in that order), so it must reach the endpoint as built
    and two requests that differ in it are different requests.
    """
    return _BODY.encode(obj)


def request_body(model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                 seed: int | None) -> dict[str, Any]:
    """The chat-completion request body: model, messages, sampling params, seed (omitted when None)."""
    body = {"model": model, "messages": messages, **params}
    if seed is not None:
        body["seed"] = int(seed)
    return body


def key_for_body(body: str, template_hash: str) -> str:
    """sha256 of (judge version, template hash, the JSON request body)."""
    head = f"capeval-judge:{JUDGE_VERSION}\n{template_hash}\n"
    return hashlib.sha256((head + body).encode("utf-8")).hexdigest()


def cache_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any], seed: int | None,
              template_hash: str) -> str:
    """sha256 of (model, full messages incl. images, sampling params, seed, template hash, judge version)."""
    return key_for_body(body_json(request_body(model, messages, params, seed)), template_hash)


def image_data_url(path: str | Path) -> str:
    """A ``data:`` URL with the image file's bytes base64-encoded (as OpenAI-compatible VLMs accept)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"can't read image ({exc.strerror or exc})", path=str(path)) from exc
    mime = mimetypes.guess_type(path.name)[0] or _sniff_mime(data)
    if not mime or not mime.startswith("image/"):
        raise InputError("not an image file (unknown image type)", path=str(path))
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _sniff_mime(data: bytes) -> str | None:
    signatures = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif",
                  b"BM": "image/bmp"}
    for sig, mime in signatures.items():
        if data.startswith(sig):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
