"""Keeping credentials out of everything capeval writes: refused options, redacted command lines and options.

API keys come from the environment only (``OPENAI_API_KEY``, or the variable ``judge_api_key_env`` names).
So:

* an option whose *name* says it holds a secret (``judge_api_key``, ``*_token``, ``*_password``, ...) is
  refused with a message naming the environment variable to use (:func:`refuse_secret_options`);
* header options (``judge_headers=Authorization: Bearer ...``) keep their header names and lose their values,
  and anything credential-shaped in any recorded value (``Bearer ...``, ``sk-...`` keys, the user-info of a
  URL, ``?key=...`` query parameters) is replaced by ``***`` (:func:`redact_text`, :func:`public_options`,
  :func:`redact_command`).
"""

from __future__ import annotations

import re
from typing import Any

from capeval.errors import CapevalError

MASK = "***"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"

#: Option or flag names that hold a secret: a whole ``_``/``-`` separated part of the name
#: (``judge_api_key``, ``hf_token``; not ``judge_max_tokens``, not ``judge_api_key_env``).
SECRET_NAME = re.compile(
    r"(?:^|[_-])(?:api[_-]?key|key|token|access[_-]?token|secret|client[_-]?secret|password|passwd|pwd|"
    r"auth|authorization|credentials?|cookie|bearer|session)(?:$|[_-])",
    re.IGNORECASE,
)
#: Option names that carry HTTP headers, whose values are redacted (names kept).
HEADER_NAME = re.compile(r"header", re.IGNORECASE)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user-info of a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@"), rf"\1{MASK}@"),
    # query or form parameters named like a secret: ?key=..., &api_key=..., access_token=...
    (re.compile(r"(?i)([?&;](?:[\w.-]*?(?:key|token|secret|password|passwd|sig|signature|auth|code)"
                r"[\w.-]*)=)[^&#\s]+"), rf"\1{MASK}"),
    # NAME: value / NAME=value where NAME says secret (also inside header strings)
    (re.compile(r"(?i)\b((?:x-)?(?:api[_-]?key|authorization|auth[_-]?token|access[_-]?token|token|secret|"
                r"password|passwd|cookie|proxy-authorization)\"?\s*[:=]\s*\"?)(?:(?:bearer|basic|token|digest)\s+)?(?!\*\*\*)"
                r"[^\s\",;&]+"),
     rf"\1{MASK}"),
    # authorization schemes: "Bearer abc", "Basic dXNlcjpw", "Token abc"
    (re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)[A-Za-z0-9._~+/=:-]+"), rf"\1\2{MASK}"),
    # well-known key shapes
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}"), MASK),  # OpenAI, Anthropic (sk-ant-...), Stripe-like
    (re.compile(r"\bhf_[A-Za-z0-9]{16,}"), MASK),  # Hugging Face
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),  # GitHub
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), MASK),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), MASK),  # Slack
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),  # AWS access key id
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), MASK),  # Google API key
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), MASK),  # a JWT
)


def is_secret_name(name: str) -> bool:
    """Whether an option or flag name says its value is a secret (``..._env`` names a variable: not one).

    Example:
        >>> [is_secret_name(n) for n in ("judge_api_key", "hf_token", "judge_max_tokens", "judge_api_key_env")]
        [True, True, False, False]
    """
    name = name.strip().lstrip("-")
    if re.search(r"(?i)[_-]env$", name):
        return False
    return bool(SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """``text`` with every credential-shaped part replaced by ``***``.

    Example:
        >>> redact_text("Authorization: Bearer abc.def")
        'Authorization: ***'
        >>> redact_text("http://user:KEY@host/v1?key=K&x=1")
        'http://***@host/v1?key=***&x=1'
    """
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _redact_header_value(value: Any) -> Any:
    """Header options keep header names only: ``"Authorization: Bearer x"`` -> ``"Authorization: ***"``."""
    if isinstance(value, dict):
        return {k: MASK for k in value}
    if isinstance(value, str):
        parts = re.split(r"([,;\n]\s*)", value)
        out = []
        for part in parts:
            name, sep, _ = part.partition(":")
            if not sep:
                name, sep, _ = part.partition("=")
            out.append(f"{name}{sep} {MASK}" if sep and name.strip() else part)
        return redact_text("".join(out))
    return MASK


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return value


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options safe to write: secret-named ones dropped, header values masked, credential shapes redacted.

    Example:
        >>> public_options({"judge_api_key": "sk-x", "judge_headers": "Authorization: Bearer t", "seeds": 3})
        {'judge_headers': 'Authorization: ***', 'seeds': 3}
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if is_secret_name(str(key)):
            continue
        out[key] = _redact_header_value(value) if HEADER_NAME.search(str(key)) else _redact_value(value)
    return out


def _redact_assignment(item: str) -> str:
    """One ``KEY=VALUE`` argument (of ``--option``) with the value masked when the key says secret."""
    key, sep, value = item.partition("=")
    if sep and is_secret_name(key):
        return f"{key}={MASK}"
    if sep and HEADER_NAME.search(key):
        return f"{key}={_redact_header_value(value)}"
    return redact_text(item)


def redact_command(argv: list[str]) -> list[str]:
    """A command line safe to record: secret flags' values, secret ``--option`` values, header values and
    credential-shaped text masked.

    Example:
        >>> redact_command(["capeval", "score", "--option", "judge_api_key=sk-abcdefghijk", "--api-key", "x"])
        ['capeval', 'score', '--option', 'judge_api_key=***', '--api-key', '***']
    """
    out: list[str] = []
    hide = False  # the next argument is a secret flag's value
    assignment = False  # the next argument is a KEY=VALUE of --option
    for arg in argv:
        if hide:
            out.append(MASK)
            hide = False
            continue
        if assignment:
            out.append(_redact_assignment(arg))
            assignment = False
            continue
        if arg.startswith("--"):
            flag, sep, value = arg.partition("=")
            if is_secret_name(flag):
                if sep:
                    out.append(f"{flag}={MASK}")
                else:
                    out.append(arg)
                    hide = True
                continue
            if flag == "--option":
                if sep:
                    out.append(f"{flag}={_redact_assignment(value)}")
                else:
                    out.append(arg)
                    assignment = True
                continue
        out.append(redact_text(arg))
    return out


def refuse_secret_options(options: dict[str, Any]) -> None:
    """Raise when an option's name says it holds a secret: keys come from the environment, never options.

    The message names the option and the environment variable to set, never the value.

    Example:
        >>> try:
        ...     refuse_secret_options({"judge_api_key": "sk-..."})
        ... except CapevalError as exc:
        ...     print(str(exc)[:60])
        option judge_api_key would write a secret into the run's fil
    """
    for key in options:
        if is_secret_name(str(key)):
            env = str(options.get("judge_api_key_env") or DEFAULT_KEY_ENV)
            raise CapevalError(
                f"option {key} would write a secret into the run's files; capeval reads API keys only from "
                f"the environment: set {env} (or name another variable with --option judge_api_key_env=VAR) "
                f"and drop --option {key}")
