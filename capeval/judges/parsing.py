"""Reading judge verdicts: a JSON object first, then textual patterns, then one follow-up request.

A reply that still can't be read is a failure (NaN, raw text kept, counted), never a made-up 0.

Numbers: every fallback reads a number whole, with its sign, decimal point and exponent (``-5``, ``7.5``,
``1e2``), so ``-5`` is an out-of-range failure, not 5. A fraction (``5/10``, ``4 out of 5``) or a percentage
(``80%``, ``80 percent``) is read as that share of the top of the scale (``5/10`` on 0-100 is 50); a range
(``7-8``, ``70 to 80``) is not one score and is a failure.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from capeval.judges.protocol import JudgeRequest

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
#: A number with its sign, decimal point and exponent; a sign only counts where it can't be a hyphen
#: ("GPT-4" holds 4, not -4), and a number never starts inside another one.
_NUMBER = r"(?:(?<![\w.])[-+\u2212]|(?<![\d.]))(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
#: A number and what scales it: ``/ 10`` or ``out of 10`` (a fraction), ``%`` or ``percent``, or a range.
_QUANTITY = (rf"(?P<num>{_NUMBER})(?:\s*(?:/|\bout\s+of\b)\s*(?P<den>\d+(?:\.\d+)?)"
             r"|\s*(?P<pct>%|\bpercent\b)|(?P<range>\s*(?:-|\u2013|\u2014|\bto\b)\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)))?")


@dataclass(frozen=True)
class _Quantity:
    value: float | None  # None: not one score (see ``problem``)
    scaled: bool  # a fraction or percentage, already on the judge's scale
    text: str
    problem: str = ""


@dataclass(frozen=True)
class Verdict:
    """What was read from one reply: ``value`` (None when nothing usable), ``reason``, how it was found."""

    value: Any
    reason: str | None = None
    method: str | None = None  # "json", "pattern", "number" or None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether a value was found."""
        return self.value is not None


