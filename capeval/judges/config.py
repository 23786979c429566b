"""Settings of capeval's OpenAI-compatible judge client, read from the run's options (``--judge-*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError
from capeval.judges.endpoints import EndpointPool, load_endpoints

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
CACHE_DIR_ENV = "CAPEVAL_CACHE_DIR"
CACHE_FILE = "judge-cache.sqlite"
RESPONSE_FORMATS = ("json_schema", "json_object", "none")
CACHE_MODES = ("on", "off", "refresh")
HTTP_MODES = ("fast", "openai")
MULTI_SEED_TEMPERATURE = 0.7


def default_cache_path() -> Path:
    """``$CAPEVAL_CACHE_DIR/judge-cache.sqlite``, else ``$XDG_CACHE_HOME`` or ``~/.cache``/capeval/..."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser() / CACHE_FILE
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "capeval" / CACHE_FILE


def default_temperature(seeds: int | None) -> float:
    """0 (greedy) for a single-seed run; 0.7 when several seeds are run (or the seed count is unknown)."""
    return 0.0 if seeds == 1 else MULTI_SEED_TEMPERATURE


# --option key -> (JudgeConfig field, type): the judge options read one way everywhere.
JUDGE_SIMPLE_OPTIONS: dict[str, tuple[str, type]] = {
    "judge_model": ("model", str), "judge_base_url": ("base_url", str),
    "judge_api_key_env": ("api_key_env", str), "judge_concurrency": ("concurrency", int),
    "judge_timeout": ("timeout", float), "judge_retries": ("retries", int),
    "judge_backoff": ("backoff", float), "judge_backoff_max": ("backoff_max", float),
    "judge_temperature": ("temperature", float), "judge_max_tokens": ("max_tokens", int),
    "judge_top_p": ("top_p", float), "judge_rpm": ("rpm", float), "judge_tpm": ("tpm", float),
    "judge_response_format": ("response_format", str), "judge_template": ("template", str),
    "judge_prices": ("prices", str), "judge_cache_timeout": ("cache_timeout", float),
    "judge_http": ("http", str), "judge_headers": ("headers", str),
}
JUDGE_OPTION_KEYS = frozenset(JUDGE_SIMPLE_OPTIONS) | {"judge_cache", "cache_dir", "cache", "refresh_cache",
                                                        "judge_endpoints", "judge_scoring", "judge_schedule"}


