"""The shared base of LLM-judge metrics (CLAIR, MLLM-as-a-Judge, pairwise): config, template, ask, retry.

Two scoring modes (``--option judge_scoring=generate|likelihood``): ``generate`` (default) parses the
reply's text; ``likelihood`` asks for the answer as one token at temperature 0 and reads it from the
endpoint's ``top_logprobs`` (:mod:`capeval.judges.logprobs`). The mode is in the signature
(``scoring:likelihood``; the default prints nothing, so signatures of generate runs are unchanged).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from capeval.errors import CapevalError
from capeval.judges.client import Judge
from capeval.judges.config import JUDGE_OPTION_KEYS, JudgeConfig
from capeval.judges.logprobs import TOP_LOGPROBS
from capeval.judges.parsing import Verdict, retry_request
from capeval.judges.protocol import JudgeRequest
from capeval.judges.templates import JudgeTemplate, load_template
from capeval.metrics.base import Availability, Batch, Metric

log = logging.getLogger("capeval")


@dataclass(frozen=True)
class Judged:
    """The outcome of one judged item after parsing and at most one follow-up request.

    ``verdict.value`` is None on failure; ``text`` is the last raw reply (kept for the run's details);
    ``error`` says what went wrong (transport failure or unreadable reply).
    """

    verdict: Verdict
    text: str | None
    error: str | None
    retried: bool
    cached: bool
    kind: str | None = None  # why it failed: the transport's error kind, or "unreadable" (a reply, no value)

    @property
    def ok(self) -> bool:
        """Whether a value was read."""
        return self.verdict.ok


def _fmt_temp(t: float) -> str:
    return f"{t:g}"


def endpoint_host(base_url: str | None) -> str:
    """The host of an endpoint, for signatures: no scheme, userinfo, port, path or query (a local server's
    port changes from run to run and moves no score).

    Example:
        >>> endpoint_host("http://user:secret@127.0.0.1:8080/v1?key=k"), endpoint_host(None)
        ('127.0.0.1', 'api.openai.com')
    """
    from urllib.parse import urlsplit

    if not base_url:
        return "api.openai.com"
    parts = urlsplit(base_url if "//" in base_url else f"//{base_url}")
    return parts.hostname or "?"


def judge_signature(config: JudgeConfig, template: JudgeTemplate, seeds: Any,
                    scoring: str = "generate") -> dict[str, Any]:
    """The score-moving judge settings as signature fields (shared by every judge metric and proxy QA). In
    likelihood mode the request is one token at temperature 0 without a response format, and says so."""
    likelihood = scoring == "likelihood"
    params: dict[str, Any] = {"judge": config.model, "prompt": template.name,
                              "temp": _fmt_temp(0.0 if likelihood else config.temperature)}
    if likelihood:
        params["scoring"] = scoring
    if seeds is not None:
        params["seeds"] = int(seeds)
    params["prompt_sha"] = template.hash[:12]
    if config.top_p is not None:
        params["top_p"] = f"{config.top_p:g}"
    params["max_tokens"] = 1 if likelihood else config.max_tokens
    params["fmt"] = "none" if likelihood else config.response_format
    params["host"] = endpoint_host(config.base_url)
    if config.endpoints is not None:  # a --judge-endpoints pool: every host that may have judged
        params["host"] = "+".join(sorted({endpoint_host(ep.base_url) for ep in config.endpoints.endpoints}))
    return params


SCORING_MODES = ("generate", "likelihood")


def scoring_mode(options: dict[str, Any]) -> str:
    """``judge_scoring`` from the options: ``generate`` (default) or ``likelihood``."""
    mode = str(options.get("judge_scoring") or "generate").strip().lower()
    if mode not in SCORING_MODES:
        raise CapevalError(f"judge_scoring must be one of {', '.join(SCORING_MODES)}, got {mode!r}")
    return mode


SCHEDULES = ("image", "captioner")


def schedule_mode(options: dict[str, Any]) -> str:
    """``judge_schedule`` from the options: ``image`` (default: a run's captioners of one image are sent back
    to back) or ``captioner`` (one captioner's batch after another). It moves no score."""
    mode = str(options.get("judge_schedule") or "image").strip().lower()
    if mode not in SCHEDULES:
        raise CapevalError(f"judge_schedule must be one of {', '.join(SCHEDULES)}, got {mode!r}")
    return mode


def likelihood_request(request: JudgeRequest) -> JudgeRequest:
    """A request turned into a one-token likelihood query: temperature 0, one token, top logprobs, no seed.

    The seed is dropped because a temperature-0 distribution does not depend on it: every seed of a run
    asks the same request, which the cache answers after the first.
    """
    from dataclasses import replace

    return replace(request, seed=None, temperature=0.0, max_tokens=1, response_format=None,
                   top_logprobs=TOP_LOGPROBS)


def check_likelihood_template(template: JudgeTemplate) -> None:
    """A likelihood run needs a template with a one-token answer form (one that reads ``scoring``)."""
    if "scoring" not in template.source:
        raise CapevalError(f"judge template {template.name} has no likelihood form (it never reads the "
                           "variable `scoring`); use a -v2 template or judge_scoring=generate")


class JudgeMetric(Metric):
    """Base class: its :class:`JudgeConfig` and template come from the options; owns a :class:`Judge`."""

    stochastic: ClassVar[bool] = True
    default_template: ClassVar[str] = ""
    config_defaults: ClassVar[dict[str, Any]] = {}
    retry_instruction: ClassVar[str] = "Answer again with only the JSON object asked for, nothing else."

    def __init__(self, config: JudgeConfig | None = None, template: JudgeTemplate | None = None,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(**(options or {}))
        self.config = config or JudgeConfig(**self.config_defaults)
        self.template = template or load_template(self.default_template)
        self.scoring = scoring_mode(self.options)
        if self.scoring == "likelihood":
            check_likelihood_template(self.template)
        self.judge: Judge | None = None
        self._judgments = 0
        self._failed: dict[str, int] = {}

    @classmethod
    def option_keys(cls) -> frozenset[str]:
        """The judge options (``judge_*``) and ``<metric>_template``."""
        return super().option_keys() | JUDGE_OPTION_KEYS | {f"{cls.name}_template"}

    @classmethod
    def availability(cls) -> Availability:
        """Needs the ``openai`` package (``capeval[judge]``) and, at run time, a reachable endpoint."""
        for package in ("openai", "aiohttp", "httpx"):
            if importlib.util.find_spec(package) is None:
                return Availability(False, f"the {package} package is not installed (pip install 'capeval[judge]')")
        return Availability(True, "needs an OpenAI-compatible endpoint (--judge-base-url/--judge-model)")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> JudgeMetric:
        """Judge settings from the ``judge_*`` options; the template from ``<metric>_template`` (e.g.
        ``clair_template``), else ``judge_template``, else the metric's shipped default."""
        config = JudgeConfig.from_options(options, **cls.config_defaults)
        template = load_template(options.get(f"{cls.name}_template") or config.template or cls.default_template)
        return cls(config, template, options)

    def extra_signature(self) -> dict[str, Any]:
        """Metric-specific signature fields (after judge/prompt/temp/seeds)."""
        return {}

    def signature_params(self, references: list[list[str]]) -> dict[str, Any]:
        """Everything of the judge that can move a score: ``judge:<model>|prompt:<template>|temp:<t>|
        [scoring:likelihood|]seeds:<n>``, then metric fields, the template's hash, top_p, max_tokens, the
        response format and the endpoint's host (never a key, a userinfo or a query string)."""
        params: dict[str, Any] = judge_signature(self.config, self.template, self.options.get("seeds"), self.scoring)
        extra = self.extra_signature()
        head = {k: params.pop(k) for k in ("judge", "prompt", "temp", "scoring", "seeds") if k in params}
        return {**head, **extra, **params}

    def setup(self, context: Any) -> None:
        """Open the judge (cache connection; the HTTP client is created on first use)."""
        if self.judge is None:
            shared = getattr(context, "shared", None) or {}
            self.judge = Judge(self.config, cache=shared.get("judge_cache"))  # a Ray run's single cache writer

    def close(self) -> None:
        """Close the judge."""
        if self.judge is not None:
            self.judge.close()
            self.judge = None

    def judge_requests(self, batch: Batch, context: Any, seed: int) -> list[JudgeRequest] | None:
        """The requests :meth:`statistics` sends first for this batch and seed, as it builds them (None: the
        metric can't tell in advance, so it is not prefetched)."""
        return None

    def prefetch(self, batches: Sequence[Batch], context: Any, seed: int = 0) -> int:
        """Send the first requests of several captioners' batches now as one schedule: the requests of one
        image (one prefix group) for every captioner back to back, to one endpoint, so a prefix-caching
        server evaluates the image's shared prompt once. The :meth:`statistics` calls that follow receive
        these replies, and count their usage, exactly as if they had sent them (:meth:`Judge.prefetch`).
        ``--option judge_schedule=captioner`` turns it off (one captioner after another, as before)."""
        schedule = schedule_mode(self.options)
        if schedule == "captioner" or len(batches) < 2:
            return 0
        requests: list[JudgeRequest] = []
        for batch in batches:  # captioner-major; the judge sends each prefix group as one unit, image by image
            reqs = self.judge_requests(batch, context, seed)
            if reqs is None:
                return 0
            requests.extend(reqs)
        return self.prefetch_requests(requests)

    def prefetch_requests(self, requests: Sequence[JudgeRequest]) -> int:
        """:meth:`Judge.prefetch` of requests as :meth:`ask` / :meth:`ask_likelihood` would send them."""
        if self.judge is None:
            self.setup(None)
        assert self.judge is not None
        if self.scoring == "likelihood":
            requests = [likelihood_request(r) for r in requests]
        return self.judge.prefetch(requests)

    def prefetch_in_chunks(self, order: Sequence[str], requests_of: Callable[[set[str]], list[JudgeRequest]],
                           chunk: int = 256) -> int:
        """:meth:`prefetch_requests` of ``requests_of(ids)`` for ``chunk`` sample ids of ``order`` at a time, so
        that only one chunk's requests (and encoded images) are held at once."""
        return sum(self.prefetch_requests(requests_of(set(order[start:start + chunk])))
                   for start in range(0, len(order), chunk))

    def ask(self, requests: Sequence[JudgeRequest], parse: Callable[[str | None], Verdict]) -> list[Judged]:
        """Send the requests, parse each reply, send one follow-up for each unreadable reply, parse again."""
        if self.judge is None:
            self.setup(None)
        assert self.judge is not None
        replies = self.judge.run(requests)
        verdicts = [parse(r.text) if r.ok else Verdict(None, error=r.error) for r in replies]
        again = [i for i, (r, v) in enumerate(zip(replies, verdicts, strict=True)) if r.ok and not v.ok]
        follow: dict[int, Any] = {}
        if again:
            retry_reqs = [retry_request(requests[i], replies[i].text, self.retry_instruction) for i in again]
            for i, reply in zip(again, self.judge.run(retry_reqs), strict=True):
                follow[i] = reply
        out = []
        for i, (reply, verdict) in enumerate(zip(replies, verdicts, strict=True)):
            text, cached = reply.text, reply.cached
            if i in follow:
                r2 = follow[i]
                verdict = parse(r2.text) if r2.ok else Verdict(None, error=r2.error)
                text = r2.text if r2.ok else reply.text
                cached = cached and r2.cached
            error = None if verdict.ok else (verdict.error or "unreadable reply")
            kind = None
            if not verdict.ok:
                last = follow.get(i, reply)
                kind = (last.error_kind or "transport") if not last.ok else "unreadable"
                self._failed[kind] = self._failed.get(kind, 0) + 1
            self._judgments += 1
            out.append(Judged(verdict, text, error, i in follow, cached, kind))
        return out

    def ask_likelihood(self, requests: Sequence[JudgeRequest], read: Callable[[Any], Verdict]) -> list[Judged]:
        """Send one-token likelihood requests and read each reply's logprobs with ``read`` (no follow-up:
        a reply without usable logprobs is a counted failure)."""
        if self.judge is None:
            self.setup(None)
        assert self.judge is not None
        replies = self.judge.run([likelihood_request(r) for r in requests])
        out = []
        for reply in replies:
            verdict = read(reply.logprobs) if reply.ok else Verdict(None, error=reply.error)
            error = None if verdict.ok else (verdict.error or "unreadable logprobs")
            out.append(Judged(verdict, reply.text, error, False, reply.cached))
        return out

    def take_usage(self) -> dict[str, float]:
        """Usage since the last call, for :attr:`MetricOutput.usage`: the judge's counters plus
        ``judge_judgments`` (items asked) and ``judge_failed_<kind>`` (items left without a value, by why)."""
        usage = self.judge.take_usage().as_usage() if self.judge is not None else {}
        usage["judge_judgments"] = float(self._judgments)
        for kind, n in sorted(self._failed.items()):
            usage[f"judge_failed_{kind}"] = float(n)
        self._judgments, self._failed = 0, {}
        return usage


def detail_text(judged: Judged) -> str:
    """The per-sample detail string: the reason when read, else the error and the raw reply."""
    if judged.ok:
        return judged.verdict.reason or ""
    raw = judged.text if judged.text is not None else ""
    return f"[unparsed: {judged.error}] {raw}".strip()