def strip_reasoning(text: str) -> str:
    """The reply without ``<think>...</think>`` traces (and anything before a dangling ``</think>``)."""
    text = _THINK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text.strip()


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object in the text, in order: the whole text, fenced blocks, then each ``{...}`` found."""
    found: list[dict[str, Any]] = []
    candidates = [text, *_FENCE.findall(text)]
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    decoder = json.JSONDecoder()
    pos = text.find("{")
    while pos != -1:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        pos = text.find("{", end)
    return found


def _lookup(obj: dict[str, Any], key: str) -> Any:
    for k, v in obj.items():
        if str(k).strip().lower() == key.lower():
            return v
    return None


def _quantity(m: re.Match[str], hi: float) -> _Quantity:
    """The value of a :data:`_QUANTITY` match on a scale topped by ``hi``."""
    groups = m.groupdict()
    text = m.group(0).strip()
    if groups.get("range"):
        return _Quantity(None, False, text, "a range, not one score")
    num = float(groups["num"].replace("\u2212", "-"))
    if groups.get("den") is not None:
        den = float(groups["den"])
        if den == 0:
            return _Quantity(None, False, text, "a fraction over 0")
        return _Quantity(num if den == hi else num * hi / den, True, text)
    if groups.get("pct"):
        return _Quantity(num if hi == 100 else num * hi / 100, True, text)
    return _Quantity(num, False, text)


def _as_number(value: Any, hi: float) -> _Quantity | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _Quantity(float(value), True, str(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        m = re.fullmatch(rf"\s*{_QUANTITY}\s*", value)
        if m:
            return _quantity(m, hi)
    return None


def _reason_from(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = _lookup(obj, key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def parse_score(text: str | None, *, key: str = "score", lo: float = 0.0, hi: float = 100.0,
                reason_keys: tuple[str, ...] = ("reason", "explanation", "rationale"),
                labels: tuple[str, ...] = ("score", "rating"), first_number: bool = False,
                fraction_scale: bool = False) -> Verdict:
    """Read a numeric score in ``[lo, hi]``.

    Order: (1) the first JSON object with ``key`` holding a number (or a string such as ``"80%"``); (2) a
    labelled number such as ``score: 85``, ``"score": 85``, ``Rating: [[4]]``, then a fraction anywhere
    (``85/100``, ``7/10``, ``4 out of 5``: scaled to ``hi``); (3) when ``first_number`` (CLAIR's published
    fallback) the first number anywhere, or else only a reply that is nothing but a number. Numbers keep
    their sign, decimals and exponent; percentages and fractions are shares of ``hi``; a range (``7-8``) is a
    failure. With ``fraction_scale`` a plain number below 1 found by (2) or (3) is read as a fraction of
    ``hi`` (CLAIR's rule for models that normalise the score themselves; a JSON value is taken as is).
    Out-of-range values are failures.

    Example:
        >>> parse_score("I would rate it -5.", first_number=True).error
        'score -5 outside [0, 100]'
        >>> parse_score("7/10").value, parse_score("80%").value, parse_score("7-8").ok
        (70.0, 80.0, False)
    """
    if text is None:
        return Verdict(None, error="no reply")
    body = strip_reasoning(text)
    for obj in json_objects(body):
        q = _as_number(_lookup(obj, key), hi)
        if q is not None:  # a JSON number is taken as is (no fraction rule); a string as a quantity
            return _checked(q, lo, hi, False, _reason_from(obj, reason_keys), "json")
    label = "|".join(re.escape(x) for x in labels)
    patterns = [
        rf"(?i)\"?(?:{label})\"?\s*(?:[:=]|is|of)?\s*\[*\s*{_QUANTITY}",
        rf"\[\[\s*{_QUANTITY}\s*\]\]",
        # a fraction anywhere: "7/10", "4 out of 5"
        rf"(?i)(?P<num>{_NUMBER})\s*(?:/|\bout\s+of\b)\s*(?P<den>\d+(?:\.\d+)?)",
    ]
    reason = _reason_text(body, reason_keys)
    for pat in patterns:
        m = re.search(pat, body)
        if m:
            return _checked(_quantity(m, hi), lo, hi, fraction_scale, reason, "pattern")
    if first_number:
        m = re.search(_QUANTITY, body)
        if m:
            return _checked(_quantity(m, hi), lo, hi, fraction_scale, reason, "number")
    else:
        m = re.fullmatch(rf"\s*{_QUANTITY}\s*\.?\s*", body)
        if m:
            return _checked(_quantity(m, hi), lo, hi, fraction_scale, None, "number")
    return Verdict(None, error=f"no {key} found in the reply")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _checked(q: _Quantity, lo: float, hi: float, fraction_scale: bool, reason: str | None,
             method: str) -> Verdict:
    if q.value is None:
        return Verdict(None, reason, None, f"{q.text!r} is {q.problem}")
    value = q.value
    if fraction_scale and not q.scaled and 0 < value < 1:
        value *= hi
    if not (lo <= value <= hi):
        return Verdict(None, reason, None, f"score {value:g} outside [{_fmt(lo)}, {_fmt(hi)}]")
    return Verdict(value, reason, method)


def _reason_text(body: str, keys: tuple[str, ...]) -> str | None:
    alt = "|".join(re.escape(k) for k in keys)
    m = re.search(rf"(?is)\"?(?:{alt})\"?\s*[:=]\s*\"?(.+?)\"?\s*(?:[,}}]\s*$|$)", body)
    return m.group(1).strip() if m else None


def parse_choice(text: str | None, *, key: str, choices: dict[str, tuple[str, ...]],
                 reason_keys: tuple[str, ...] = ("reason", "explanation", "rationale")) -> Verdict:
    """Read one of several labelled choices, e.g. ``{"winner": "A"}``.

    ``choices`` maps each canonical label to the spellings that mean it (case-insensitive), e.g.
    ``{"A": ("a", "caption a", "1"), "B": (...), "tie": ("tie", "equal", "both")}``. JSON first, then a
    labelled pattern (``winner: A``), then a reply that is only one of the spellings.
    """
    if text is None:
        return Verdict(None, error="no reply")
    body = strip_reasoning(text)
    lookup = {s.lower(): label for label, spellings in choices.items() for s in (label, *spellings)}

    def canon(value: Any) -> str | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = _fmt(float(value))
        if not isinstance(value, str):
            return None
        v = re.sub(r"[\s\"'.*!]+", " ", value).strip().lower()
        return lookup.get(v)

    for obj in json_objects(body):
        label = canon(_lookup(obj, key))
        if label is not None:
            return Verdict(label, _reason_from(obj, reason_keys), "json")
    spell = "|".join(sorted((re.escape(s) for s in lookup), key=len, reverse=True))
    m = re.search(rf"(?i)\"?{re.escape(key)}\"?\s*(?:[:=]|is)\s*\"?\**\s*({spell})\b", body)
    if m:
        return Verdict(lookup[m.group(1).lower()], _reason_text(body, reason_keys), "pattern")
    label = canon(body)
    if label is not None:
        return Verdict(label, None, "pattern")
    return Verdict(None, error=f"no {key} found in the reply")


def json_schema_format(name: str, properties: dict[str, Any],
                       required: list[str] | None = None) -> dict[str, Any]:
    """An OpenAI ``response_format`` asking for a JSON object with exactly these properties (strict)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": name,
            "strict": True,
            "schema": {"type": "object", "properties": properties,
                       "required": list(required or properties), "additionalProperties": False},
        },
    }


def retry_request(request: JudgeRequest, reply_text: str | None, instruction: str) -> JudgeRequest:
    """The one follow-up after an unreadable reply: the conversation so far plus ``instruction``.

    It is a different request (so it is cached on its own and a rerun replays it from the cache).
    """
    messages = list(request.messages)
    if reply_text:
        messages.append({"role": "assistant", "content": reply_text})
    messages.append({"role": "user", "content": instruction})
    return replace(request, messages=messages, tag=f"{request.tag}#retry")