def check_base_url(url: str, api_key_env: str = DEFAULT_API_KEY_ENV) -> None:
    """Refuse a judge base URL that carries a credential or can't be extended with ``/chat/completions``.

    The message names the problem and never repeats the URL's credential part.

    Example:
        >>> check_base_url("http://127.0.0.1:8080/v1")
        >>> try:
        ...     check_base_url("http://user:SECRET@host/v1")
        ... except CapevalError as exc:
        ...     print("SECRET" in str(exc), str(exc)[:52])
        False judge base URL http://***@host/v1 carries credential
    """
    from urllib.parse import urlsplit

    from capeval.secrets import redact_text

    hint = (f"put the API key in the environment variable {api_key_env} (or name another one with "
            "--option judge_api_key_env=VAR)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise CapevalError("judge base URL is not a valid URL (expected http(s)://host[:port]/path)") from None
    netloc = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    if "@" in parts.netloc:
        raise CapevalError(f"judge base URL {parts.scheme}://***@{netloc}{parts.path} carries credentials in its "
                           f"user-info part (user:password@); capeval never sends or records them: {hint}")
    if parts.query or parts.fragment:
        raise CapevalError(f"judge base URL {shown} has a query string or fragment (?... or #...), which "
                           "capeval would place before /chat/completions and record in the run's files; give "
                           f"the base URL alone (e.g. http://host:port/v1) and {hint}")
    if parts.scheme not in ("http", "https") or not netloc:
        raise CapevalError(f"judge base URL {redact_text(url)!r} must start with http:// or https:// and name "
                           "a host (e.g. http://127.0.0.1:8080/v1)")


@dataclass(frozen=True)
class JudgeConfig:
    """Everything the judge client needs; it holds no secret, only the *name* of the key's env variable.

    Options read by :meth:`from_options` (``capeval score`` flags or ``--option KEY=VALUE``):

    ======================  =========================================================  ==============
    option                  meaning                                                    default
    ======================  =========================================================  ==============
    judge_model             model name at the endpoint                                 gpt-4o-mini
    judge_base_url          OpenAI-compatible base URL (``http://127.0.0.1:8080/v1``)   OpenAI
    judge_api_key_env       name of the environment variable holding the API key      OPENAI_API_KEY
    judge_concurrency       requests in flight at once                                 16
    judge_timeout           seconds per attempt                                        60
    judge_retries           retries after the first attempt (429, 5xx, timeouts, ...)  5
    judge_backoff           base seconds of exponential backoff (with jitter)          1
    judge_backoff_max       cap of one backoff / Retry-After wait, seconds             60
    judge_temperature       sampling temperature                                       see below
    judge_max_tokens        max completion tokens                                      per metric
    judge_top_p             nucleus sampling (not sent when unset)                     unset
    judge_rpm, judge_tpm    optional rate limits: requests / tokens per minute         unset
    judge_response_format   json_schema, json_object or none (structured output)       json_schema
    judge_template          prompt template: a name in judges/ or a file path          per metric
    judge_prices            extra price table (YAML) merged over judges/prices.yaml    unset
    judge_cache             cache file                                                 see below
    judge_cache_timeout     seconds to wait for a locked cache before failing          10
    cache, refresh_cache    ``--no-cache`` / ``--refresh-cache``                       on / off
    judge_http              fast (POST via aiohttp with the AsyncOpenAI client's URL   fast
                            and headers) or openai (``AsyncOpenAI.post`` per request)
    judge_endpoints         YAML file of several endpoints serving the judge model     unset
                            (``--judge-endpoints``; :mod:`capeval.judges.endpoints`)
    ======================  =========================================================  ==============

    Temperature: 0 for a single-seed run, 0.7 when ``seeds`` > 1 or unknown. Cache file:
    ``$CAPEVAL_CACHE_DIR/judge-cache.sqlite``, else ``~/.cache/capeval/judge-cache.sqlite`` (honours
    ``XDG_CACHE_HOME``).
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    concurrency: int = 16
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    temperature: float = MULTI_SEED_TEMPERATURE
    max_tokens: int = 512
    top_p: float | None = None
    rpm: float | None = None
    tpm: float | None = None
    response_format: str = "json_schema"
    template: str | None = None
    prices: str | None = None
    cache_path: Path | None = None
    cache: str = "on"
    cache_timeout: float = 10.0
    http: str = "fast"
    headers: str | None = None  # extra HTTP headers "Name: value; Name2: value2" (values never recorded)
    endpoints: EndpointPool | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise CapevalError(f"judge_concurrency must be >= 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise CapevalError(f"judge_timeout must be > 0, got {self.timeout}")
        if self.retries < 0:
            raise CapevalError(f"judge_retries must be >= 0, got {self.retries}")
        if self.response_format not in RESPONSE_FORMATS:
            raise CapevalError(f"judge_response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
                               f"got {self.response_format!r}")
        if self.http not in HTTP_MODES:
            raise CapevalError(f"judge_http must be one of {', '.join(HTTP_MODES)}, got {self.http!r}")
        if self.cache not in CACHE_MODES:
            raise CapevalError(f"judge cache mode must be one of {CACHE_MODES}, got {self.cache!r}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise CapevalError(f"judge_{name} must be > 0, got {value}")
        if self.base_url is not None:
            check_base_url(self.base_url, self.api_key_env)

    def header_dict(self) -> dict[str, str]:
        """``headers`` as a mapping; a malformed item is an error that names it without its value."""
        out: dict[str, str] = {}
        for item in (self.headers or "").replace("\n", ";").split(";"):
            if not item.strip():
                continue
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                raise CapevalError(f"judge_headers: expected 'Name: value' items separated by ';', got an item "
                                   f"starting {item.strip()[:12]!r}...")
            out[name.strip()] = value.strip()
        return out

    @property
    def resolved_cache_path(self) -> Path:
        """The cache file this config uses."""
        return Path(self.cache_path).expanduser() if self.cache_path else default_cache_path()

    def replace(self, **changes: Any) -> JudgeConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def from_options(cls, options: dict[str, Any], **defaults: Any) -> JudgeConfig:
        """Build from a run's options; ``defaults`` (e.g. ``max_tokens=64``) apply when an option is unset."""
        from capeval.secrets import refuse_secret_options

        refuse_secret_options(options)
        o = options
        kw: dict[str, Any] = {}
        simple = JUDGE_SIMPLE_OPTIONS
        known = {f.name for f in fields(cls)}
        for key in defaults:
            if key not in known:
                raise TypeError(f"JudgeConfig has no field {key!r}")
        kw.update(defaults)
        if "temperature" not in kw:
            seeds = o.get("seeds")
            kw["temperature"] = default_temperature(int(seeds) if seeds is not None else None)
        for key, (attr, cast) in simple.items():
            value = o.get(key)
            if value is None or value == "":
                continue
            try:
                kw[attr] = cast(value)
            except (TypeError, ValueError) as exc:
                raise CapevalError(f"option {key}={value!r}: expected {cast.__name__}") from exc
        pool = o.get("judge_endpoints")
        if pool:
            pool = pool if isinstance(pool, EndpointPool) else load_endpoints(str(pool))
            if o.get("judge_model") and str(o["judge_model"]) != pool.model:
                raise CapevalError(f"--judge-model {o['judge_model']!r} differs from the model {pool.model!r} "
                                   f"of the judge endpoints file {pool.path}; give one of them")
            kw["endpoints"], kw["model"] = pool, pool.model
            if "concurrency" not in kw:
                kw["concurrency"] = pool.concurrency
        if o.get("judge_cache"):
            kw["cache_path"] = Path(str(o["judge_cache"])).expanduser()
        elif o.get("cache_dir"):
            kw["cache_path"] = Path(str(o["cache_dir"])).expanduser() / CACHE_FILE
        if o.get("cache") is False or str(o.get("cache")).lower() in ("false", "no", "off", "0"):
            kw["cache"] = "off"
        elif _truthy(o.get("refresh_cache")):
            kw["cache"] = "refresh"
        return cls(**kw)


def _truthy(value: Any) -> bool:
    from capeval.options import parse_bool

    return value is not None and parse_bool(value, key="refresh_cache")
