"""LLM judges for capeval: an OpenAI-compatible async client with a crash-safe SQLite response cache.

This is the API every judge metric (clair, mllm_judge, pairwise, proxy_qa) builds on. It is stable: add
fields with defaults, never rename.

Configuration — :class:`JudgeConfig` (frozen; holds no secret, only the *name* of the key's env var)::

    cfg = JudgeConfig.from_options(context.options)         # judge_model, judge_base_url, judge_concurrency,
    cfg = JudgeConfig.from_options(options, max_tokens=64)  # judge_template, cache, refresh_cache, judge_*
    cfg.model, cfg.base_url, cfg.temperature, cfg.template, cfg.cache ("on" | "off" | "refresh")
    cfg.resolved_cache_path   # $CAPEVAL_CACHE_DIR/judge-cache.sqlite or ~/.cache/capeval/judge-cache.sqlite

Requests and replies — :class:`JudgeRequest` / :class:`JudgeReply`::

    req = JudgeRequest(messages=[{"role": "user", "content": "..."}], seed=0,
                       response_format={"type": "json_schema", "json_schema": {...}},   # optional
                       template_hash=tmpl.hash, tag=sample_id)
    # image parts: {"type": "image_url", "image_url": {"url": image_data_url(path)}}
    reply.text (str | None), reply.ok, reply.error, reply.cached, reply.prompt_tokens, reply.completion_tokens

Running — :class:`Judge` (keeps one cache connection and HTTP client; use one per metric per run)::

    with Judge(cfg) as judge:
        replies = judge.run(requests)          # in order; cache hits first, misses concurrently
        usage = judge.take_usage()      # UsageTally since the last take; .as_usage() -> MetricOutput.usage
    replies, usage = run_requests(requests, cfg)   # one-shot helper
    key, body = judge.prepare(req)    # the cache key and the exact JSON body that would be sent
    await judge.arun(requests); await judge.aclose()   # from your own event loop

Templates — :func:`load_template` (``judges/<name>.jinja`` or a path; blocks ``system`` and ``user``)::

    tmpl = load_template(cfg.template or "clair-v1")
    messages = tmpl.messages(candidate=..., references=[...], images=[data_url])   # tmpl.name, tmpl.hash

Parsing — :mod:`capeval.judges.parsing`: :func:`~capeval.judges.parsing.parse_score` (JSON first, then
patterns), :func:`~capeval.judges.parsing.retry_request` (the one follow-up asking for JSON only) and
:func:`~capeval.judges.parsing.json_schema_format`.

Failures: an unusable endpoint (HTTP 401/403/404, missing key for OpenAI) raises :class:`JudgeError`; an
unusable cache raises :class:`CacheError`; anything else (429/5xx/timeouts past the retries, a request the
endpoint rejects) becomes a reply with ``error`` set, counted in ``usage.errors``, never a made-up score.
"""

from capeval.judges.cache import CacheError, JudgeCache
from capeval.judges.client import Judge, JudgeError, run_requests
from capeval.judges.config import JudgeConfig, default_cache_path, default_temperature
from capeval.judges.protocol import JUDGE_VERSION, JudgeReply, JudgeRequest, UsageTally, image_data_url
from capeval.judges.templates import JudgeTemplate, load_template

__all__ = [
    "JUDGE_VERSION",
    "CacheError",
    "Judge",
    "JudgeCache",
    "JudgeConfig",
    "JudgeError",
    "JudgeReply",
    "JudgeRequest",
    "JudgeTemplate",
    "UsageTally",
    "default_cache_path",
    "default_temperature",
    "image_data_url",
    "load_template",
    "run_requests",
]
